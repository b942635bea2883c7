"""Regression tests of the analysis and pooling QA pass (adversarial use of test_estimates,
test_models, test_constraints, anova and multilevel_r2). Each test failed before its fix: a
traceback from NumPy/pandas instead of a MitmlError, a warning storm, or silently wrong numbers.

Small protocol fits and 3 to 5 of R's vignette imputations keep the file fast.
"""

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis.constraints import test_constraints
from mitml_jax.analysis.estimates import test_estimates
from mitml_jax.analysis.models import test_models
from mitml_jax.analysis.r2 import multilevel_r2
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

HERE = os.path.join(os.path.dirname(__file__), "reference")


class Fit:
    """A minimal protocol fit with parameters ``names``."""

    def __init__(self, coef, vcov, names=("a", "b")):
        self.names = list(names)
        self.coef = np.asarray(coef, dtype=float)
        self.vcov = np.asarray(vcov, dtype=float)

    def mitml_coef(self):
        return pd.Series(self.coef, index=self.names)

    def mitml_vcov(self):
        return pd.DataFrame(self.vcov, index=self.names, columns=self.names)


def _fits(m=4):
    rng = np.random.default_rng(1)
    return [Fit([1.0, 2.0] + rng.normal(0, 0.1, 2), np.diag([0.1, 0.2])) for _ in range(m)]


@pytest.fixture(scope="module")
def frames():
    data = pd.read_csv(os.path.join(HERE, "completed.csv"))
    data = data.rename(columns={"I.SES": "I_SES", "G.SES": "G_SES"})
    return [g.drop(columns=".imp").reset_index(drop=True) for _, g in data.groupby(".imp")][:5]


# --- test_estimates -------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["abc", [[10, 20]], True, {"a": "x", "b": 30}])
def test_df_com_of_wrong_type_or_shape_is_refused_by_name(bad):
    with pytest.raises(MitmlError, match="'df_com'"):
        test_estimates(_fits(), df_com=bad)


def test_infinite_df_com_is_the_large_sample_limit():
    fits = _fits()
    plain = test_estimates(fits).estimates
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = test_estimates(fits, df_com=np.inf).estimates
        mixed = test_estimates(fits, df_com=[np.inf, 30]).estimates
    np.testing.assert_allclose(res.to_numpy(), plain.to_numpy(), rtol=1e-12)
    assert mixed.loc["a", "df"] == pytest.approx(plain.loc["a", "df"], rel=1e-12)
    assert mixed.loc["b", "df"] < plain.loc["b", "df"]


def test_qhat_series_in_different_orders_are_aligned_by_name():
    q = [pd.Series({"a": 1.0, "b": 2.0}), pd.Series({"b": 2.2, "a": 1.1}),
         pd.Series({"a": 0.9, "b": 1.9})]
    u = [np.diag([0.1, 0.2])] * 3
    est = test_estimates(qhat=q, uhat=[pd.DataFrame(x, index=["a", "b"], columns=["a", "b"])
                                       for x in u]).estimates
    assert est.loc["a", "Estimate"] == pytest.approx(1.0)
    assert est.loc["b", "Estimate"] == pytest.approx(2.0333333333333)
    with pytest.raises(MitmlError, match="'qhat'.*names"):
        test_estimates(qhat=[pd.Series({"a": 1.0, "b": 2.0}), pd.Series({"a": 1.0, "c": 2.0})])


def test_qhat_of_strings_is_refused_by_name():
    with pytest.raises(MitmlError, match="'qhat'"):
        test_estimates(qhat=["a", "b"], uhat=[0.1, 0.1])


def test_non_finite_estimates_warn_naming_fit_and_parameter():
    fits = _fits()
    fits[2] = Fit([np.inf, 2.0], np.diag([0.1, 0.2]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = test_estimates(fits).estimates
    messages = [str(w.message) for w in caught]
    assert len(caught) == 1 and issubclass(caught[0].category, MitmlWarning), messages
    assert "'a'" in messages[0] and "3" in messages[0]
    assert np.isnan(est.loc["a", "Estimate"]) and np.isfinite(est.loc["b", "Std.Error"])


def test_negative_variances_are_refused():
    fits = _fits()
    fits[1] = Fit([1.0, 2.0], np.diag([-0.1, 0.2]))
    with pytest.raises(MitmlError, match="negative.*'a'"):
        test_estimates(fits)
    with pytest.raises(MitmlError, match="'uhat'.*negative"):
        test_estimates(qhat=np.array([[1.0, 2.0, 1.5]]), uhat=np.array([[0.1, -0.1, 0.1]]))


def test_extra_pars_unavailable_warns_once(frames):
    import statsmodels.formula.api as smf

    fits = [smf.logit("HighDis ~ SES", d).fit(disp=0) for d in frames]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = test_estimates(fits, extra_pars=True)
    assert res.extra_pars is None
    assert len(caught) == 1 and "variance components" in str(caught[0].message)


def test_extra_pars_must_be_a_flag():
    with pytest.raises(MitmlTypeError, match="'extra_pars'"):
        test_estimates(_fits(), extra_pars="yes")


def test_confint_arguments_are_checked_by_name():
    res = test_estimates(_fits())
    with pytest.raises(MitmlTypeError, match="'level'"):
        res.confint("0.9")
    with pytest.raises(MitmlError, match="'parm'.*'c'"):
        res.confint(parm="c")
    with pytest.raises(MitmlError, match="'parm'"):
        res.confint(parm=5)


def test_confint_accepts_r_spelling_of_terms(frames):
    import statsmodels.formula.api as smf

    res = test_estimates([smf.ols("ReadDis ~ SES + Sex", d).fit() for d in frames])
    ci = res.confint(parm=["(Intercept)", "SexGirl"])
    assert list(ci.index) == ["Intercept", "Sex[T.Girl]"]


def test_multi_equation_statsmodels_results_are_pooled(frames):
    import statsmodels.formula.api as smf

    def fit(d):
        d = d.assign(FS=(d.FedState == "B").astype(int) + (d.SES > 40))
        return smf.mnlogit("FS ~ SES", d).fit(disp=0)

    fits = [fit(d) for d in frames]
    res = test_estimates(fits)
    assert list(res.estimates.index) == ["1:Intercept", "1:SES", "2:Intercept", "2:SES"]
    first = fits[0].params.to_numpy().T.ravel()
    assert np.all(np.isfinite(res.estimates.to_numpy()))
    assert res.estimates["Estimate"].to_numpy() == pytest.approx(
        np.mean([f.params.to_numpy().T.ravel() for f in fits], axis=0))
    assert first.size == 4


def test_unsupported_element_is_named_by_position():
    fits = _fits()
    fits[2] = None
    with pytest.raises(MitmlTypeError, match="element 3"):
        test_estimates(fits)


# --- test_models ----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-3, "x", np.nan])
def test_d1_df_com_is_checked_by_name(bad):
    fits = _fits()
    nulls = [Fit(f.coef[:1], f.vcov[:1, :1], names=["a"]) for f in fits]
    with pytest.raises(MitmlError, match="'df_com'"):
        test_models(fits, nulls, df_com=bad)


def test_d1_infinite_df_com_is_the_large_sample_limit():
    fits = _fits()
    nulls = [Fit(f.coef[:1], f.vcov[:1, :1], names=["a"]) for f in fits]
    plain = test_models(fits, nulls).test
    res = test_models(fits, nulls, df_com=np.inf).test
    np.testing.assert_allclose(res.to_numpy(), plain.to_numpy(), rtol=1e-12)


def test_non_nested_models_warn():
    fits = _fits()
    others = [Fit([f.coef[0], 0.3], np.diag([0.1, 0.2]), names=["a", "c"]) for f in fits]
    with pytest.warns(MitmlWarning, match="'c'.*not nested"):
        test_models(fits, others)


def test_intercept_spellings_match_across_model_classes(frames):
    import statsmodels.formula.api as smf

    from mitml_jax.analysis.lmer import lmer

    full = lmer("ReadDis ~ 1 + SES + (1|ID)", frames[:3])
    null = [smf.mixedlm("ReadDis ~ 1", d, groups="ID").fit() for d in frames[:3]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = test_models(full, null)
    assert res.test["df1"].iloc[0] == 1  # SES only; '(Intercept)' is 'Intercept'


# --- test_constraints -----------------------------------------------------------------------

@pytest.mark.parametrize("constraints, culprit", [
    ("2 - 1", "does not depend"), (["a", "a"], "linearly dependent"),
    (["a - b", "2*(a - b)"], "linearly dependent")])
def test_singular_constraints_are_explained(constraints, culprit):
    with pytest.raises(MitmlError, match=culprit):
        test_constraints(_fits(), constraints=constraints)


@pytest.mark.parametrize("bad", [None, [1, 2], ["a", 3]])
def test_constraints_must_be_strings(bad):
    with pytest.raises(MitmlTypeError, match="'constraints'"):
        test_constraints(_fits(), constraints=bad)


def test_constraint_names_must_be_a_mapping():
    with pytest.raises(MitmlTypeError, match="'names'"):
        test_constraints(_fits(), constraints="x", names=["a"])


def test_non_finite_constraint_is_refused_naming_it():
    with pytest.raises(MitmlError, match="'log\\(a - a\\)'.*not finite"):
        test_constraints(_fits(), constraints="log(a - a)")


@pytest.mark.parametrize("bad", [-1, "a"])
def test_constraints_df_com_is_checked(bad):
    with pytest.raises(MitmlError, match="'df_com'"):
        test_constraints(_fits(), constraints="a", df_com=bad)


def test_r_spelling_of_powers_in_term_names(frames):
    import statsmodels.formula.api as smf

    fits = [smf.ols("ReadDis ~ SES + I(SES**2)", d).fit() for d in frames]
    r = test_constraints(fits, constraints="`I(SES^2)`")
    p = test_constraints(fits, constraints="`I(SES ** 2)`")
    np.testing.assert_allclose(r.test.to_numpy(), p.test.to_numpy())


# --- multilevel_r2 --------------------------------------------------------------------------

def test_r2_print_is_checked_by_name():
    with pytest.raises(MitmlTypeError, match="'print'"):
        multilevel_r2(_fits(), print=5)
    with pytest.raises(MitmlError, match="'XX'"):
        multilevel_r2(_fits(), print="XX")


# --- likelihood-based tests on models without a likelihood ----------------------------------

@pytest.mark.parametrize("kind", ["gee", "quantreg"])
@pytest.mark.parametrize("method, use", [("D2", "likelihood"), ("D3", "wald"), ("D4", "wald")])
def test_likelihood_tests_refuse_models_without_likelihood(frames, kind, method, use):
    import statsmodels.formula.api as smf

    def fit(formula, d):
        if kind == "gee":
            return smf.gee(formula, "ID", d).fit()
        return smf.quantreg(formula, d).fit()

    full = [fit("ReadDis ~ SES", d) for d in frames[:3]]
    null = [fit("ReadDis ~ 1", d) for d in frames[:3]]
    with pytest.raises(MitmlError, match="'D1' or 'D2'"):
        test_models(full, null, method=method, use=use)
    assert np.isfinite(test_models(full, null).test["F.value"].iloc[0])


def test_df_com_by_name_accepts_either_spelling(frames):
    from mitml_jax.analysis.lmer import lmer

    fits = lmer("ReadDis ~ 1 + SES + (1|ID)", frames[:3])
    by_r = test_estimates(fits, df_com={"(Intercept)": 30, "SES": 40}).estimates
    by_py = test_estimates(fits, df_com={"Intercept": 30, "SES": 40}).estimates
    np.testing.assert_allclose(by_r.to_numpy(), by_py.to_numpy())


def test_anova_warns_about_mixed_classes_once(frames):
    import statsmodels.formula.api as smf

    from mitml_jax.analysis.anova import anova
    from mitml_jax.analysis.lmer import lmer

    full = lmer("ReadDis ~ 1 + SES + (1|ID)", frames[:3])
    null = [smf.ols("ReadDis ~ 1", d).fit() for d in frames[:3]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anova(full, null)
    assert sum("different classes" in str(w.message) for w in caught) == 1


@pytest.mark.parametrize("method", ["D1", "D2"])
def test_wald_tests_refuse_unidentified_parameters(frames, method):
    import statsmodels.formula.api as smf

    data = [d.assign(SES2=2 * d.SES) for d in frames[:3]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' SingularMatrixWarning at the fit
        full = [smf.ols("ReadDis ~ SES + SES2 + Sex", d).fit() for d in data]
    null = [smf.ols("ReadDis ~ Sex", d).fit() for d in data]
    with pytest.raises(MitmlError, match="singular.*not identified"):
        test_models(full, null, method=method)


def test_qhat_frame_with_imputations_in_rows(frames):
    import statsmodels.formula.api as smf

    fits = [smf.ols("ReadDis ~ SES + Sex", d).fit() for d in frames]
    ref = test_estimates(fits).estimates
    rows = pd.DataFrame([f.params for f in fits])  # imputations in rows, names in columns
    est = test_estimates(qhat=rows, uhat=[f.cov_params() for f in fits]).estimates
    pd.testing.assert_frame_equal(est, ref, rtol=1e-12)
    only = test_estimates(qhat=rows).estimates
    np.testing.assert_allclose(only["Estimate"], ref["Estimate"], rtol=1e-12)
    columns = pd.DataFrame({i: f.params for i, f in enumerate(fits)})  # mitml's layout
    np.testing.assert_allclose(test_estimates(qhat=columns).estimates["Estimate"],
                               ref["Estimate"], rtol=1e-12)


def test_d4_with_data_prints_nothing(frames, capsys):
    import statsmodels.formula.api as smf

    data = [d.assign(Y=(d.ReadDis > 2.5).astype(int)) for d in frames[:3]]
    full = [smf.logit("Y ~ SES + Sex", d).fit(disp=0) for d in data]
    null = [smf.logit("Y ~ Sex", d).fit(disp=0) for d in data]
    with_data = test_models(full, null, method="D4", data=data).test
    assert capsys.readouterr().out == ""
    np.testing.assert_allclose(with_data.to_numpy(),
                               test_models(full, null, method="D4").test.to_numpy(), rtol=1e-6)


# --- lmer -----------------------------------------------------------------------------------

def test_lmer_refuses_text_response_by_name(frames):
    from mitml_jax.analysis.lmer import lmer

    with pytest.raises(MitmlTypeError, match="response 'FedState' must be numeric"):
        lmer("FedState ~ 1 + SES + (1|ID)", frames[:2])


def test_lmer_refuses_exactly_fitted_response(frames):
    from mitml_jax.analysis.lmer import lmer

    data = [d.assign(one=1.0) for d in frames[:2]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: a NumPy RuntimeWarning and NaN estimates
        with pytest.raises(MitmlError, match="reproduce the response exactly"):
            lmer("one ~ 1 + SES + (1|ID)", data)


def test_different_terms_message_hints_at_factor_levels():
    fits = _fits(3)
    fits[1] = Fit([1.0, 2.0], np.eye(2), names=["a", "c"])
    with pytest.raises(MitmlError, match="factor level"):
        test_estimates(fits)


def test_reiter_df_undefined_for_tiny_k_m_says_so():
    fits = _fits(3)
    nulls = [Fit(f.coef[:1], f.vcov[:1, :1], names=["a"]) for f in fits]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = test_models(fits, nulls, df_com=50).test  # k (m - 1) = 2
    assert np.isnan(res["df2"].iloc[0]) and np.isfinite(res["F.value"].iloc[0])  # as mitml
    assert [w.category for w in caught] == [MitmlWarning]
    assert "undefined" in str(caught[0].message)


def test_a_list_per_data_set_is_explained(frames):
    from mitml_jax.analysis.lmer import lmer

    nested = [lmer("ReadDis ~ 1 + SES + (1|ID)", [d]) for d in frames[:2]]
    with pytest.raises(MitmlTypeError, match="returned a list per data set.*implist.lmer"):
        test_estimates(nested)


def test_minimal_protocol_fits_extra_pars_warn_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = test_estimates(_fits(), extra_pars=True)
    assert res.extra_pars is None and len(caught) == 1
    assert "class 'Fit'" in str(caught[0].message)


def test_df_com_series_without_names_is_in_model_order():
    fits = _fits()
    ref = test_estimates(fits, df_com=[20, 30]).estimates
    res = test_estimates(fits, df_com=pd.Series([20, 30])).estimates
    pd.testing.assert_frame_equal(res, ref)


def test_repeated_parameter_names_are_refused():
    fits = [Fit([1.0, 2.0 + 0.1 * i], np.eye(2), names=["a", "a"]) for i in range(3)]
    with pytest.raises(MitmlError, match="'a'.*unique"):
        test_estimates(fits)
    with pytest.raises(MitmlError, match="'a'.*unique"):
        test_constraints(fits, constraints="a")


def test_mixedlm_r2_needs_a_random_intercept(frames):
    import statsmodels.formula.api as smf

    from mitml_jax.analysis.adapters_mixedlm import fit_mixedlm

    fits = [fit_mixedlm(smf.mixedlm("ReadDis ~ SES", d, groups="ID", re_formula="~0+SES"))
            for d in frames[:2]]
    with pytest.raises(MitmlError, match="random intercept"):  # was RB2 = 0.9997
        multilevel_r2(fits)


class _LogLikFit(Fit):
    """A protocol fit with a log-likelihood."""

    def __init__(self, ll, k, names):
        super().__init__(np.ones(len(names)), np.eye(len(names)), names)
        self.ll, self.k = ll, k

    def mitml_loglik(self):
        return self.ll, self.k


def test_d2_likelihood_with_a_better_null_model_says_why():
    full = [_LogLikFit(-100.0 + x, 3, ["a", "b"]) for x in [0.5, 1.0, 2.0, -1.5]]
    null = [_LogLikFit(-101.0, 2, ["a"]) for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = test_models(full, null, method="D2", use="likelihood").test
    assert np.isnan(res["F.value"].iloc[0])
    assert [w.category for w in caught] == [MitmlWarning]  # no NumPy RuntimeWarning
    assert "imputation(s) 4" in str(caught[0].message)


@pytest.mark.parametrize("method", ["D1", "D2"])
def test_wald_tests_refuse_non_finite_estimates(method):
    fits = _fits()
    fits[2] = Fit([1.0, np.nan], np.diag([0.1, 0.2]))
    nulls = [Fit(f.coef[:1], f.vcov[:1, :1], names=["a"]) for f in fits]
    with pytest.raises(MitmlError, match="non-finite.*imputation\\(s\\) 3"):
        test_models(fits, nulls, method=method)


def test_likelihood_tests_refuse_non_finite_logliks():
    full = [_LogLikFit(ll, 3, ["a", "b"]) for ll in [-100.0, np.nan, -99.0]]
    null = [_LogLikFit(-101.0, 2, ["a"]) for _ in range(3)]
    with pytest.raises(MitmlError, match="not finite in imputation\\(s\\) 2"):
        test_models(full, null, method="D2", use="likelihood")


def test_call_text_prints_numpy_df_com_as_plain_values():
    """The Call: line showed NumPy values as 'array([...])' / 'np.float64(...)'."""
    from mitml_jax.analysis.printing import format_call

    assert format_call("test_estimates", ["model"], df_com=np.array([10.0, 20.0])) == \
        "test_estimates(model, df_com=[10.0, 20.0])"
    assert format_call("test_models", ["model"], df_com=np.float64(5.0)) == "test_models(model, df_com=5.0)"
