"""QA round 10 on pooling and analysis: defects found by comparing with R's mitml 0.4-4.

R numbers are literals (R is not run in CI); each test names the R call that produced them.
The array examples use the spec's test vector (section 4.1) with parameters named ``x.1`` and
``x.2``:

    Q <- matrix(c(1.0,1.2,0.9,1.1,1.05, 0.5,0.4,0.65,0.55,0.45), nrow=2, byrow=TRUE,
                dimnames=list(c("x.1","x.2"), NULL))
    U <- array(NA, c(2,2,5)); for(i in 1:5) U[,,i] <- (1+i/10)*matrix(c(.04,.01,.01,.02),2)
    ql <- lapply(1:5, function(i) Q[,i]); ul <- lapply(1:5, function(i) U[,,i])
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

Q = pd.DataFrame([[1.0, 1.2, 0.9, 1.1, 1.05], [0.5, 0.4, 0.65, 0.55, 0.45]], index=["x.1", "x.2"])
U = np.stack([(1 + i / 10) * np.array([[0.04, 0.01], [0.01, 0.02]]) for i in range(1, 6)], axis=2)


def test_constraints_accept_r_names_with_digits_after_a_dot():
    """R names such as ``x.1`` are written as they are in R's constraints (``"x.1*x.2"``); they
    failed to parse ("x" followed by the number ".1") unless put in backticks.

    R: testConstraints(qhat=ql, uhat=ul, constraints=c("x.1*x.2", "x.1 - x.2"))$test
    """
    res = mj.test_constraints(qhat=Q, uhat=U, constraints=["x.1*x.2", "x.1 - x.2"])
    np.testing.assert_allclose(res.test.to_numpy()[0],
                               [3.10893124601374, 2, 27.8638611259536, 0.0604270210566539,
                                0.519918942196381], rtol=1e-7)
    assert list(res.Qbar.index) == ["x.1*x.2", "x.1 - x.2"]
    # unnamed estimates are called Parameter.1, Parameter.2: usable as written too
    res = mj.test_constraints(qhat=Q.to_numpy(), uhat=U, constraints="Parameter.1 - Parameter.2")
    np.testing.assert_allclose(res.Qbar.to_numpy(), [0.54])
    # names that are not parameters are still reported as such
    with pytest.raises(MitmlError, match="x.3"):
        mj.test_constraints(qhat=Q, uhat=U, constraints="x.1 - x.3")


def test_undefined_df_gives_nan_p_value_and_interval():
    """A parameter with zero within-imputation variance has RIV = inf and, with df_com,
    df = NaN; R's p-value and interval are then NaN, ours came from the normal distribution
    (p = 1e-17, CI 0.81 to 1.29).

    R: Uz <- U; Uz[1,1,] <- 0; Uz[1,2,] <- 0; Uz[2,1,] <- 0
       r <- testEstimates(qhat=Q, uhat=Uz, df.com=c(20,30)); r$estimates; confint(r)
    """
    uz = U.copy()
    uz[0, :, :] = 0.0
    uz[:, 0, :] = 0.0
    res = mj.test_estimates(qhat=Q, uhat=uz, df_com=[20, 30])
    est = res.estimates
    assert np.isnan(est.loc["x.1", "df"]) and np.isnan(est.loc["x.1", "P(>|t|)"])
    np.testing.assert_allclose(est.loc["x.2", ["df", "P(>|t|)"]].to_numpy(dtype=float),
                               [13.6964492099841, 0.0193934462863741], rtol=1e-10)
    ci = res.confint()
    assert ci.loc["x.1"].isna().all()
    np.testing.assert_allclose(ci.loc["x.2"].to_numpy(), [0.0960242945924803, 0.92397570540752],
                               rtol=1e-10)
    # without df_com, df = m - 1 = 4 (r = inf) as in R: finite p-value
    est = mj.test_estimates(qhat=Q, uhat=uz).estimates
    np.testing.assert_allclose(est.loc["x.1", ["df", "P(>|t|)"]].to_numpy(dtype=float),
                               [4.0, 0.00101666261728917], rtol=1e-10)


def test_constraints_refuse_variances_only():
    """The delta method needs the covariances: variances only (a (p, m) array, or a list of
    vectors) were read as uncorrelated estimates and gave a different test without a word
    (F = 3.835, df2 = 42.95 instead of 3.109, 27.86). mitml refuses them too ("The 'uhat'
    argument must be either an array or a list.")."""
    variances = np.stack([np.diag(U[:, :, i]) for i in range(5)], axis=1)
    with pytest.raises(MitmlError, match="'uhat' gives variances only"):
        mj.test_constraints(qhat=Q, uhat=variances, constraints=["x.1*x.2", "x.1 - x.2"])
    with pytest.raises(MitmlError, match="'uhat' gives variances only"):
        mj.test_constraints(qhat=Q, uhat=[variances[:, i] for i in range(5)], constraints="x.1")
    # one parameter: a variance is its whole covariance matrix
    res = mj.test_constraints(qhat=Q.iloc[:1], uhat=variances[:1], constraints="x.1")
    np.testing.assert_allclose(res.test.iloc[0, 0], 16.4552239238843, rtol=1e-7)


def test_reiter_df_at_k_m_minus_1_equal_4_is_nan_with_a_clear_warning():
    """k (m - 1) = 4 (here k = 2, m = 3, with df_com): c0 = 1/(t - 4) is infinite and Reiter's
    df NaN, as in mitml, but a bare numpy RuntimeWarning ("invalid value encountered in scalar
    add") leaked instead of a message saying why df2 and P(>F) are NaN.

    R: testConstraints(qhat=ql[1:3], uhat=ul[1:3], constraints=c("x.1","x.2"), df.com=10)$test
       (df2 NaN); testConstraints(qhat=ql, uhat=ul, constraints="x.1", df.com=10)$test (also
       t = 4, where the infinite terms give df2 = 4); the same with ql[1:4], ul[1:4] (t = 3).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(MitmlWarning) as caught:
            res = mj.test_constraints(qhat=Q.iloc[:, :3], uhat=U[:, :, :3],
                                      constraints=["x.1", "x.2"], df_com=10)
        assert any("undefined" in str(w.message) for w in caught)
        assert np.isnan(res.test.iloc[0, 2]) and np.isnan(res.test.iloc[0, 3])
        np.testing.assert_allclose(res.test.iloc[0, [0, 4]].to_numpy(dtype=float),
                                   [5.87408312699838, 1.16402116646673], rtol=1e-7)
        with pytest.warns(MitmlWarning, match="may not be trustworthy"):
            res = mj.test_constraints(qhat=Q, uhat=U, constraints="x.1", df_com=10)
        np.testing.assert_allclose(res.test.to_numpy()[0],
                                   [16.4552239238843, 1, 4, 0.0153929720545998,
                                    0.288461539439261], rtol=1e-7)
        with pytest.warns(MitmlWarning, match="may not be trustworthy"):
            res = mj.test_constraints(qhat=Q.iloc[:, :4], uhat=U[:, :, :4], constraints="x.1",
                                      df_com=10)
        np.testing.assert_allclose(res.test.to_numpy()[0],
                                   [15.5647059120535, 1, 4.00190894761378, 0.0168701354702858,
                                    0.416666667793034], rtol=1e-7)


def _constraints_as_r(names, constraints, test_row, qbar):
    """``test_constraints`` on Q, U with the parameters renamed ``names``, checked against R's
    test row (F, df1, df2, P(>F), RIV; rtol 1e-6: R differentiates numerically) and Qbar:
    ``(result, renamed Q)``."""
    q = Q.rename(index=dict(zip(("x.1", "x.2"), names)))
    res = mj.test_constraints(qhat=q, uhat=U, constraints=constraints)
    np.testing.assert_allclose(res.test.to_numpy()[0], test_row, rtol=1e-6)
    np.testing.assert_allclose(res.Qbar.to_numpy(), qbar, rtol=1e-12)
    return res, q


def test_intercept_as_a_function_argument():
    """``plogis(Intercept)`` was rewritten to the unknown name ``plogisIntercept`` (the
    ``(Intercept)`` -> ``Intercept`` substitution also hit the call's parentheses; mitml has the
    same bug). Only a stand-alone ``(Intercept)`` is the parameter name now.

    R (working around its bug with ``1*Intercept``):
    Q, U as in the module docstring with row names c("(Intercept)", "x");
    testConstraints(qhat=ql, uhat=ul, constraints=c("plogis(1*Intercept) - 0.7", "(Intercept)*x"))
    """
    res, _ = _constraints_as_r(("(Intercept)", "x"), ["plogis(Intercept) - 0.7", "(Intercept)*x"],
                               [2.02683608654601, 2, 28.5540863003027, 0.150276209564233,
                                0.507578485567175], [0.0403135739062596, 0.5285])
    np.testing.assert_allclose(res.T.to_numpy(), [[0.00289285451303309, 0.0116630411892449],
                                                  [0.0116630411892449, 0.0853771842839976]],
                               rtol=1e-6)
    assert list(res.Qbar.index) == ["plogis(Intercept) - 0.7", "Intercept*x"]


def test_qhat_frame_with_imputation_columns_and_default_rows():
    """mitml's layout as a DataFrame with labelled imputation columns and a default row index
    (``pd.DataFrame(Q, columns=["imp1", ..., "imp5"])``) was read as imputations in rows (m = 2,
    p = 5) and refused with "expected covariance matrices (p, p, m) = (5, 5, 2)", although
    'uhat' (p, p, m) = (2, 2, 5) matches only mitml's reading: that reading is used now.

    R: testEstimates(qhat=unname(Q), uhat=U)$estimates (spec section 4.1 test vector)
    """
    frame = pd.DataFrame(Q.to_numpy(), columns=[f"imp{i}" for i in range(1, 6)])
    est = mj.test_estimates(qhat=frame, uhat=U).estimates
    assert list(est.index) == ["Parameter.1", "Parameter.2"]
    np.testing.assert_allclose(est["Std.Error"], [0.258843582110896, 0.192613602842582],
                               rtol=1e-12)
    np.testing.assert_allclose(est["df"], [79.8044444444445, 44.6850093336580], rtol=1e-12)
    # without 'uhat' nothing tells the layouts apart: the documented reading is kept
    assert mj.test_estimates(qhat=frame).estimates.shape == (5, 1)
    with pytest.raises(MitmlError, match="Dimensions of 'qhat' and 'uhat'"):
        mj.test_estimates(qhat=frame, uhat=U[:, :, :3])


class _Fit:
    """Minimal protocol fit with a log-likelihood (for anova)."""

    def __init__(self, names, ll, formula):
        self.names, self.ll, self.formula = names, ll, formula

    def mitml_coef(self):
        return pd.Series(np.ones(len(self.names)), index=self.names)

    def mitml_vcov(self):
        return pd.DataFrame(np.eye(len(self.names)), index=self.names, columns=self.names)

    def mitml_loglik(self):
        return self.ll, len(self.names)

    def mitml_formula(self):
        return self.formula


def test_anova_error_names_the_pair_of_models():
    """Two models with the same number of parameters cannot be nested; anova's error spoke of
    'model' and 'null_model' (arguments its user never gave) without saying which models."""
    a = [_Fit(["a", "b"], -10.0 - i, "y ~ a + b") for i in range(3)]
    b = [_Fit(["a", "c"], -11.0 - i, "y ~ a + c") for i in range(3)]
    with pytest.raises(MitmlError, match=r"Comparing model 1 with model 2 of y ~ a \+ b; "
                                         r"y ~ a \+ c: .*not to be nested"):
        mj.anova(a, b, method="D2")


def test_unlabelled_uhat_follows_its_qhat_series_order():
    """A list of Series is aligned by name, but plain covariance matrices (e.g.
    ``fit.cov_params().to_numpy()``) were left as given: when one imputation listed the
    parameters in another order its variances were paired with the wrong estimates (SE 0.249,
    0.205 instead of 0.259, 0.193; no error). The matrices follow their Series' order now.

    R: testEstimates(qhat=Q, uhat=U)$estimates (spec section 4.1 test vector)
    """
    qs = [pd.Series(Q.iloc[:, i].to_numpy(), index=["a", "b"]) for i in range(5)]
    us = [U[:, :, i] for i in range(5)]
    qs[1], us[1] = qs[1][["b", "a"]], us[1][::-1, ::-1]  # imputation 2 in the order b, a
    expected_se = [0.258843582110896, 0.192613602842582]
    for uhat in (us, np.stack(us, axis=2), [np.diag(u) for u in us]):
        est = mj.test_estimates(qhat=qs, uhat=uhat).estimates
        np.testing.assert_allclose(est["Std.Error"], expected_se, rtol=1e-12)
    # a labelled matrix is aligned by its own names
    labelled = list(us)
    labelled[1] = pd.DataFrame(us[1], index=["b", "a"], columns=["b", "a"])
    est = mj.test_estimates(qhat=qs, uhat=labelled).estimates
    np.testing.assert_allclose(est["Std.Error"], expected_se, rtol=1e-12)
    # the delta method too (R: testConstraints(qhat=ql, uhat=ul, constraints="x.1*x.2")$test)
    res = mj.test_constraints(qhat=qs, uhat=us, constraints="a*b")
    np.testing.assert_allclose(res.test.to_numpy()[0],
                               [4.56127983841046, 1, 707.766867287197, 0.0330452024934471,
                                0.0812879648879367], rtol=1e-6)


def test_empty_model_list_is_called_empty():
    """``test_estimates([])`` said "must be a list of fitted statistical models ...; got list"."""
    with pytest.raises(MitmlTypeError, match="got an empty list"):
        mj.test_estimates([])


def test_constraints_with_r_syntax_pi_base_and_python_keywords():
    """Valid R constraints that failed to parse: parameters named like Python keywords
    (``class``, ``x.in``), R's constant ``pi``, and ``log(x, base = 2)`` (refused as an
    "assignment" with the wrong hint "write 'log(class, base - (2))'").

    R: Q, U as in the module docstring with row names c("class", "x.in");
    testConstraints(qhat=ql, uhat=ul, constraints=c("class - pi/3", "log(class, base = 2) + x.in"))
    """
    _, q = _constraints_as_r(("class", "x.in"), ["class - pi/3", "log(class, base = 2) + x.in"],
                             [4.54604572812187, 2, 28.6245302055458, 0.0192961441906802,
                              0.506361422895579], [0.00280244880340239, 0.57378483280601544])
    # a top-level '=' is still refused with the rewrite to use
    with pytest.raises(MitmlError, match=r"write 'log\(class\) - \(1\)'"):
        mj.test_constraints(qhat=q, uhat=U, constraints="log(class) = 1")
    with pytest.raises(MitmlError, match=r"Named argument\(s\) foo of exp\(\) are not allowed"):
        mj.test_constraints(qhat=q, uhat=U, constraints="exp(class, foo = 2)")


def test_collinear_predictors_warn_in_test_estimates():
    """statsmodels splits the effect of collinear predictors (``x`` and ``2 x``) by a pseudo-
    inverse and gives a singular covariance matrix; test_estimates pooled those arbitrary
    values without a word (R's lm reports NA for the aliased term, and our Wald tests refuse
    such parameters)."""

    class Collinear(_Fit):
        def mitml_vcov(self):  # x2 = 2 x: Var(x2) = 4 Var(x), Cov = 2 Var(x)
            v = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0], [0.0, 1.0, 2.0]]) * self.ll
            return pd.DataFrame(v, index=self.names, columns=self.names)

    fits = [Collinear(["z", "x", "x2"], 1.0 + i / 10, "y ~ z + x + x2") for i in range(3)]
    with pytest.warns(MitmlWarning, match=r"singular in imputation\(s\) 1, 2, 3: the "
                                          r"parameters 'x', 'x2' are not identified"):
        mj.test_estimates(fits)
    with warnings.catch_warnings():  # identified models stay silent
        warnings.simplefilter("error", MitmlWarning)
        mj.test_estimates([_Fit(["z", "x"], -1.0, "y ~ z + x") for _ in range(3)])


def test_printing_with_df_com_by_name_and_large_or_infinite_values():
    """Printing a result whose df_com was given by name (a dict, as the docstring suggests)
    failed with "TypeError: float() argument must be ... not 'dict'". The footer also wrote
    the values with 6 significant digits and Python's spelling (1.23457e+06, inf, 100000)
    where R's ``paste`` writes 1234567, Inf, 1e+05.

    R: cat(paste(c(700, 1234567, 1e5, 46.5, Inf), collapse=","))  ->  700,1234567,1e+05,46.5,Inf
    """
    res = mj.test_estimates(qhat=Q, uhat=U, df_com={"x.2": 1234567, "x.1": 700})
    text = str(res)
    assert "df=[700,1234567]\ncomplete-data degrees of freedom." in text
    assert res.df_com == [700.0, 1234567.0]
    np.testing.assert_allclose(res.estimates["df"],
                               mj.test_estimates(qhat=Q, uhat=U, df_com=[700, 1234567])
                               .estimates["df"], rtol=0)
    res = mj.test_estimates(qhat=Q, uhat=U, df_com=[1e5, np.inf])
    assert "df=[1e+05,Inf]" in str(res)
    with pytest.warns(MitmlWarning, match="may not be trustworthy"):  # k (m - 1) = 4
        res = mj.test_constraints(qhat=Q, uhat=U, constraints="x.1 - x.2", df_com=46.5)
    assert "df=[46.5]" in str(res)
