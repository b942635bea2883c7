"""Pooling on R's own 20 imputations (tests/reference/completed.csv) against mitml's results
(tests/reference/pooled.json, made by ../shared/reference/scripts/pooling.R).

Each model is refitted with statsmodels on each completed data set, pooled, and compared with
R's values and printed output.

Tolerances:
* lm (OLS) paths: rtol 1e-6 (both sides are closed-form; observed <= 2e-12).
* glm (binomial): rtol 1e-6 (observed <= 3e-14). The fits use R's IRLS stopping rule
  (``glm.control(epsilon = 1e-8)``: |dev - dev_old| < 1e-8 (|dev| + 0.1), i.e. statsmodels'
  ``fit(atol=1e-9, rtol=1e-8)``); R reports the covariance of its last IRLS step, so with
  statsmodels' default stopping rule (one more step) standard errors differ by ~2e-6 and the
  pooled df by ~1.4e-5.
* MixedLM vs lmer: rtol 1e-5 on estimates, standard errors, df, RIV, FMI, F and p. Fitted with
  ``fit_mixedlm`` (BFGS with gtol 1e-9), statsmodels reaches lme4's REML optimum closely: observed
  max relative differences 7e-9 (estimates), 1.3e-8 (D1, D2), 7e-8 (constraints), 1e-7 (R2),
  5e-7 (D3: ML refits and likelihoods at pooled parameters), 5e-9 (D4). statsmodels' default
  L-BFGS fit is off by up to 5e-5, so 1e-5 catches a loose fit; the margin over the observed
  values covers optimiser paths on other BLAS/platforms.
"""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis.adapters import r_term_name
from mitml_jax.analysis.anova import anova
from mitml_jax.analysis.constraints import test_constraints
from mitml_jax.analysis.estimates import test_estimates
from mitml_jax.analysis.models import test_models
from mitml_jax.analysis.r2 import multilevel_r2

HERE = os.path.join(os.path.dirname(__file__), "reference")
REF = json.load(open(os.path.join(HERE, "pooled.json")))
ALIASES = {"G.SES": "G_SES", "I.SES": "I_SES"}


def r_name(name):
    return r_term_name(name).replace("_SES", ".SES")


@pytest.fixture(scope="module")
def imputations():
    data = pd.read_csv(os.path.join(HERE, "completed.csv"))
    data = data.rename(columns={"I.SES": "I_SES", "G.SES": "G_SES"})
    return [g.drop(columns=".imp") for _, g in data.groupby(".imp")]


@pytest.fixture(scope="module")
def lm_fits(imputations):
    import statsmodels.formula.api as smf

    return ([smf.ols("ReadDis ~ SES + Sex", d).fit() for d in imputations],
            [smf.ols("ReadDis ~ Sex", d).fit() for d in imputations])


@pytest.fixture(scope="module")
def glm_fits(imputations):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    fam = sm.families.Binomial()
    r_rule = {"atol": 1e-9, "rtol": 1e-8}  # R's glm.control(epsilon = 1e-8)
    return ([smf.glm("HighDis ~ SES + Sex", d, family=fam).fit(**r_rule) for d in imputations],
            [smf.glm("HighDis ~ Sex", d, family=fam).fit(**r_rule) for d in imputations])


def _mixed(imputations, formula, reml=True):
    import statsmodels.formula.api as smf

    from mitml_jax.analysis.adapters_mixedlm import fit_mixedlm

    return [fit_mixedlm(smf.mixedlm(formula, d, groups="ID", missing="drop"), reml=reml)
            for d in imputations]


@pytest.fixture(scope="module")
def lmer_full(imputations):
    return _mixed(imputations, "MathAchiev ~ 1 + Sex + I_SES + G_SES")


@pytest.fixture(scope="module")
def lmer_fits(lmer_full, imputations):
    """Full and null REML fits (the null fits double the fitting time: tests using them are slow)."""
    return lmer_full, _mixed(imputations, "MathAchiev ~ 1 + Sex")


def check_estimates(key, result, rtol, atol=1e-12):
    ref = REF[key]["value"]["estimates"]
    ours = result.estimates.rename(index=r_name).loc[ref["rownames"]]
    assert list(ours.columns) == ref["colnames"]
    np.testing.assert_allclose(ours.to_numpy(), np.array(ref["values"], float), rtol=rtol, atol=atol)
    return ours


def check_test(key, result, rtol):
    ref = np.array(REF[key]["value"]["test"]["values"], float)
    np.testing.assert_allclose(result.test.to_numpy(), ref, rtol=rtol, atol=1e-12)
    flags = REF[key]["value"]
    for attr in ("m", "method", "use", "reml", "refit", "adj_df"):
        r_attr = attr.replace("_", ".")
        if r_attr in flags:
            assert getattr(result, attr) == flags[r_attr], attr


def same_print(ours: str, key: str, rename=None):
    """Printed output equal to R's, except the Call line (Python call syntax)."""
    text = ours
    for old, new in (rename or {}).items():
        text = text.replace(old, new)
    mine = text.rstrip("\n").split("\n")
    ref = REF[key]["printed"].rstrip("\n").split("\n")
    assert mine[:3] == ref[:3] and mine[4:] == ref[4:], "\n".join(mine) + "\n---\n" + "\n".join(ref)


# --- lm ------------------------------------------------------------------------------------------
def test_lm_estimates(lm_fits):
    res = test_estimates(lm_fits[0])
    check_estimates("lm_estimates", res, rtol=1e-6)
    res.estimates.index = [r_name(n) for n in res.estimates.index]
    res.estimates = res.estimates.loc[REF["lm_estimates"]["value"]["estimates"]["rownames"]]
    same_print(str(res), "lm_estimates")


@pytest.mark.parametrize("key,method", [("lm_D1", "D1"), ("lm_D2", "D2"), ("lm_D3", "D3"),
                                        ("lm_D4", "D4")])
def test_lm_models(lm_fits, key, method):
    res = test_models(*lm_fits, method=method)
    check_test(key, res, rtol=1e-6)
    same_print(str(res), key)


# --- glm -----------------------------------------------------------------------------------------
def test_glm_estimates(glm_fits):
    res = test_estimates(glm_fits[0])
    check_estimates("glm_estimates", res, rtol=1e-6)
    res.estimates = res.estimates.rename(index=r_name).loc[["(Intercept)", "SES", "SexGirl"]]
    same_print(str(res), "glm_estimates")


@pytest.mark.parametrize("key,method", [("glm_D1", "D1"), ("glm_D4", "D4")])
def test_glm_models(glm_fits, key, method):
    res = test_models(*glm_fits, method=method)
    check_test(key, res, rtol=1e-6)
    same_print(str(res), key)


def test_glm_d3_is_refused(glm_fits):
    from mitml_jax.errors import MitmlError

    with pytest.raises(MitmlError, match="D3"):
        test_models(*glm_fits, method="D3")


# --- lmer (statsmodels MixedLM) --------------------------------------------------------------------
def test_lmer_estimates(lmer_full):
    res = test_estimates(lmer_full)
    check_estimates("lmer_estimates", res, rtol=1e-5)


def test_lmer_estimates_extra_dfcom(lmer_full):
    res = test_estimates(lmer_full, extra_pars=True, df_com=46)
    check_estimates("lmer_estimates_extra_dfcom46", res, rtol=1e-5)
    assert list(res.extra_pars.index) == ["Intercept~~Intercept|ID", "Residual~~Residual", "ICC|ID"]
    printed = REF["lmer_estimates_extra_dfcom46"]["printed"]
    ref_extra = [float(x) for x in re.findall(r"^\S+\s+([0-9.]+) $", printed, flags=re.M)]
    np.testing.assert_allclose(res.extra_pars["Estimate"], ref_extra, rtol=1e-4, atol=5e-4)
    res.estimates.index = [r_name(n) for n in res.estimates.index]
    same_print(str(res), "lmer_estimates_extra_dfcom46")


@pytest.mark.slow
@pytest.mark.parametrize("key,kwargs", [("lmer_D1", {}), ("lmer_D1_dfcom46", {"df_com": 46}),
                                        ("lmer_D2", {"method": "D2"})])
def test_lmer_wald_tests(lmer_fits, key, kwargs):
    res = test_models(*lmer_fits, **kwargs)
    check_test(key, res, rtol=1e-5)
    same_print(str(res), key)


@pytest.mark.parametrize("key,constraints,method", [
    ("lmer_constraint_c1", ["I.SES", "G.SES"], "D1"),
    ("lmer_constraint_c2", "G.SES - I.SES", "D1"),
    ("lmer_constraint_c2_D2", "G.SES - I.SES", "D2"),
])
def test_lmer_constraints(lmer_full, key, constraints, method):
    res = test_constraints(lmer_full, constraints=constraints, method=method, names=ALIASES)
    check_test(key, res, rtol=1e-5)
    ref = REF[key]["value"]
    np.testing.assert_allclose(res.Qbar, np.atleast_1d(ref["Qbar"]), rtol=1e-5)
    np.testing.assert_allclose(res.T.to_numpy().ravel(),
                               np.ravel(ref["T"]["values"]), rtol=1e-5)
    same_print(str(res), key)


@pytest.mark.slow
@pytest.mark.parametrize("key,method", [("lmer_D3", "D3"), ("lmer_D4", "D4")])
def test_lmer_likelihood_tests(lmer_fits, key, method):
    res = test_models(*lmer_fits, method=method)
    check_test(key, res, rtol=1e-5)
    same_print(str(res), key)


@pytest.mark.slow
def test_lmer_ml_d3(imputations):
    full = _mixed(imputations, "MathAchiev ~ 1 + Sex + I_SES + G_SES", reml=False)
    null = _mixed(imputations, "MathAchiev ~ 1 + Sex", reml=False)
    res = test_models(full, null, method="D3")
    check_test("lmer_ml_D3", res, rtol=1e-5)
    same_print(str(res), "lmer_ml_D3")


@pytest.mark.slow
def test_lmer_anova(lmer_fits):
    res = anova(lmer_fits[1], lmer_fits[0])  # given in the wrong order: anova reorders
    np.testing.assert_allclose(res.test.to_numpy(),
                               np.array(REF["lmer_anova"]["value"]["test"][0]["test"]["values"]),
                               rtol=1e-5)
    assert res.method == "D3" and res.order_method == "logLik" and res.reml
    same_print(str(res), "lmer_anova", rename={"_SES": ".SES"})


@pytest.mark.slow
def test_lmer_r2(lmer_full):
    res = multilevel_r2(lmer_full)
    ref = REF["lmer_R2"]["value"]
    np.testing.assert_allclose(res[["RB1", "RB2", "SB", "MVP"]].to_numpy(),
                               [ref[k] for k in ("RB1", "RB2", "SB", "MVP")], rtol=1e-5)


@pytest.mark.slow
def test_batched_lmer_through_pooling():
    """The project's batched JAX ``lmer`` (native protocol, R term names) through every pooling path."""
    lmer_module = pytest.importorskip("mitml_jax.analysis.lmer")
    from mitml_jax.results.implist import ImputedList

    data = pd.read_csv(os.path.join(HERE, "completed.csv"))
    imps = ImputedList([g.drop(columns=".imp").reset_index(drop=True) for _, g in data.groupby(".imp")])
    fit = lmer_module.lmer("MathAchiev ~ 1 + Sex + I.SES + G.SES + (1|ID)", imps)
    fit0 = lmer_module.lmer("MathAchiev ~ 1 + Sex + (1|ID)", imps)
    res = test_estimates(fit, extra_pars=True, df_com=46)
    check_estimates("lmer_estimates_extra_dfcom46", res, rtol=1e-5)
    same_print(str(res), "lmer_estimates_extra_dfcom46")
    for key, kwargs in [("lmer_D1", {}), ("lmer_D1_dfcom46", {"df_com": 46}),
                        ("lmer_D2", {"method": "D2"}), ("lmer_D3", {"method": "D3"}),
                        ("lmer_D4", {"method": "D4"})]:
        check_test(key, test_models(fit, fit0, **kwargs), rtol=1e-5)
    check_test("lmer_constraint_c2", test_constraints(fit, constraints="G.SES - I.SES"), rtol=1e-5)
    res = anova(fit, fit0)
    same_print(str(res), "lmer_anova")
    ref = REF["lmer_R2"]["value"]
    np.testing.assert_allclose(multilevel_r2(fit).to_numpy(),
                               [ref[k] for k in ("RB1", "RB2", "SB", "MVP")], rtol=1e-5)
