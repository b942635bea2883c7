"""lmer with random slopes against statsmodels MixedLM on simulated data.

Both fit ``y ~ 1 + x + z + (1 + x | g)`` by ML and REML; statsmodels with BFGS at gtol 1e-10.
statsmodels' REML log-likelihood uses lme4's convention, so both criteria are compared directly.
Tolerance: log-likelihoods within 1e-6 (observed ~1e-13), fixed effects 1e-6 absolute,
covariance parameters 1e-5 absolute (statsmodels' own convergence is the limit there).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis.lmer import lmer
from mitml_jax.errors import MitmlWarning

FORMULA = "y ~ 1 + x + z + (1 + x | g)"


def simulate(seed, n_clusters=40, tau=((1.0, 0.3), (0.3, 0.5))):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 20, n_clusters)
    g = np.repeat(np.arange(n_clusters), sizes)
    n = len(g)
    x = rng.normal(size=n)
    z = rng.normal(size=n) + 0.5
    b = rng.multivariate_normal([0.0, 0.0], np.asarray(tau), n_clusters)
    y = 1.0 + 0.5 * x - 0.3 * z + b[g, 0] + b[g, 1] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g + 100})


@pytest.fixture(scope="module")
def imputations():
    return [simulate(seed) for seed in range(2)]


def _statsmodels(data, reml):
    import statsmodels.formula.api as smf

    model = smf.mixedlm("y ~ 1 + x + z", data, groups="g", re_formula="~x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(reml=reml, method=["bfgs"], gtol=1e-10, maxiter=2000)


def _gls_cov(data, ref):
    tau, sigma2 = np.asarray(ref.cov_re), float(ref.scale)
    info = np.zeros((3, 3))
    for _, d in data.groupby("g"):
        x = np.column_stack([np.ones(len(d)), d["x"], d["z"]])
        z = x[:, :2]
        v = sigma2 * np.eye(len(d)) + z @ tau @ z.T
        info += x.T @ np.linalg.solve(v, x)
    return np.linalg.inv(info)


@pytest.mark.parametrize("reml", [False, True])
def test_random_slopes_match_statsmodels(imputations, reml):
    fits = lmer(FORMULA, imputations, reml=reml)
    assert fits[0].mitml_is_reml() == reml
    for fit, data in zip(fits, imputations):
        ref = _statsmodels(data, reml)
        assert fit.converged and not fit.singular
        assert abs(fit.loglik - ref.llf) < 1e-6
        assert fit.loglik >= ref.llf - 1e-9  # never a worse optimum than statsmodels
        np.testing.assert_allclose(fit.coef.to_numpy(), np.asarray(ref.fe_params), atol=1e-6)
        np.testing.assert_allclose(fit.tau.to_numpy(), np.asarray(ref.cov_re), atol=1e-5)
        np.testing.assert_allclose(fit.sigma2, ref.scale, atol=1e-6)
        # lme4's vcov is (X'V^-1 X)^-1 (statsmodels' cov_params also has the beta/theta coupling)
        np.testing.assert_allclose(fit.vcov.to_numpy(), _gls_cov(data, ref), rtol=1e-5)


def test_random_slope_extra_names_and_loglik_at(imputations):
    fits = lmer(FORMULA, imputations, reml=False)
    extra = fits[0].mitml_extra()
    assert list(extra.index) == ["Intercept~~Intercept|g", "x~~x|g", "Intercept~~x|g",
                                 "Residual~~Residual", "ICC|g"]
    tau = fits[0].tau.to_numpy()
    assert extra["Intercept~~x|g"] == pytest.approx(tau[0, 1])
    assert extra["ICC|g"] == pytest.approx(tau[0, 0] / (tau[0, 0] + fits[0].sigma2))
    assert fits[0].mitml_loglik()[1] == 3 + 3 + 1
    # D3's likelihood at given parameters equals the ML log-likelihood at the estimates
    for fit in fits:
        assert fit.mitml_loglik_at(fit.mitml_params()) == pytest.approx(fit.loglik, rel=1e-12)


@pytest.mark.slow
def test_random_slope_stacked_loglik(imputations):
    fits = lmer(FORMULA, imputations, reml=False)
    # the stacked fit (D4) is at least as good as the separate fits at one common parameter set
    stacked = fits[0].mitml_stacked_loglik(list(fits))
    pooled = {k: np.mean([f.mitml_params()[k] for f in fits], axis=0) for k in ("beta", "tau", "sigma2")}
    at_pooled = np.mean([f.mitml_loglik_at(pooled) for f in fits])
    assert stacked >= at_pooled - 1e-9
    assert stacked <= np.mean([f.loglik for f in fits]) + 1e-9


def _singular_data():
    data = [simulate(seed, tau=((1.0, 0.0), (0.0, 0.0))) for seed in (11, 12)]
    for d in data:  # remove the slope variation completely: x is constant within clusters
        d["x"] = d.groupby("g")["x"].transform("mean")
    return data


def test_singular_random_slope_warns():
    with pytest.warns(MitmlWarning, match="boundary \\(singular\\) fit"):
        fits = lmer(FORMULA, _singular_data(), reml=False)
    assert all(f.singular for f in fits)
    assert all(f.converged for f in fits)
    assert "boundary (singular) fit" in str(fits[0].summary())
    # the boundary: one diagonal element of Lambda is zero, the estimated covariance is singular
    assert min(abs(np.linalg.eigvalsh(f.tau.to_numpy())).min() for f in fits) < 1e-6


@pytest.mark.slow
def test_singular_fit_is_an_optimum():
    data = _singular_data()
    with pytest.warns(MitmlWarning):
        fits = lmer(FORMULA, data, reml=False)
    for fit, d in zip(fits, data):
        assert fit.loglik >= _statsmodels(d, False).llf - 1e-6


@pytest.mark.slow
def test_random_slope_r2_matches_mixedlm_adapter(imputations):
    import statsmodels.formula.api as smf

    from mitml_jax.analysis.adapters_mixedlm import MixedLMFit, fit_mixedlm

    fits = lmer(FORMULA, imputations)
    parts = ["RB1", "RB2", "SB", "MVP"]
    for fit, data in zip(fits, imputations):
        model = smf.mixedlm("y ~ 1 + x + z", data, groups="g", re_formula="~x")
        ref = MixedLMFit(fit_mixedlm(model, reml=True), data).mitml_r2(parts)
        ours = fit.mitml_r2(parts)
        np.testing.assert_allclose([ours[k] for k in parts], [float(ref[k]) for k in parts],
                                   rtol=1e-5, atol=1e-6)
