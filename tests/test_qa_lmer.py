"""QA of the batched lmer fitter against lme4 (regression tests of the QA pass).

Reference values: lme4 1.1-31 / mitml 0.4-4 on ``tests/reference/qa_lmer/poly_factor.csv`` (three
imputed data sets of 72 rows in 12 clusters of 3 to 9 rows, 4 missing responses each; ``f`` has
the levels a, b, c, zz, with ``c`` only on a row without a response and ``zz`` unused), fitted
with tightened nloptwrap tolerances (ftol 1e-14, xtol 1e-12), so that lme4 reaches the optimum:

    d$f <- factor(d$f, levels = c("a", "b", "c", "zz"))
    fits <- lapply(split(d[names(d) != ".imp"], d$.imp), function(x)
      lmer(y ~ poly(x, 2) + f + (1 | id), data = x, control = tight))   # and the ML model below
    testEstimates(fits, extra.pars = TRUE)

Tolerances: logLik to 1e-7 absolute (the REML surfaces agree to rounding), estimates to 1e-6
relative, variance components and pooled values to 1e-5 relative (lme4 stops about 1e-7 short
of the optimum in theta even with the tight tolerances).
"""

import os
import warnings

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax.analysis.lmer import lmer
from mitml_jax.errors import MitmlError, MitmlWarning

HERE = os.path.join(os.path.dirname(__file__), "reference", "qa_lmer")

# y ~ poly(x, 2) + f + (1 | id), REML
POLY = {
    "names": ["(Intercept)", "poly(x, 2)1", "poly(x, 2)2", "fb"],
    "loglik": [-115.2432720660, -97.2838626072, -112.0690249885],
    "coef": [[0.9733800609, 7.88738961, -3.46928189, 0.1918492011],
             [1.015817058, 6.884320624, -2.269560159, 0.3646135429],
             [1.032692052, 0.3837491171, -3.229173544, 0.550196776]],
    "sigma2": [1.71124113, 0.85571089, 1.577545478],
    "tau": [[0.3169690918], [0.5586964436], [0.2368237992]],
    "pooled": [[1.00729639046, 0.277269384891, 7623.10831873501, 0.0164642156714],
               [5.05181978399, 4.878155529171, 2.31332312793, 13.2481890400434],
               [-2.98933853099, 1.456868741213, 31.20907186980, 0.3389534406939],
               [0.36888650664, 0.364434326347, 19.23806176046, 0.4758604892517]],
    "extra": [0.370829778202, 1.381499166124, 0.227270302970],
}
# y ~ I(x - mean(x)) + (1 + x | id), ML (imputation 1: singular, correlation -1, in lme4 too)
CENTRED = {
    "names": ["(Intercept)", "I(x - mean(x))"],
    "loglik": [-119.5180623848, -100.4537972091, -112.9287407086],
    "coef": [[1.064182588, 0.9055456679], [1.266216233, 0.9593586002],
             [1.307052504, 0.129365513]],
    "sigma2": [1.747548521, 0.7806553695, 1.209348303],
    "tau": [[0.1940519285, -0.1434517147, -0.1434517147, 0.1060458126],
            [0.4841339207, 0.03445502168, 0.03445502168, 0.1576540874],
            [0.6953325506, -0.4574908574, -0.4574908574, 0.4316268853]],
    "pooled": [[1.212483775088, 0.267534726484, 20.15078034728, 0.45994446861],
               [0.664756593676, 0.575018340107, 2.64333484401, 6.68279659525]],
    "extra": [0.457839466585, 0.231775595096, -0.188829183474, 1.245850731082, 0.282595919963],
}


@pytest.fixture(scope="module")
def imps():
    data = pd.read_csv(os.path.join(HERE, "poly_factor.csv"))
    data["f"] = pd.Categorical(data["f"], categories=["a", "b", "c", "zz"])
    return [g.drop(columns=".imp").reset_index(drop=True) for _, g in data.groupby(".imp")]


def _check(fits, ref):
    assert list(fits[0].coef.index) == ref["names"]
    np.testing.assert_allclose([f.loglik for f in fits], ref["loglik"], rtol=0, atol=1e-7)
    np.testing.assert_allclose([f.coef.to_numpy() for f in fits], ref["coef"], rtol=1e-6)
    np.testing.assert_allclose([f.sigma2 for f in fits], ref["sigma2"], rtol=1e-6)
    np.testing.assert_allclose([f.tau.to_numpy().ravel() for f in fits], ref["tau"], rtol=1e-5)
    est = mj.test_estimates(fits, extra_pars=True)
    ours = est.estimates[["Estimate", "Std.Error", "df", "RIV"]].to_numpy()
    np.testing.assert_allclose(ours, ref["pooled"], rtol=1e-5)
    np.testing.assert_allclose(est.extra_pars.to_numpy().ravel(), ref["extra"], rtol=1e-5)


def test_poly_and_unused_levels_match_lme4(imps):
    """poly() is orthonormal within each data set (it was over the stack of all imputations:
    coefficients off by sqrt(m), REML logLik off by about 1); levels without complete rows are
    dropped as lme4 does (they were a rank-deficiency error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", MitmlWarning)
        _check(lmer("y ~ poly(x, 2) + f + (1 | id)", imps), POLY)


def test_mean_in_formula_is_per_data_set_like_lme4(imps):
    """``I(x - mean(x))``: the mean of each data set (all its rows, as R's model frame), not of
    the stacked imputations."""
    with pytest.warns(MitmlWarning, match=r"boundary \(singular\) fit in 1 of 3 .* \(1\)"):
        fits = lmer("y ~ I(x - mean(x)) + (1 + x | id)", imps, reml=False)
    assert [f.singular for f in fits] == [True, False, False]
    _check(fits, CENTRED)


def test_poly_fit_does_not_depend_on_the_other_imputations(imps):
    together = lmer("y ~ poly(x, 2) + (1 | id)", imps)
    for i, frame in enumerate(imps):
        alone = lmer("y ~ poly(x, 2) + (1 | id)", [frame])[0]
        np.testing.assert_allclose(together[i].coef, alone.coef, rtol=1e-10)
        assert together[i].loglik == pytest.approx(alone.loglik, abs=1e-9)


def test_string_level_only_on_incomplete_rows_is_dropped(imps):
    strings = [f.assign(f=f["f"].astype(str)) for f in imps]  # 'c' only where y is missing
    fits = lmer("y ~ x + f + (1 | id)", strings)
    assert list(fits[0].coef.index) == ["(Intercept)", "x", "fb"]
    plain = lmer("y ~ x + f + (1 | id)", [f.dropna(subset=["y"]) for f in strings])
    np.testing.assert_allclose([f.loglik for f in fits], [f.loglik for f in plain], atol=1e-9)


@pytest.mark.parametrize("path", ["host", "xla"])
def test_random_slope_of_a_predictor_in_large_units_converges(imps, path, monkeypatch):
    """x in units of 1e6: theta of the slope is ~1e-6, below the Hessian's difference steps;
    the fit stalled with a non-convergence warning (lme4 also fails here). It now equals the
    fit with x in ordinary units, rescaled (NumPy and XLA optimisers)."""
    from mitml_jax.analysis.lmer import batch

    if path == "xla":
        monkeypatch.setattr(batch, "HOST_MAX_WORK", -1)
    big = [f.assign(x=f["x"] * 1e6) for f in imps]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = lmer("y ~ x + (1 + x | id)", big)
        ref = lmer("y ~ x + (1 + x | id)", imps)
    assert not any("converge" in str(w.message) for w in caught)
    scale = np.array([1.0, 1e-6])
    for fit, r in zip(fits, ref):
        assert fit.converged
        np.testing.assert_allclose(fit.coef.to_numpy(), r.coef.to_numpy() * [1.0, 1e-6], rtol=1e-6)
        np.testing.assert_allclose(fit.tau.to_numpy(), r.tau.to_numpy() * np.outer(scale, scale),
                                   rtol=1e-5)
        # REML: log|R_X| grows by log(1e6) per rescaled column; the ML deviance is invariant
        assert fit.loglik == pytest.approx(r.loglik - np.log(1e6), abs=1e-6)
        assert fit.mitml_refit_ml().loglik == pytest.approx(r.mitml_refit_ml().loglik, abs=1e-6)
        # lme4's isSingular rule on the original theta: the slope's theta is ~1e-7 here
        assert fit.singular


def _frame(n_clusters, size, seed=0):
    rng = np.random.default_rng(seed)
    n = n_clusters * size
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                         "id": np.repeat(np.arange(n_clusters), size)})


@pytest.mark.parametrize("formula, shape, match", [
    ("y ~ x + (1 | id)", (30, 1), "as many clusters .30. as complete rows .30.*number of levels"),
    ("y ~ x + (1 | id)", (1, 30), "has 1 cluster.*at least 2"),
    ("y ~ x + (1 + x | id)", (20, 2), "40 complete rows .* for 40 random effects"),
])
def test_unidentifiable_models_are_refused_like_lme4(formula, shape, match):
    """lme4 stops on these (lmerControl's check.nobs.vs.nlev, check.nlev.gtr.1 and
    check.nobs.vs.nRE); they were fitted silently."""
    with pytest.raises(MitmlError, match=match):
        lmer(formula, [_frame(*shape), _frame(*shape, seed=1)])


def test_empty_data_set_and_infinite_values_are_errors():
    with pytest.raises(MitmlError, match="Imputed data set 2 has no rows"):
        lmer("y ~ x + (1 | id)", [_frame(5, 4), _frame(5, 4).iloc[:0]])
    bad = _frame(5, 4).assign(x=lambda f: f["x"].where(f.index != 3, np.inf))
    with pytest.raises(MitmlError, match="'x' has infinite values .row 4 of imputed data set 2"):
        lmer("y ~ x + (1 | id)", [_frame(5, 4), bad])
    # an infinite value on a row without response is dropped with its row (R's na.omit first)
    dropped = bad.assign(y=lambda f: f["y"].where(f.index != 3, np.nan))
    fits = lmer("y ~ x + (1 | id)", [_frame(5, 4), dropped])
    assert [f.nobs for f in fits] == [20, 19]
    with np.errstate(divide="ignore"), pytest.raises(MitmlError, match="'log.x.' has infinite"):
        lmer("y ~ log(x) + (1 | id)", [_frame(5, 4).assign(x=lambda f: f["x"].abs().where(
            f.index != 0, 0.0))] * 2)


def test_maxiter_accepts_numpy_integers_and_refuses_booleans(imps):
    fits = lmer("y ~ x + (1 | id)", imps, maxiter=np.int64(50))
    assert all(f.converged for f in fits)
    with pytest.raises(MitmlError, match="'maxiter' must be a positive integer"):
        lmer("y ~ x + (1 | id)", imps, maxiter=True)


def test_multilevel_r2_with_a_singular_null_model_is_silent_like_r(imps):
    """The null model y ~ 1 + (1 | id) of imputation 1 has a zero intercept variance: RB2 is
    -Inf as in R's multilevelR2 (it came with NumPy's 'divide by zero' RuntimeWarning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r2 = mj.multilevel_r2(lmer("y ~ poly(x, 2) + f + (1 | id)", imps))
    assert r2["RB2"] == -np.inf
    np.testing.assert_allclose(r2[["RB1", "SB", "MVP"]].to_numpy(),
                               [0.2914059438, 0.2523092688, 0.2706708448], rtol=1e-7)


@pytest.mark.parametrize("scale", [1e9, 1e-9])
def test_predictor_in_extreme_units_is_not_rank_deficient(imps, scale):
    """lme4's rank check (R's qr, tol 1e-7) does not depend on a column's scale; the check on
    X'X's eigenvalues refused x in units of 1e9 or 1e-9 as 'rank deficient'."""
    ref = lmer("y ~ x + (1 | id)", imps, reml=False)
    fits = lmer("y ~ x + (1 | id)", [f.assign(x=f["x"] * scale) for f in imps], reml=False)
    for fit, r in zip(fits, ref):
        assert fit.loglik == pytest.approx(r.loglik, abs=1e-9)
        assert fit.coef["x"] * scale == pytest.approx(r.coef["x"], rel=1e-12)


def test_rank_check_follows_lme4_for_a_large_shift(imps):
    """x + 1e9 is collinear with the intercept by R's rule (lme4 drops it: 'fixed-effect model
    matrix is rank deficient'), x + 1e4 is not; the message names the column."""
    lmer("y ~ x + (1 | id)", [f.assign(x=f["x"] + 1e4) for f in imps])
    with pytest.raises(MitmlError, match="rank deficient in imputed data set 1: column 'x' is"):
        lmer("y ~ x + (1 | id)", [f.assign(x=f["x"] + 1e9) for f in imps])
    with pytest.raises(MitmlError, match="column 'x2' is .nearly. a linear combination"):
        lmer("y ~ x + x2 + (1 | id)", [f.assign(x2=2 * f["x"] - 1) for f in imps])
    # a level only one data set has: a zero column in the others, said so
    other = [f.assign(g=np.where(f["x"] > 0, "a", "b" if i else "c")) for i, f in enumerate(imps)]
    with pytest.raises(MitmlError, match="data set 1: column 'gb' is zero in every complete row"):
        lmer("y ~ x + g + (1 | id)", other)


def test_predictor_far_from_zero_keeps_its_digits(imps):
    """x + 1e6 (e.g. a date in seconds): the cross-products of the uncentred column lost about
    12 digits (ML logLik off by 1e-4 to 1e-3; lme4 by 1e-6); the columns are now centred within
    each data set before the fit, so the fit equals that of x (the REML criterion too: the
    shift is unit triangular)."""
    for reml in (False, True):
        ref = lmer("y ~ x + f + (1 | id)", imps, reml=reml)
        fits = lmer("y ~ x + f + (1 | id)", [f.assign(x=f["x"] + 1e6) for f in imps], reml=reml)
        for fit, r in zip(fits, ref):
            assert fit.loglik == pytest.approx(r.loglik, abs=1e-8)
            assert fit.coef["x"] == pytest.approx(r.coef["x"], rel=1e-8)
            assert fit.coef["fb"] == pytest.approx(r.coef["fb"], rel=1e-8)
            assert fit.vcov.loc["x", "x"] == pytest.approx(r.vcov.loc["x", "x"], rel=1e-8)
            assert fit.tau.iloc[0, 0] == pytest.approx(r.tau.iloc[0, 0], rel=1e-6)
    ml = fits[0].mitml_refit_ml()
    assert ml.mitml_loglik_at(ml.mitml_params()) == pytest.approx(ml.loglik, abs=1e-8)
