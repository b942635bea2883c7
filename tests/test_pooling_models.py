"""Model comparisons on small simulated data: MixedLM adapter (random slopes, D3/D4 with and
without ``data=``), anova ordering and fallback, multilevel_r2 options, errors."""

import warnings

import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis.adapters import as_fit
from mitml_jax.analysis.adapters_mixedlm import fit_mixedlm, lmm_loglik
from mitml_jax.analysis.analysis_list import AnalysisList
from mitml_jax.analysis.anova import anova
from mitml_jax.analysis.estimates import test_estimates
from mitml_jax.analysis.models import test_models
from mitml_jax.analysis.r2 import multilevel_r2
from mitml_jax.errors import MitmlError, MitmlWarning


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(20261125)
    out = []
    for _ in range(3):
        g = np.repeat(np.arange(15), 10)
        x, z = rng.normal(size=150), rng.normal(size=150)
        u0, u1 = rng.normal(scale=0.8, size=15), rng.normal(scale=0.4, size=15)
        y = 1 + 0.5 * x + 0.3 * z + u0[g] + u1[g] * x + rng.normal(size=150)
        out.append(pd.DataFrame({"y": y, "x": x, "z": z, "g": g,
                                 "b": (y > 1).astype(float)}))
    return out


@pytest.fixture(scope="module")
def slope_fits(frames):
    import statsmodels.formula.api as smf

    full = [fit_mixedlm(smf.mixedlm("y ~ x + z", f, groups="g", re_formula="~x")) for f in frames]
    null = [fit_mixedlm(smf.mixedlm("y ~ x", f, groups="g", re_formula="~x")) for f in frames]
    return AnalysisList(full, data=frames), AnalysisList(null, data=frames)


def test_mixedlm_extra_names_and_loglik(slope_fits):
    fit = as_fit(slope_fits[0][0])
    extra = fit.mitml_extra()
    assert list(extra.index) == ["Intercept~~Intercept|g", "x~~x|g", "Intercept~~x|g",
                                 "Residual~~Residual", "ICC|g"]
    tau = np.asarray(slope_fits[0][0].cov_re)
    np.testing.assert_allclose(extra.iloc[:3], [tau[0, 0], tau[1, 1], tau[0, 1]], rtol=1e-12)
    assert fit.mitml_is_reml() and fit.mitml_loglik()[1] == 3 + 3 + 1
    assert fit.mitml_formula() == "y ~ x + z + (1 + x | g)"
    ml = fit.mitml_refit_ml()
    assert not ml.mitml_is_reml() and ml.mitml_refit_ml() is ml
    assert fit.mitml_refit_ml().result is ml.result  # ML refits are cached per result
    model = ml.result.model
    ll = lmm_loglik(model.endog, model.exog, model.exog_re, model.groups, **ml.mitml_params())
    np.testing.assert_allclose(ll, ml.result.llf, rtol=1e-10)
    # the fixed-effects covariance is lme4's (X' V^-1 X)^-1 with the dense V
    res = slope_fits[0][0]
    x, z = np.asarray(res.model.exog), np.asarray(res.model.exog_re)
    same = np.asarray(res.model.groups)[:, None] == np.asarray(res.model.groups)[None, :]
    v = res.scale * np.eye(len(x)) + (z @ np.asarray(res.cov_re) @ z.T) * same
    np.testing.assert_allclose(fit.mitml_vcov().to_numpy(),
                               np.linalg.inv(x.T @ np.linalg.solve(v, x)), rtol=1e-10)


@pytest.mark.slow
def test_likelihood_tests_with_slopes(slope_fits, frames):
    full, null = slope_fits
    d3 = test_models(full, null, method="D3")
    assert d3.refit and d3.reml and d3.test.iloc[0]["df1"] == 1
    d4 = test_models(full, null, method="D4")
    d4_data = test_models(full, null, method="D4", data=frames)
    np.testing.assert_allclose(d4_data.test.to_numpy(), d4.test.to_numpy(), rtol=1e-5)
    assert "`data` argument" in str(d4_data) and "automatically extracted" in str(d4)
    wald = test_models(full, null).test.iloc[0]
    assert wald["df1"] == 1 and wald["F.value"] > 0
    robust = test_models(full, null, method="D4", ariv="robust")
    assert "D4 (robust)" in str(robust)


def test_anova_orders_and_falls_back(frames):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    lm = [[smf.ols(f, d).fit() for d in frames] for f in ("y ~ x", "y ~ x + z", "y ~ 1")]
    res = anova(*lm)
    assert res.method == "D3" and res.order_method == "logLik"
    assert res.formula == ["y ~ x + z", "y ~ x", "y ~ 1"]
    direct = test_models(lm[1], lm[0], method="D3")
    np.testing.assert_allclose(res.test.iloc[0].to_numpy(), direct.test.iloc[0].to_numpy())
    assert list(res.to_frame().columns) == ["f_value", "df1", "df2", "p_value", "riv"]
    assert "   2 vs 3 " in str(res)
    fam = sm.families.Binomial()
    glm = [[smf.glm(f, d, family=fam).fit() for d in frames] for f in ("b ~ x + z", "b ~ x")]
    with pytest.warns(MitmlWarning, match="Switching to 'D4'"):
        res = anova(*glm)
    assert res.method == "D4" and "D4" in str(res)
    with pytest.raises(MitmlError, match="at least two"):
        anova(glm[0])


def test_multilevel_r2_options(slope_fits):
    full = slope_fits[0]
    all4 = multilevel_r2(full)
    assert list(all4.index) == ["RB1", "RB2", "SB", "MVP"]
    single = multilevel_r2(full, print="mvp")
    assert list(single.index) == ["MVP"] and single["MVP"] == pytest.approx(all4["MVP"], rel=1e-12)
    one = multilevel_r2(full[0], print=["rb1"])
    assert 0 < all4["MVP"] < 1 and np.isfinite(one["RB1"])
    with pytest.raises(MitmlError, match="print"):
        multilevel_r2(full, print=["R2"])


def test_errors_and_warnings(slope_fits, frames):
    import statsmodels.formula.api as smf

    full, null = slope_fits
    with pytest.raises(MitmlError, match="not to be nested"):
        test_models(full, full)
    with pytest.raises(MitmlError, match="list"):
        test_estimates(full[0])
    with pytest.warns(MitmlWarning, match="robust"):
        test_models(full, null, ariv="robust")
    lm = [smf.ols("y ~ x", d).fit() for d in frames]
    with pytest.warns(MitmlWarning, match="different classes"):
        test_models(full, lm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = test_estimates(full, extra_pars=True)
    assert "ICC|g" in est.extra_pars.index and "ICC|g" in str(est)
