"""lmer's interface: formula parsing, input checks, missing rows, warnings, caching, printing.

All fits here use data of one shape (m = 2, J = 12, q = 1), so they share one compilation.
"""

import warnings

import jax
import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis.analysis_list import AnalysisList
from mitml_jax.analysis.lmer import LmerFit, lmer, refit_ml
from mitml_jax.analysis.lmer.formula import parse_lmer_formula
from mitml_jax.analysis.lmer.optimize import _compiled_fit
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning


def simulate(seed, n_clusters=12, size=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), size)
    x = rng.normal(size=len(g))
    sex = rng.choice(["Boy", "Girl"], len(g))
    y = 2.0 + 0.7 * x + (sex == "Girl") + rng.normal(size=n_clusters)[g] + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "Sex": sex, "id": g + 1})


@pytest.fixture(scope="module")
def imputations():
    return [simulate(1), simulate(2)]


@pytest.mark.parametrize("text,fixed,random,group,canonical", [
    ("y ~ 1 + x + (1|id)", "1 + x", "1", "id", "y ~ 1 + x + (1 | id)"),
    ("y~x+(1+x|id)", "x", "1 + x", "id", "y ~ x + (1 + x | id)"),
    ("y ~ (1 | g) + x", "x", "1", "g", "y ~ (1 | g) + x"),
    ("y ~ (0 + x | g)", "1", "0 + x", "g", "y ~ (0 + x | g)"),
])
def test_parse_formula(text, fixed, random, group, canonical):
    parsed = parse_lmer_formula(text)
    assert (parsed.response, parsed.fixed, parsed.random, parsed.group) == ("y", fixed, random, group)
    assert parsed.text == canonical


@pytest.mark.parametrize("text,match", [
    ("y ~ x", "exactly one random-effects term"),
    ("y ~ x + (1|a) + (1|b)", "exactly one random-effects term"),
    ("y ~ x + (1 + x || id)", "'\\|\\|'"),
    ("~ x + (1|id)", "response"),
    ("y1 + y2 ~ x + (1|id)", "single response"),
    ("y ~ x + (1 | a:b)", "one column name"),
])
def test_parse_formula_errors(text, match):
    with pytest.raises(MitmlError, match=match):
        parse_lmer_formula(text)
    with pytest.raises(MitmlTypeError):
        parse_lmer_formula(3)


def test_input_errors(imputations):
    with pytest.raises(MitmlTypeError, match="list of pandas DataFrames"):
        lmer("y ~ x + (1|id)", imputations[0])
    with pytest.raises(MitmlTypeError, match="element 1"):
        lmer("y ~ x + (1|id)", [imputations[0], "a"])
    with pytest.raises(MitmlError, match="'cluster'"):
        lmer("y ~ x + (1|cluster)", imputations)
    with pytest.raises(MitmlError, match="empty"):
        lmer("y ~ x + (1|id)", [])
    with pytest.raises(MitmlTypeError, match="reml"):
        lmer("y ~ x + (1|id)", imputations, reml="yes")
    with pytest.raises(MitmlError, match="rank deficient"):
        lmer("y ~ x + I(2 * x) + (1|id)", imputations)


def test_fit_protocol_and_printing(imputations):
    fits = lmer("y ~ 1 + x + Sex + (1|id)", imputations)
    assert isinstance(fits, AnalysisList) and len(fits) == 2
    fit = fits[1]
    assert isinstance(fit, LmerFit) and fit.index == 1
    assert list(fit.mitml_coef().index) == ["(Intercept)", "x", "SexGirl"]
    assert fit.mitml_vcov().shape == (3, 3)
    assert np.allclose(fit.mitml_vcov(), fit.mitml_vcov().T)
    assert list(fit.mitml_extra().index) == ["Intercept~~Intercept|id", "Residual~~Residual", "ICC|id"]
    assert fit.mitml_df_com() is None and fit.mitml_is_reml()
    assert fit.mitml_loglik() == (pytest.approx(-0.5 * fit.deviance), 5)
    assert fit.mitml_formula() == "y ~ 1 + x + Sex + (1 | id)"
    text = str(fit.summary())
    for part in ("REML criterion", "Random effects:", "Fixed effects:", "SexGirl", "groups: id, 12"):
        assert part in text
    assert "LmerFit imputation 2 (REML)" in repr(fit)
    # list-level ML refit: one batch for all imputations, cached
    ml = refit_ml(fits)
    assert [f.mitml_is_reml() for f in ml] == [False, False]
    assert ml[0]._batch is ml[1]._batch is fits[0].mitml_refit_ml()._batch
    assert ml[0].loglik > fit.loglik - 50 and ml[0].mitml_refit_ml() is ml[0]


def test_missing_rows_dropped_and_data_untouched(imputations):
    data = [d.copy() for d in imputations]
    data[0].loc[[0, 5, 9], "y"] = np.nan
    data[1].loc[[3], "x"] = np.nan
    before = [d.copy() for d in data]
    fits = lmer("y ~ 1 + x + Sex + (1|id)", data)
    assert [f.nobs for f in fits] == [93, 95]
    for d, b in zip(data, before):
        pd.testing.assert_frame_equal(d, b)
    # same estimates as fitting the complete rows only
    complete = lmer("y ~ 1 + x + Sex + (1|id)", [d.dropna() for d in data])
    for a, b in zip(fits, complete):
        np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)


def test_no_recompilation_for_same_shapes(imputations, monkeypatch):
    from mitml_jax.analysis.lmer import batch

    monkeypatch.setattr(batch, "HOST_MAX_WORK", -1)  # the compiled path (small fits run on the host)
    lmer("y ~ 1 + x + (1|id)", imputations)
    compiled = _compiled_fit(jax.default_backend())
    size = compiled._cache_size()
    lmer("y ~ 1 + x + Sex + (1|id)", imputations, reml=False)  # p 2 -> 3 is in the same bucket
    lmer("y ~ 1 + x + (1|id)", [simulate(7), simulate(8)], maxiter=50)
    assert compiled._cache_size() == size


def test_non_convergence_warns(imputations):
    with pytest.warns(MitmlWarning, match="failed to converge"):
        fits = lmer("y ~ 1 + x + (1|id)", imputations, maxiter=1)
    assert not fits[0].converged
    assert "failed to converge" in str(fits[0].summary())


def test_multilevel_r2_parts_and_errors(imputations):
    fits = lmer("y ~ 1 + x + (1|id)", imputations)
    r2 = fits[0].mitml_r2(["RB1", "RB2", "SB", "MVP"])
    assert set(r2) == {"RB1", "RB2", "SB", "MVP"}
    assert 0 < r2["RB1"] < 1 and 0 <= r2["MVP"] < 1
    assert fits[0].mitml_r2("MVP") == {"MVP": r2["MVP"]}
    with pytest.raises(MitmlError, match="unknown measure"):
        fits[0].mitml_r2(["R2"])
    with warnings.catch_warnings():  # the slope variance may be estimated as zero
        warnings.simplefilter("ignore", MitmlWarning)
        no_intercept = lmer("y ~ 1 + x + (0 + x|id)", imputations)
    assert "ICC|id" not in no_intercept[0].mitml_extra().index
    with pytest.raises(MitmlError, match="random intercept"):
        no_intercept[0].mitml_r2(["MVP"])


def test_implist_method(imputations):
    from mitml_jax.results.implist import ImputedList

    fits = ImputedList(imputations).lmer("y ~ 1 + x + (1|id)", reml=False)
    direct = lmer("y ~ 1 + x + (1|id)", imputations, reml=False)
    np.testing.assert_allclose(fits[0].coef, direct[0].coef)


def test_stacked_estimates_match_per_fit_methods(imputations):
    from mitml_jax.analysis.estimates import test_estimates

    with warnings.catch_warnings():  # a slope variance may be estimated as zero
        warnings.simplefilter("ignore", MitmlWarning)
        fits = lmer("y ~ 1 + x + (1 + x|id)", imputations + [simulate(3)])
        other = lmer("y ~ 1 + x + (1 + x|id)", imputations + [simulate(3)])
    names, qhat, uhat, extra = LmerFit.mitml_stack(list(fits))
    assert names == list(fits[0].mitml_coef().index)
    for i, fit in enumerate(fits):
        np.testing.assert_array_equal(qhat[i], fit.coef.to_numpy())
        np.testing.assert_allclose(uhat[i], fit.vcov.to_numpy(), rtol=1e-14)
        pd.testing.assert_series_equal(extra[i], fit.mitml_extra(), check_names=False)
    assert list(extra.index) == ["Intercept~~Intercept|id", "x~~x|id", "Intercept~~x|id",
                                 "Residual~~Residual", "ICC|id"]
    # fits of two batches: per-fit methods, the same pooled numbers
    assert LmerFit.mitml_stack([fits[0], other[1], fits[2]]) is None
    fast = test_estimates(fits, extra_pars=True)
    mixed = test_estimates([fits[0], other[1], fits[2]], extra_pars=True)
    pd.testing.assert_frame_equal(fast.estimates, mixed.estimates, rtol=1e-13)
    pd.testing.assert_frame_equal(fast.extra_pars, mixed.extra_pars, rtol=1e-13)
