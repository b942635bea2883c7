"""Pooling cross-checked against R's mitml on new scenarios (leadership data, m = 10).

Fixtures: ``tests/reference/crosscheck_pooling/`` made by ``make_crosscheck_pooling.R`` (mitml 0.4-4,
jomo 2.7-4, lme4 1.1-31): ``leadership_completed.csv.gz`` holds R's 10 completed data sets (jomo,
``JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)`` with ``COHES`` at level 2) and ``pooled.json`` R's
results on them. Both sides analyse the same completed data sets, the way a Python user would:
statsmodels OLS through ``implist.analyse`` and the package's batched ``implist.lmer``.

Covered here and not by ``test_pooling_reference.py``: lm with ``extra_pars``, scalar and
per-parameter ``df_com``, ``confint`` at other levels; D2 with ``use="likelihood"`` and
``ariv="positive"``, D4 with ``ariv="robust"`` (lm and lmer); nonlinear and several constraints
with D1 (``df_com``) and D2; a random-slope lmer (extra parameters with the intercept-slope
covariance, D1/D3/D4 against a model with fewer random effects, constraints, multilevel R2);
``anova`` on three lmer models with D3, D4 and D2, given in any order.

Tolerances (relative):
* lm: 1e-9 (both sides closed form; observed <= 6e-12).
* Constraints: mitml differentiates by forward differences (``numericDeriv``, step
  |theta_j| sqrt(eps)), we exactly (autodiff): the Jacobians differ by ~1e-8 (truncation and
  rounding noise of relative size sqrt(eps), which depends on the last bits of the estimates, so
  it cannot be reproduced), which moves F and df by up to 1.7e-6 (lm, three constraints with
  RIV 10): held to 1e-5 against testConstraints. The R script also runs mitml's testConstraints
  code with symbolic (``deriv``) Jacobians: against those, lm agrees to 1e-9.
* lmer: R's fits use tightened nloptwrap tolerances (see the R script): lme4's defaults stop up to
  1e-5 short of the REML optimum for the random-slope model (deviance 5e-8 above the optimum that
  our Newton fit reaches). With them, lme4's theta agrees with ours to ~1e-7 (the REML surface is
  flat there: the deviances agree to 1e-12); RIV and df amplify this (df = (m-1)(1+1/r)^2 moves by
  2/r times r's error, r = 0.05): observed <= 3.2e-6 for the random-slope models, <= 1.6e-7
  for random-intercept models. Held to 1e-5 and 1e-6 respectively.
* glm (binomial): 1e-7 (IRLS stopped by R's rule on both sides; observed <= 1e-11).
* p-values of testEstimates also get atol 1e-15: mitml computes ``2 * (1 - pt(|t|, df))``, which
  cancels to exactly 0 below ~1e-16 (justice intercept, t = 77.9); ours is the accurate tail.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax.analysis.adapters import as_fits, r_term_name
from mitml_jax.analysis.estimates import extract_estimates
from mitml_jax.results.implist import ImputedList
from mitml_jax.errors import MitmlError

HERE = os.path.join(os.path.dirname(__file__), "reference", "crosscheck_pooling")
REF = json.load(open(os.path.join(HERE, "pooled.json")))
LM_RTOL, SLOPE_RTOL, LMER_RTOL = 1e-9, 1e-5, 1e-6
LM_CONSTRAINTS = ["NEGLEAD*COHES - 0.5", "WLOADhigh/NEGLEAD", "exp(COHES) - 1"]
LMER_CONSTRAINTS = ["NEGLEAD/COHES", "NEGLEAD*WLOADhigh - 0.5"]
SLOPE = "JOBSAT ~ NEGLEAD + WLOAD + COHES + (1 + NEGLEAD|GRPID)"


@pytest.fixture(scope="module")
def implist():
    long = pd.read_csv(os.path.join(HERE, "leadership_completed.csv.gz"))
    long["WLOAD"] = pd.Categorical(long["WLOAD"], categories=["low", "high"])  # R's level order
    return ImputedList.from_long(long)


@pytest.fixture(scope="module")
def lm_fits(implist):
    import statsmodels.formula.api as smf

    return (implist.analyse(lambda d: smf.ols("JOBSAT ~ NEGLEAD + WLOAD + COHES", d).fit()),
            implist.analyse(lambda d: smf.ols("JOBSAT ~ NEGLEAD", d).fit()))


@pytest.fixture(scope="module")
def lmer_fits(implist):
    return (implist.lmer(SLOPE), implist.lmer("JOBSAT ~ NEGLEAD + WLOAD + (1|GRPID)"),
            implist.lmer("JOBSAT ~ NEGLEAD + (1|GRPID)"))


def _rows(ref_rownames):
    return [ref_rownames] if isinstance(ref_rownames, str) else list(ref_rownames)


def check_estimates(key, res, rtol):
    ref = REF[key]["value"]
    est = ref["estimates"]
    ours = res.estimates.rename(index=r_term_name).loc[_rows(est["rownames"])]
    assert list(ours.columns) == est["colnames"]
    # atol: R's p = 2 (1 - pt(|t|, df)) cancels to 0 below ~1e-16 (ours is the exact tail)
    np.testing.assert_allclose(ours.to_numpy(), np.array(est["values"], float), rtol=rtol, atol=1e-15)
    if ref.get("extra.pars") is None:
        assert res.extra_pars is None
    else:
        extra = ref["extra.pars"]
        assert list(res.extra_pars.index) == _rows(extra["rownames"])
        np.testing.assert_allclose(res.extra_pars["Estimate"].to_numpy(),
                                   np.ravel(np.array(extra["values"], float)), rtol=rtol)
    assert res.m == ref["m"] and res.adj_df == ref["adj.df"]


def check_test(key, res, rtol):
    ref = REF[key]["value"]
    np.testing.assert_allclose(res.test.to_numpy(), np.array(ref["test"]["values"], float),
                               rtol=rtol, atol=1e-300)
    for attr in ("m", "method", "use", "adj_df", "reml", "refit"):
        if attr.replace("_", ".") in ref:
            assert getattr(res, attr) == ref[attr.replace("_", ".")], attr
    if "Qbar" in ref:
        np.testing.assert_allclose(res.Qbar.to_numpy(), np.atleast_1d(ref["Qbar"]), rtol=rtol)
        np.testing.assert_allclose(res.T.to_numpy().ravel(), np.ravel(ref["T"]["values"]), rtol=rtol)


def check_confint(key, frame, rtol):
    ref = REF[key]["value"]
    ours = frame.rename(index=r_term_name).loc[_rows(ref["rownames"])]
    assert list(ours.columns) == ref["colnames"]
    np.testing.assert_allclose(ours.to_numpy(), np.array(ref["values"], float), rtol=rtol)


def same_print(ours, key):
    """Printed output equal to R's except the Call lines (Python call syntax)."""
    mine = str(ours).rstrip("\n").split("\n")
    ref = REF[key]["printed"].rstrip("\n").split("\n")
    start = ref.index("", 3)  # the Call may span lines in R
    assert mine[:3] == ref[:3] and mine[4:] == ref[start:], "\n".join(mine) + "\n---\n" + "\n".join(ref)


# --- lm (statsmodels OLS) --------------------------------------------------------------------------
def test_lm_estimates_extra_pars_and_df_com(lm_fits):
    check_estimates("lm_est", mj.test_estimates(lm_fits[0]), LM_RTOL)
    res = mj.test_estimates(lm_fits[0], extra_pars=True, df_com=746)
    check_estimates("lm_est_extra_dfcom", res, LM_RTOL)
    assert res.df_com == 746


def test_lm_df_com_per_parameter(lm_fits):
    """A df_com vector applies by position in the model's own parameter order (statsmodels puts
    the factor WLOAD before NEGLEAD; R's vector c(20, 30, 40, 50) is in R's order)."""
    r_df = dict(zip(["(Intercept)", "NEGLEAD", "WLOADhigh", "COHES"], [20, 30, 40, 50]))
    names, _, _ = extract_estimates(as_fits(lm_fits[0]))
    res = mj.test_estimates(lm_fits[0], df_com=[r_df[r_term_name(n)] for n in names])
    check_estimates("lm_est_dfcom_vec", res, LM_RTOL)


def test_lm_confint_levels(lm_fits):
    check_confint("lm_confint_90", mj.test_estimates(lm_fits[0], df_com=746).confint(level=0.90),
                  LM_RTOL)
    check_confint("lm_confint_999", mj.test_estimates(lm_fits[0]).confint(
        parm=["NEGLEAD", "COHES"], level=0.999), LM_RTOL)


@pytest.mark.parametrize("key,kwargs", [
    ("lm_D1", {}), ("lm_D1_dfcom", {"df_com": 746}), ("lm_D2", {"method": "D2"}),
    ("lm_D2_lik", {"method": "D2", "use": "likelihood"}),
    ("lm_D2_lik_pos", {"method": "D2", "use": "likelihood", "ariv": "positive"}),
    ("lm_D3", {"method": "D3"}), ("lm_D4", {"method": "D4"}),
    ("lm_D4_robust", {"method": "D4", "ariv": "robust"}),
])
def test_lm_models(lm_fits, key, kwargs):
    res = mj.test_models(*lm_fits, **kwargs)
    check_test(key, res, LM_RTOL)
    same_print(res, key)


LM_CONSTRAINT_CASES = [
    ("lm_con_ratio_D1", "NEGLEAD/COHES", {}),
    ("lm_con_multi_D1_dfcom", LM_CONSTRAINTS, {"df_com": 746}),
    ("lm_con_multi_D2", LM_CONSTRAINTS, {"method": "D2"}),
    ("lm_con_pow_D2_pos", ["Intercept + NEGLEAD^2", "COHES"], {"method": "D2", "ariv": "positive"}),
]


def test_lm_constraints_with_normal_distribution_functions(lm_fits):
    """R's pnorm, qnorm and dnorm in constraints (mitml evaluates any R function)."""
    res = mj.test_constraints(lm_fits[0], constraints=["pnorm(NEGLEAD) - 0.5",
                                                      "qnorm(plogis(COHES))", "dnorm(WLOADhigh)"])
    check_test("lm_con_pnorm", res, 1e-5)
    res = mj.test_constraints(lm_fits[0], constraints=["pnorm(NEGLEAD) - 0.5", "dnorm(WLOADhigh)"])
    check_test("lm_con_pnorm_exact", res, LM_RTOL)


def test_constraint_written_as_equation_is_refused_with_a_rewrite(lm_fits):
    """mitml fails on 'a*b = 0.5' with R's 'could not find function "*<-"'; we say what to write."""
    with pytest.raises(mj.MitmlError, match=r"write 'NEGLEAD\*COHES - \(0.5\)'"):
        mj.test_constraints(lm_fits[0], constraints=["NEGLEAD", "NEGLEAD*COHES = 0.5"])
    with pytest.raises(mj.MitmlError, match=r"write '`WLOAD\[T.high\]` - \(COHES\)'"):
        mj.test_constraints(lm_fits[0], constraints="`WLOAD[T.high]` == COHES")
    with pytest.raises(mj.MitmlError, match="comparison or assignment"):
        mj.test_constraints(lm_fits[0], constraints="NEGLEAD > 0")


def test_lm_anova_three_models_and_d4_data(implist, lm_fits):
    import statsmodels.formula.api as smf

    fit0 = implist.analyse(lambda d: smf.ols("JOBSAT ~ 1", d).fit())
    for key, models, method, ariv in [
            ("lm_anova3_D3", (lm_fits[0], lm_fits[1], fit0), "D3", "default"),
            ("lm_anova3_D4", (lm_fits[1], fit0, lm_fits[0]), "D4", "default"),
            ("lm_anova3_D4_robust", (lm_fits[0], lm_fits[1], fit0), "D4", "robust"),
            ("lm_anova3_D3_positive", (lm_fits[0], lm_fits[1], fit0), "D3", "positive")]:
        res = mj.anova(*models, method=method, ariv=ariv)
        ref = REF[key]["value"]
        np.testing.assert_allclose(res.test.to_numpy(),
                                   [t["test"]["values"][0] for t in ref["test"]], rtol=LM_RTOL)
        assert res.formula == ref["formula"] and res.order_method == ref["order.method"]
        assert res.method == method and not res.reml
        same_print(res, key)
    res = mj.test_models(*lm_fits, method="D4", data=list(implist))
    check_test("lm_D4_data", res, LM_RTOL)
    assert res.data
    same_print(res, "lm_D4_data")


@pytest.mark.parametrize("key,constraints,kwargs", LM_CONSTRAINT_CASES)
def test_lm_constraints_exact_jacobian(lm_fits, key, constraints, kwargs):
    res = mj.test_constraints(lm_fits[0], constraints=constraints, **kwargs)
    check_test(key, res, 1e-5)
    assert list(res.Qbar.index) == (list(constraints) if isinstance(constraints, list)
                                    else [constraints])


@pytest.mark.parametrize("key,constraints,kwargs", LM_CONSTRAINT_CASES)
def test_lm_constraints_against_r_exact_jacobian(lm_fits, key, constraints, kwargs):
    """Against mitml's testConstraints code with R's symbolic derivatives (deriv) in place of
    numericDeriv (``exact_constraints`` in the R script): the same numbers to 1e-9."""
    res = mj.test_constraints(lm_fits[0], constraints=constraints, **kwargs)
    check_test(key + "_exact", res, LM_RTOL)


def test_glm_anova_falls_back_to_d4(implist):
    """Binomial glm (statsmodels, R's IRLS stopping rule): D3 is not available, anova switches to
    D4 with mitml's warning; D2-likelihood and nonlinear constraints (exact Jacobians)."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    data = implist.within(lambda d: {"SAT": (d["JOBSAT"] > 0).astype(float)})

    def fit(formula):
        return data.analyse(lambda d: smf.glm(formula, d, family=sm.families.Binomial()).fit(
            atol=1e-9, rtol=1e-8))

    glm2, glm1, glm0 = fit("SAT ~ NEGLEAD + WLOAD + COHES"), fit("SAT ~ NEGLEAD"), fit("SAT ~ 1")
    with pytest.warns(mj.MitmlWarning, match=REF["glm_anova3"]["warnings"][0].replace("'", ".")):
        res = mj.anova(glm2, glm1, glm0)
    ref = REF["glm_anova3"]["value"]
    np.testing.assert_allclose(res.test.to_numpy(), [t["test"]["values"][0] for t in ref["test"]],
                               rtol=1e-7)
    assert res.method == "D4" and res.formula == ref["formula"]
    same_print(res, "glm_anova3")
    check_test("glm_D2_lik", mj.test_models(glm2, glm1, method="D2", use="likelihood"), 1e-7)
    res = mj.test_constraints(glm2, constraints=["exp(NEGLEAD) - 1", "WLOADhigh/COHES"])
    check_test("glm_con_exact", res, 1e-7)


# --- lmer (batched JAX fitter) -----------------------------------------------------------------------
def test_lmer_random_slope_estimates(lmer_fits):
    fit2, fit1, _ = lmer_fits
    check_estimates("lmer_slope_est_extra", mj.test_estimates(fit2, extra_pars=True), SLOPE_RTOL)
    with pytest.warns(mj.MitmlWarning, match="'var_comp' argument is deprecated. Please use "
                                              "'extra_pars' instead"):  # as mitml's var.comp
        res = mj.test_estimates(fit2, df_com=46, var_comp=True)
    check_estimates("lmer_slope_est_varcomp_dfcom", res, SLOPE_RTOL)
    assert REF["lmer_slope_est_varcomp_dfcom"]["warnings"] == [
        "The 'var.comp' argument is deprecated. Please use 'extra.pars' instead."]
    same_print(res, "lmer_slope_est_varcomp_dfcom")
    check_confint("lmer_slope_confint_80",
                  mj.test_estimates(fit2, df_com=46).confint(level=0.8), SLOPE_RTOL)
    res = mj.test_estimates(fit1, extra_pars=True)
    check_estimates("lmer_int_est_extra", res, LMER_RTOL)
    same_print(res, "lmer_int_est_extra")


@pytest.mark.parametrize("key,kwargs", [
    ("lmer_D1", {}), ("lmer_D1_dfcom", {"df_com": 46}), ("lmer_D2", {"method": "D2"}),
    ("lmer_D2_lik", {"method": "D2", "use": "likelihood"}), ("lmer_D3", {"method": "D3"}),
    ("lmer_D4", {"method": "D4"}), ("lmer_D4_robust", {"method": "D4", "ariv": "robust"}),
])
def test_lmer_models_random_intercept(lmer_fits, key, kwargs):
    res = mj.test_models(lmer_fits[1], lmer_fits[2], **kwargs)
    check_test(key, res, LMER_RTOL)
    same_print(res, key)


@pytest.mark.parametrize("key,kwargs", [
    ("lmer_slope_D1_dfcom", {"df_com": 46}), ("lmer_slope_D3", {"method": "D3"}),
    ("lmer_slope_D4", {"method": "D4"}),
])
def test_lmer_models_random_slope(lmer_fits, key, kwargs):
    res = mj.test_models(lmer_fits[0], lmer_fits[2], **kwargs)
    check_test(key, res, SLOPE_RTOL)
    same_print(res, key)


def test_lmer_two_random_slopes(implist, lmer_fits):
    """Three random effects: covariances named in R's order (upper triangle by column), D3 with
    pooled 3 x 3 tau against a model with one random slope, MVP with a 2-column Z."""
    fit3 = implist.lmer("JOBSAT ~ NEGLEAD + WLOAD + COHES + (1 + NEGLEAD + WLOAD|GRPID)")
    res = mj.test_estimates(fit3, extra_pars=True)
    check_estimates("lmer_slope2_est_extra", res, SLOPE_RTOL)
    for key, method in [("lmer_slope2_D3", "D3"), ("lmer_slope2_D4", "D4")]:
        res = mj.test_models(fit3, lmer_fits[0], method=method)
        check_test(key, res, SLOPE_RTOL)
        same_print(res, key)
    ref = REF["lmer_slope2_R2"]["value"]
    np.testing.assert_allclose(mj.multilevel_r2(fit3).to_numpy(), list(ref.values()), rtol=SLOPE_RTOL)


@pytest.mark.parametrize("key,kwargs", [("lmer_con_multi_D1_dfcom", {"df_com": 46}),
                                        ("lmer_con_multi_D2", {"method": "D2"})])
def test_lmer_nonlinear_constraints(lmer_fits, key, kwargs):
    """(With D2, df2 = 3088.236 is printed where R prints 3088.230: 1.8e-6 relative, lme4's
    optimum amplified by the small RIV 0.05, so the printed output is compared for D1 only.)"""
    res = mj.test_constraints(lmer_fits[0], constraints=LMER_CONSTRAINTS, **kwargs)
    check_test(key, res, SLOPE_RTOL)
    check_test(key + "_exact", res, SLOPE_RTOL)
    if kwargs.get("method") != "D2":
        same_print(res, key)


@pytest.mark.parametrize("key,order,method", [
    ("lmer_anova3_D3", (0, 1, 2), "D3"), ("lmer_anova3_D4", (2, 0, 1), "D4"),
    ("lmer_anova3_D2", (0, 1, 2), "D2"),
])
def test_lmer_anova_three_models(lmer_fits, key, order, method):
    res = mj.anova(*(lmer_fits[i] for i in order), method=method)
    ref = REF[key]["value"]
    expected = np.array([t["test"]["values"][0] for t in ref["test"]], float)
    np.testing.assert_allclose(res.test.to_numpy(), expected, rtol=SLOPE_RTOL)
    np.testing.assert_allclose(res.test.to_numpy()[1], expected[1], rtol=LMER_RTOL)
    assert res.method == ref["method"] and res.use == "likelihood" and res.reml == ref["reml"]
    assert res.order_method == ref["order.method"] and res.formula == ref["formula"]
    same_print(res, key)


@pytest.mark.parametrize("key,which,fit", [
    ("lmer_slope_R2", ("RB1", "RB2", "SB", "MVP"), 0), ("lmer_slope_R2_sub", ("sb", "MVP"), 0),
    ("lmer_int_R2", ("RB1", "RB2", "SB", "MVP"), 1),
])
def test_multilevel_r2(lmer_fits, key, which, fit):
    res = mj.multilevel_r2(lmer_fits[fit], print=which)
    ref = REF[key]["value"]
    assert list(res.index) == list(ref)
    np.testing.assert_allclose(res.to_numpy(), list(ref.values()),
                               rtol=SLOPE_RTOL if fit == 0 else LMER_RTOL)


# --- estimates that do not vary across imputations ---------------------------------------------------
CONST_Q = pd.DataFrame(np.tile([[0.1], [0.7]], (1, 10)), index=["a", "b"])
CONST_U = np.repeat(np.diag([0.01, 0.02])[:, :, None], 10, axis=2)


def test_constant_estimates_give_riv_zero_and_df_inf():
    """mitml: RIV exactly 0, df Inf, Estimate exactly the common value. The float64 mean of ten
    copies of 0.1 is 0.09999999999999999, which gave RIV ~1e-32 and df ~1e64 (printed 1.624e+64
    instead of Inf) before pooling used R's corrected mean."""
    res = mj.test_estimates(qhat=CONST_Q, uhat=CONST_U)
    check_estimates("const_est", res, LM_RTOL)
    assert (res.estimates["RIV"] == 0).all() and np.isinf(res.estimates["df"]).all()
    assert (res.estimates["Estimate"].to_numpy() == [0.1, 0.7]).all()
    same_print(res, "const_est")
    check_estimates("const_est_dfcom", mj.test_estimates(qhat=CONST_Q, uhat=CONST_U, df_com=30),
                    LM_RTOL)
    res = mj.test_constraints(qhat=CONST_Q, uhat=CONST_U, constraints=["a - 0.3", "b"])
    check_test("const_D1", res, 1e-6)  # numericDeriv in R: F = 14.249999910593 for exactly 14.25
    same_print(res, "const_D1")
    res = mj.test_constraints(qhat=CONST_Q, uhat=CONST_U, constraints=["a - 0.3", "b"], method="D2")
    check_test("const_D2", res, 1e-6)  # R's numericDeriv: F = 14.249999910593 for exactly 14.25
    assert res.test["RIV"].iloc[0] == 0 and np.isinf(res.test["df2"].iloc[0])
    same_print(res, "const_D2")


def test_constant_lm_fit(implist):
    """The same model fitted to a complete variable in every data set (lm(GRPID ~ 1))."""
    import statsmodels.formula.api as smf

    fit = implist.analyse(lambda d: smf.ols("GRPID ~ 1", d).fit())
    res = mj.test_estimates(fit)
    check_estimates("lm_const_est", res, LM_RTOL)
    check_confint("lm_const_confint", res.confint(), LM_RTOL)
    check_test("lm_const_D1", mj.test_constraints(fit, constraints="Intercept - 25"), 1e-6)
    res = mj.test_constraints(fit, constraints="Intercept - 25", method="D2")
    check_test("lm_const_D2", res, 1e-6)
    assert res.test["RIV"].iloc[0] == 0 and np.isinf(res.test["df2"].iloc[0])


# --- missing values left in a predictor ------------------------------------------------------------
@pytest.fixture(scope="module")
def implist_na(implist):
    """R's completed data sets with WLOAD missing again where it is missing in ``leadership``."""
    missing = mj.load_leadership()["WLOAD"].isna().to_numpy()

    def blank(d):
        d = d.copy()
        d.loc[missing, "WLOAD"] = np.nan
        return d

    return ImputedList([blank(d) for d in implist])


def test_likelihood_tests_warn_when_models_use_different_rows(implist_na):
    """lme4 and our lmer drop the rows with missing WLOAD from the full model only: D3 then
    compares log-likelihoods of different data. mitml reports F = 464 silently; we give the same
    numbers (parity) with a MitmlWarning naming the numbers of observations."""
    fit = implist_na.lmer("JOBSAT ~ NEGLEAD + WLOAD + (1|GRPID)")
    fit0 = implist_na.lmer("JOBSAT ~ NEGLEAD + (1|GRPID)")
    assert fit[0].nobs == 664 and fit0[0].nobs == 750
    with pytest.warns(mj.MitmlWarning, match=r"different numbers of observations \(664 and 750"):
        res = mj.test_models(fit, fit0, method="D3")
    check_test("na_D3", res, LMER_RTOL)
    for kwargs in ({"method": "D4"}, {"method": "D2", "use": "likelihood"}):
        with pytest.warns(mj.MitmlWarning, match="different numbers of observations"):
            mj.test_models(fit, fit0, **kwargs)
    with pytest.warns(mj.MitmlWarning, match="different numbers of observations"):
        mj.anova(fit, fit0)
    import warnings

    with warnings.catch_warnings():  # Wald tests use the full model only: no warning
        warnings.simplefilter("error", mj.MitmlWarning)
        mj.test_models(fit, fit0)
        mj.test_models(fit, fit0, method="D2")


def test_multilevel_r2_null_model_on_the_models_rows(implist_na):
    """Deliberate deviation: mitml refits the null model y ~ 1 + (1|g) with update(), i.e. on all
    rows with an observed y, also those the model dropped for missing predictors (RB1 0.138
    instead of 0.089 here). We fit it to the model's own rows: equal to mitml on the complete
    rows; MVP (no null model) equals mitml's either way."""
    res = mj.multilevel_r2(implist_na.lmer("JOBSAT ~ NEGLEAD + WLOAD + (1|GRPID)"))
    same_rows = REF["na_R2_same_rows"]["value"]
    np.testing.assert_allclose(res.to_numpy(), list(same_rows.values()), rtol=LMER_RTOL)
    mitml = REF["na_R2"]["value"]
    assert abs(res["MVP"] / mitml["MVP"] - 1) < LMER_RTOL
    assert abs(res["RB1"] - mitml["RB1"]) > 0.04
    rows = ImputedList([d.dropna(subset=["WLOAD"]) for d in implist_na])
    res_cc = mj.multilevel_r2(rows.lmer("JOBSAT ~ NEGLEAD + WLOAD + (1|GRPID)"))
    np.testing.assert_allclose(res_cc.to_numpy(), res.to_numpy(), rtol=1e-10)


# --- justice (m = 5): factor and cross-level interaction, random slope --------------------------------
@pytest.fixture(scope="module")
def justice():
    long = pd.read_csv(os.path.join(HERE, "justice_completed.csv.gz"))
    long["sex"] = pd.Categorical(long["sex"], categories=["male", "female"])
    return ImputedList.from_long(long)


def test_justice_random_slope_with_interaction(justice):
    fit2 = justice.lmer("sat ~ 1 + sex + jor*jcl + (1 + jor|id)")
    fit1 = justice.lmer("sat ~ 1 + sex + jor + (1 + jor|id)")
    res = mj.test_estimates(fit2, extra_pars=True, df_com=100)
    check_estimates("justice_est_extra_dfcom", res, SLOPE_RTOL)
    same_print(res, "justice_est_extra_dfcom")
    for key, kwargs in [("justice_D1_dfcom", {"df_com": 100}), ("justice_D2", {"method": "D2"}),
                        ("justice_D3", {"method": "D3"}), ("justice_D4", {"method": "D4"})]:
        res = mj.test_models(fit2, fit1, **kwargs)
        check_test(key, res, SLOPE_RTOL)
        same_print(res, key)
    res = mj.test_constraints(fit2, constraints=["`jor:jcl`", "jor + `jor:jcl`", "sexfemale"],
                              df_com=100)
    check_test("justice_con", res, SLOPE_RTOL)
    check_test("justice_con_exact", res, SLOPE_RTOL)
    same_print(res, "justice_con")
    ref = REF["justice_R2"]["value"]
    np.testing.assert_allclose(mj.multilevel_r2(fit2).to_numpy(), list(ref.values()), rtol=SLOPE_RTOL)


def test_justice_lm_with_statsmodels_names(justice):
    """statsmodels spells the terms ``sex[T.female]``; R's spelling works in constraints too."""
    import statsmodels.formula.api as smf

    fit = justice.analyse(lambda d: smf.ols("sat ~ sex + jor*jcl", d).fit())
    check_estimates("justice_lm_est", mj.test_estimates(fit, extra_pars=True), LM_RTOL)
    for constraints in (["`jor:jcl`/jor", "sexfemale*jcl"], ["`jor:jcl`/jor", "`sex[T.female]`*jcl"]):
        res = mj.test_constraints(fit, constraints=constraints, method="D2")
        check_test("justice_lm_con_exact", res, LM_RTOL)
        check_test("justice_lm_con", res, 1e-5)


@pytest.mark.slow
def test_statsmodels_mixedlm_random_slope(implist):
    """The same random-slope comparisons through statsmodels MixedLM (``fit_mixedlm``), ~30 s."""
    import statsmodels.formula.api as smf

    from mitml_jax.analysis.adapters_mixedlm import fit_mixedlm

    def fit(formula, re_formula=None):
        return implist.analyse(lambda d: fit_mixedlm(smf.mixedlm(formula, d, groups="GRPID",
                                                                 re_formula=re_formula)))

    fit2 = fit("JOBSAT ~ NEGLEAD + WLOAD + COHES", "~NEGLEAD")
    fit1 = fit("JOBSAT ~ NEGLEAD + WLOAD")
    fit0 = fit("JOBSAT ~ NEGLEAD")
    check_estimates("lmer_slope_est_extra", mj.test_estimates(fit2, extra_pars=True), SLOPE_RTOL)
    for key, kwargs in [("lmer_slope_D1_dfcom", {"df_com": 46}), ("lmer_slope_D3", {"method": "D3"}),
                        ("lmer_slope_D4", {"method": "D4"})]:
        check_test(key, mj.test_models(fit2, fit0, **kwargs), SLOPE_RTOL)
    check_test("lmer_D2_lik", mj.test_models(fit1, fit0, method="D2", use="likelihood"), LMER_RTOL)
    check_test("lmer_con_multi_D1_dfcom",
               mj.test_constraints(fit2, constraints=LMER_CONSTRAINTS, df_com=46), SLOPE_RTOL)
    res = mj.anova(fit0, fit2, fit1)
    np.testing.assert_allclose(
        res.test.to_numpy(), [t["test"]["values"][0] for t in REF["lmer_anova3_D3"]["value"]["test"]],
        rtol=SLOPE_RTOL)
    ref = REF["lmer_slope_R2"]["value"]
    np.testing.assert_allclose(mj.multilevel_r2(fit2).to_numpy(), list(ref.values()), rtol=SLOPE_RTOL)


def test_lm_df_com_by_parameter_name(lm_fits):
    """df_com as a dict or Series keyed by parameter name gives R's per-parameter result whatever
    the model's own parameter order; names missing or unknown are refused by name."""
    r_df = dict(zip(["(Intercept)", "NEGLEAD", "WLOADhigh", "COHES"], [20, 30, 40, 50]))
    names, _, _ = extract_estimates(as_fits(lm_fits[0]))
    by_name = {n: r_df[r_term_name(n)] for n in reversed(names)}  # not the model's order
    check_estimates("lm_est_dfcom_vec", mj.test_estimates(lm_fits[0], df_com=by_name), LM_RTOL)
    check_estimates("lm_est_dfcom_vec", mj.test_estimates(lm_fits[0], df_com=pd.Series(by_name)), LM_RTOL)
    short = dict(list(by_name.items())[1:])
    with pytest.raises(MitmlError, match="no value for"):
        mj.test_estimates(lm_fits[0], df_com=short)
    with pytest.raises(MitmlError, match="unknown parameter"):
        mj.test_estimates(lm_fits[0], df_com=dict(by_name, WLOADhigh=40))
