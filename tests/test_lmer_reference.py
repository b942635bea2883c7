"""lmer on R's 20 completed data sets (tests/reference/completed.csv) against mitml + lme4.

The model ``MathAchiev ~ 1 + Sex + I.SES + G.SES + (1 | ID)`` and its null model
``MathAchiev ~ 1 + Sex + (1 | ID)`` are fitted by REML to all 20 imputations at once, pooled with
the project's pooling functions, and compared with R's values in tests/reference/pooled.json.

Tolerance 1e-5 relative (the issue's target). lme4's optimiser (BOBYQA, ftol 1e-8) stops close
to, not at, the optimum; ours reaches it to a Newton decrement below 1e-12, and the pooled
quantities agree with R to about 1e-7.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis.anova import anova
from mitml_jax.analysis.constraints import test_constraints
from mitml_jax.analysis.estimates import test_estimates
from mitml_jax.analysis.lmer import LmerFit, lmer
from mitml_jax.analysis.lmer.deviance import LmerStats, deviance
from mitml_jax.analysis.models import test_models
from mitml_jax.analysis.r2 import multilevel_r2

HERE = os.path.join(os.path.dirname(__file__), "reference")
REF = json.load(open(os.path.join(HERE, "pooled.json")))
FULL = "MathAchiev ~ 1 + Sex + I.SES + G.SES + (1|ID)"
NULL = "MathAchiev ~ 1 + Sex + (1|ID)"


@pytest.fixture(scope="module")
def imputations():
    data = pd.read_csv(os.path.join(HERE, "completed.csv"))
    return [g.drop(columns=".imp").reset_index(drop=True) for _, g in data.groupby(".imp")]


@pytest.fixture(scope="module", params=["host", "xla"])
def fits(request, imputations):
    """Both optimisers: NumPy on the host (the default for a batch this small) and XLA."""
    from mitml_jax.analysis.lmer import batch

    saved = batch.HOST_MAX_WORK
    batch.HOST_MAX_WORK = saved if request.param == "host" else -1
    try:  # kept during the module's tests: ML refits and null models are fitted lazily
        assert batch.use_host(_stats_of(imputations)) == (request.param == "host")
        yield lmer(FULL, imputations), lmer(NULL, imputations)
    finally:
        batch.HOST_MAX_WORK = saved


def _stats_of(imputations):
    from mitml_jax.analysis.lmer.design import build_design, build_stats
    from mitml_jax.analysis.lmer.formula import parse_lmer_formula

    d = build_design(parse_lmer_formula(FULL), imputations)
    return build_stats(d.y, d.x, d.z, d.imp, d.cluster, d.m, d.n_clusters)[0]


def check_estimates(key, result, rtol=1e-5):
    ref = REF[key]["value"]["estimates"]
    ours = result.estimates.loc[ref["rownames"]]
    assert list(ours.columns) == ref["colnames"]
    np.testing.assert_allclose(ours.to_numpy(), np.array(ref["values"], float), rtol=rtol, atol=1e-12)


def check_test(key, result, rtol=1e-5):
    ref = np.array(REF[key]["value"]["test"]["values"], float)
    np.testing.assert_allclose(result.test.to_numpy(), ref, rtol=rtol, atol=1e-12)


def test_fits_are_optima(fits):
    full = fits[0]
    assert len(full) == 20 and all(isinstance(f, LmerFit) for f in full)
    batch = full[0]._batch
    assert np.all(batch.result["converged"]) and not np.any(batch.result["singular"])
    assert np.max(np.abs(batch.result["gradient"])) < 1e-4
    assert np.all(batch.result["hessian"][:, 0, 0] > 0)
    # the REML criterion rises on both sides of every optimum
    for i in (0, 7, 19):
        stats = LmerStats(*(np.asarray(a)[i] for a in batch.stats))
        theta = full[i].theta
        f0 = float(deviance(theta, stats, True))
        for h in (1e-3, -1e-3):
            assert float(deviance(theta + h, stats, True)) > f0
        assert np.isclose(f0, full[i].deviance, rtol=1e-12)
    assert full[0].nobs == 618 and full[0].ngroups == 50
    assert full[0].mitml_loglik()[1] == 6


def test_estimates_match_r(fits):
    res = test_estimates(fits[0])
    check_estimates("lmer_estimates", res)


def test_estimates_extra_dfcom_match_r(fits):
    res = test_estimates(fits[0], extra_pars=True, df_com=46)
    check_estimates("lmer_estimates_extra_dfcom46", res)
    ref = REF["lmer_estimates_extra_dfcom46"]["value"]["extra.pars"]
    assert list(res.extra_pars.index) == ref["rownames"]
    np.testing.assert_allclose(res.extra_pars["Estimate"], ref["values"], rtol=1e-5)


@pytest.mark.parametrize("key,kwargs", [
    ("lmer_D1", {}), ("lmer_D1_dfcom46", {"df_com": 46}), ("lmer_D2", {"method": "D2"}),
    ("lmer_D3", {"method": "D3"}), ("lmer_D4", {"method": "D4"}),
])
def test_models_match_r(fits, key, kwargs):
    res = test_models(*fits, **kwargs)
    check_test(key, res)


def test_ml_fits_d3_match_r(fits):
    ml_full = [f.mitml_refit_ml() for f in fits[0]]
    ml_null = [f.mitml_refit_ml() for f in fits[1]]
    assert not ml_full[0].mitml_is_reml() and ml_full[0]._batch is ml_full[5]._batch
    res = test_models(ml_full, ml_null, method="D3")
    check_test("lmer_ml_D3", res)


@pytest.mark.parametrize("key,constraints,method", [
    ("lmer_constraint_c1", ["I.SES", "G.SES"], "D1"),
    ("lmer_constraint_c2", "G.SES - I.SES", "D1"),
    ("lmer_constraint_c2_D2", "G.SES - I.SES", "D2"),
])
def test_constraints_match_r(fits, key, constraints, method):
    res = test_constraints(fits[0], constraints=constraints, method=method)
    check_test(key, res)
    ref = REF[key]["value"]
    np.testing.assert_allclose(res.Qbar, np.atleast_1d(ref["Qbar"]), rtol=1e-5)
    np.testing.assert_allclose(res.T.to_numpy().ravel(), np.ravel(ref["T"]["values"]), rtol=1e-5)


def test_anova_matches_r(fits):
    res = anova(fits[1], fits[0])
    ref = np.array(REF["lmer_anova"]["value"]["test"][0]["test"]["values"], float)
    np.testing.assert_allclose(res.test.to_numpy(), ref, rtol=1e-5)
    assert res.method == "D3"
    assert "Model 1: MathAchiev ~ 1 + Sex + I.SES + G.SES + (1 | ID)" in str(res)


def test_r2_matches_r(fits):
    res = multilevel_r2(fits[0])
    ref = REF["lmer_R2"]["value"]
    np.testing.assert_allclose(res[["RB1", "RB2", "SB", "MVP"]].to_numpy(),
                               [ref[k] for k in ("RB1", "RB2", "SB", "MVP")], rtol=1e-5)


def test_loglik_at_own_ml_estimates_is_ml_loglik(fits):
    ml = fits[0][3].mitml_refit_ml()
    assert np.isclose(ml.mitml_loglik_at(ml.mitml_params()), ml.mitml_loglik()[0], rtol=1e-12)
    # and lower anywhere else
    params = ml.mitml_params()
    params["sigma2"] *= 1.01
    assert ml.mitml_loglik_at(params) < ml.mitml_loglik()[0]


def test_d4_with_data_argument(fits, imputations):
    ml = [f.mitml_refit_ml() for f in fits[0]]
    assert ml[0].mitml_stacked_loglik_data(imputations) == pytest.approx(
        ml[0].mitml_stacked_loglik(ml), rel=1e-12)
    res = test_models(*fits, method="D4", data=imputations)
    check_test("lmer_D4", res)
