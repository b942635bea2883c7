"""Pooling formulas against the spec's test vectors (mitml-spec.md section 4), input forms,
printing rules and properties (order invariance, identical copies, D1 = t^2)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis import pooling
from mitml_jax.analysis.analysis_list import AnalysisList, FittedModel
from mitml_jax.analysis.adapters import as_fit, r_term_name
from mitml_jax.analysis.constraints import parse_constraints, test_constraints
from mitml_jax.analysis.estimates import test_estimates
from mitml_jax.analysis.models import test_models
from mitml_jax.analysis.printing import format_table, table_lines
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

RTOL = 1e-12
QHAT = np.array([[1.0, 1.2, 0.9, 1.1, 1.05], [0.5, 0.4, 0.65, 0.55, 0.45]])  # (p, m)
UHAT = np.stack([(1 + i / 10) * np.array([[0.04, 0.01], [0.01, 0.02]]) for i in range(1, 6)],
                axis=2)  # (p, p, m)
QFRAME = pd.DataFrame(QHAT, index=["a", "b"])
D2_VECTOR = [25.9740259740260, 30.4761904761905, 23.5164835164835, 24.6938775510204,
             19.7142857142857]


# --- spec 4.1 -----------------------------------------------------------------------------------
def test_rubin_vector():
    est = test_estimates(qhat=QFRAME, uhat=UHAT).estimates
    expected = {
        "Estimate": (1.05, 0.51),
        "Std.Error": (0.258843582110896, 0.192613602842582),
        "t.value": (4.05650389875284, 2.64778807142094),
        "df": (79.8044444444445, 44.6850093336580),
        "P(>|t|)": (1.15242529846071e-4, 0.0111531923789089),
        "RIV": (0.288461538461538, 0.426923076923077),
        "FMI": (0.242626436279768, 0.328584621519051),
    }
    for col, values in expected.items():
        # p-values: R computes 2 * (1 - pt(|t|)), which loses ~1e-13 absolute; we use sf()
        rtol = 1e-9 if col.startswith("P(") else 1e-11
        np.testing.assert_allclose(est[col], values, rtol=rtol, err_msg=col)
    T = test_estimates(qhat=QFRAME, uhat=UHAT).vcov()
    np.testing.assert_allclose(T.to_numpy(), [[0.0670, 0.0025], [0.0025, 0.0371]], rtol=RTOL)
    assert list(T.index) == ["a", "b"]


def test_rubin_vector_df_com_and_confint():
    res = test_estimates(qhat=QFRAME, uhat=UHAT, df_com=[20, 30])
    est = res.estimates
    np.testing.assert_allclose(est["df"], (12.0352529183166, 13.6964492099841), rtol=1e-11)
    np.testing.assert_allclose(est["P(>|t|)"], (0.0015824150305157, 0.0193934462863741), rtol=1e-10)
    np.testing.assert_allclose(est["FMI"], (0.327120550104051, 0.383138400347775), rtol=1e-11)
    ci = test_estimates(qhat=QFRAME, uhat=UHAT).confint()
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    np.testing.assert_allclose(ci.loc["a"], (0.534865477124547, 1.565134522875453), rtol=1e-11)
    np.testing.assert_allclose(ci.loc["b"], (0.121980797073963, 0.898019202926037), rtol=1e-11)
    assert list(res.confint(0.9).columns) == ["5 %", "95 %"]
    assert list(res.confint(0.999, parm="b").columns) == ["0.05 %", "99.95 %"]
    assert list(res.confint(parm=[1]).index) == ["b"]


def test_to_frame_and_coef():
    res = test_estimates(qhat=QFRAME, uhat=UHAT)
    frame = res.to_frame()
    assert list(frame.columns) == ["estimate", "std_error", "t_value", "df", "p_value", "riv", "fmi"]
    np.testing.assert_allclose(res.coef(), [1.05, 0.51])


# --- input forms (spec 4.1 coercions, bug B9) ---------------------------------------------------
def test_input_forms_agree():
    ref = test_estimates(qhat=QFRAME, uhat=UHAT).estimates.to_numpy()
    as_lists = test_estimates(qhat=[pd.Series(QHAT[:, i], index=["a", "b"]) for i in range(5)],
                              uhat=[UHAT[:, :, i] for i in range(5)])
    np.testing.assert_allclose(as_lists.estimates.to_numpy(), ref, rtol=RTOL)
    assert list(as_lists.estimates.index) == ["a", "b"]
    first = test_estimates(qhat=QHAT.T.copy(), uhat=np.moveaxis(UHAT, 2, 0).copy())  # (m, p), (m, p, p)
    np.testing.assert_allclose(first.estimates.to_numpy(), ref, rtol=RTOL)
    plain = test_estimates(qhat=QHAT, uhat=UHAT)
    assert list(plain.estimates.index) == ["Parameter.1", "Parameter.2"]
    # variances only: same table, no full T (vcov warns and gives the diagonal)
    variances = np.stack([np.diag(UHAT[:, :, i]) for i in range(5)], axis=1)
    diag = test_estimates(qhat=QHAT, uhat=variances)
    assert diag.T is None
    with pytest.warns(MitmlWarning, match="diagonal"):
        v = diag.vcov()
    assert np.isnan(v.iloc[0, 1])


def test_single_parameter_b9_fixed():
    q = QHAT[0]
    u = UHAT[0, 0, :]
    ref = test_estimates(qhat=QHAT[:1], uhat=UHAT[:1, :1, :]).estimates.to_numpy()
    for uh in (list(u), u, [np.array([[x]]) for x in u]):
        out = test_estimates(qhat=list(q), uhat=uh).estimates.to_numpy()
        np.testing.assert_allclose(out, ref, rtol=RTOL)


def test_qhat_only_and_errors():
    res = test_estimates(qhat=QFRAME)
    assert list(res.estimates.columns) == ["Estimate"]
    with pytest.raises(MitmlError):
        res.vcov()
    with pytest.raises(MitmlError, match="Either"):
        test_estimates()
    with pytest.raises(MitmlError, match="Missing values"):
        test_estimates(qhat=QHAT, uhat=np.where(UHAT > 0.05, np.nan, UHAT))
    with pytest.raises(MitmlError, match="Dimensions"):
        test_estimates(qhat=QHAT, uhat=UHAT[:, :, :4])
    with pytest.warns(MitmlWarning, match="extra_pars"):
        test_estimates(qhat=QHAT, uhat=UHAT, extra_pars=True)


# --- spec 4.2, 4.3, 4.7 -------------------------------------------------------------------------
def test_d1_vector():
    q, u = QHAT.T, np.moveaxis(UHAT, 2, 0)
    out = pooling.d1(q, u)
    np.testing.assert_allclose([out["f_value"], out["riv"], out["df2"]],
                               [7.83850036049027, 0.524175824175824, 27.6354970135675], rtol=1e-11)
    np.testing.assert_allclose(pooling.d1(q, u, df_com=20)["df2"], 7.82073557709383, rtol=1e-11)


def test_d2_vector_and_positive():
    out = pooling.d2(D2_VECTOR, 2)
    np.testing.assert_allclose([out["f_value"], out["df2"], out["riv"]],
                               [10.2686202185613, 108.979652611305, 0.184292301421925], rtol=1e-11)
    neg = pooling.d2(np.array([3.0, 0.1, 6.0, 0.01]), 3)
    assert neg["f_value"] < 0 and neg["p_value"] == pytest.approx(1.0)
    # D2's RIV is a sample variance (>= 0), so 'positive' (B15) cannot change the result
    assert pooling.d2(D2_VECTOR, 2, ariv="positive") == out


def test_constraints_vector():
    res = test_constraints(qhat=QFRAME, uhat=UHAT, constraints=["a*b", "a-b"])
    t = res.test.iloc[0]
    np.testing.assert_allclose([t["F.value"], t["df2"], t["P(>F)"], t["RIV"]],
                               [3.10893124601374, 27.8638611259536, 0.0604270210566539,
                                0.519918942196381], rtol=1e-7)  # R: numericDeriv, ~1e-8
    np.testing.assert_allclose(res.Qbar, [0.5285, 0.54], rtol=RTOL)
    np.testing.assert_allclose(res.T.to_numpy(), [[0.0860760490196429, 0.00952989167892558],
                                                  [0.00952989167892558, 0.0790357847622749]],
                               rtol=1e-7)
    d2 = test_constraints(qhat=QFRAME, uhat=UHAT, constraints=["a*b", "a-b"], method="D2")
    t = d2.test.iloc[0]
    np.testing.assert_allclose([t["F.value"], t["df2"], t["P(>F)"], t["RIV"]],
                               [3.10022496773104, 25.9273143418511, 0.0620562775994821,
                                0.468510433525948], rtol=1e-7)
    np.testing.assert_allclose(d2.T.to_numpy(), res.T.to_numpy(), rtol=RTOL)  # always D1-based


def test_constraint_parser_is_safe_and_exact():
    import jax

    g = parse_constraints(["exp(a) - b^2", "log(b, 2) + `a`/2", "Intercept + SexGirl"],
                          ["a", "b", "Intercept", "Sex[T.Girl]"])
    theta = np.array([0.3, 1.7, 2.0, -1.0])
    np.testing.assert_allclose(jax.jit(g)(theta), [np.exp(0.3) - 1.7**2, np.log2(1.7) + 0.15, 1.0],
                               rtol=1e-14)
    jac = jax.jit(jax.jacfwd(g))(theta)
    np.testing.assert_allclose(jac[0], [np.exp(0.3), -3.4, 0, 0], rtol=1e-14)
    np.testing.assert_allclose(jac[1], [0.5, 1 / (1.7 * np.log(2)), 0, 0], rtol=1e-14)
    for bad in ("__import__('os').system('true')", "a.__class__", "open('x')", "a if b else a",
                "[a, b]", "c + 1", "lambda: 1"):
        with pytest.raises(MitmlError):
            parse_constraints([bad], ["a", "b"])(theta[:2])
    g2 = parse_constraints(["`Sex[T.Girl]` - x", "(Intercept) * 2"], ["Intercept", "Sex[T.Girl]"],
                           aliases={"x": "Intercept"})
    np.testing.assert_allclose(g2(np.array([2.0, 5.0])), [3.0, 4.0])


# --- properties ----------------------------------------------------------------------------------
def test_order_invariance():
    perm = [3, 0, 4, 2, 1]
    a = test_estimates(qhat=QHAT, uhat=UHAT, df_com=25).estimates
    b = test_estimates(qhat=QHAT[:, perm], uhat=UHAT[:, :, perm], df_com=25).estimates
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12)
    q, u = QHAT.T, np.moveaxis(UHAT, 2, 0)
    for f in (lambda q, u: pooling.d1(q, u), lambda q, u: pooling.d1(q, u, 30)):
        np.testing.assert_allclose(list(f(q, u).values()), list(f(q[perm], u[perm]).values()),
                                   rtol=1e-12)
    np.testing.assert_allclose(list(pooling.d2(D2_VECTOR, 2).values()),
                               list(pooling.d2(np.array(D2_VECTOR)[perm], 2).values()), rtol=1e-12)


def test_identical_copies_give_complete_data_analysis():
    from scipy import stats

    m = 7
    q = np.tile(QHAT[:, :1], (1, m))
    u = np.repeat(UHAT[:, :, :1], m, axis=2)
    res = test_estimates(qhat=q, uhat=u)
    est = res.estimates
    np.testing.assert_allclose(est["RIV"], 0.0, atol=0)
    np.testing.assert_allclose(est["Std.Error"], np.sqrt(np.diag(UHAT[:, :, 0])), rtol=1e-14)
    assert np.all(np.isinf(est["df"]))
    np.testing.assert_allclose(est["P(>|t|)"], 2 * stats.norm.sf(np.abs(est["t.value"])), rtol=1e-12)
    np.testing.assert_allclose(res.vcov().to_numpy(), UHAT[:, :, 0], rtol=1e-14)
    adj = test_estimates(qhat=q, uhat=u, df_com=40).estimates
    np.testing.assert_allclose(adj["df"], 40 * 41 / 43, rtol=1e-12)  # nu_obs at lambda = 0
    d1 = pooling.d1(q.T, np.moveaxis(u, 2, 0))
    wald = QHAT[:, 0] @ np.linalg.solve(UHAT[:, :, 0], QHAT[:, 0]) / 2
    assert d1["riv"] == 0 and np.isinf(d1["df2"])
    np.testing.assert_allclose(d1["f_value"], wald, rtol=1e-12)
    np.testing.assert_allclose(d1["p_value"], stats.chi2.sf(2 * wald, 2), rtol=1e-12)


def test_d1_single_parameter_is_squared_t():
    est = test_estimates(qhat=QHAT[1:], uhat=UHAT[1:, 1:, :]).estimates.iloc[0]
    d1 = pooling.d1(QHAT[1:].T, np.moveaxis(UHAT[1:, 1:, :], 2, 0))
    np.testing.assert_allclose(d1["f_value"], est["t.value"] ** 2, rtol=1e-12)
    np.testing.assert_allclose(d1["riv"], est["RIV"], rtol=1e-12)
    con = test_constraints(qhat=QFRAME, uhat=UHAT, constraints="b").test.iloc[0]
    np.testing.assert_allclose(con["F.value"], est["t.value"] ** 2, rtol=1e-12)


def test_d3_d4_formulas():
    ll_full = np.array([-100.0, -101.0, -99.5, -100.4])
    ll_null = ll_full - np.array([4.0, 5.0, 3.5, 4.6])
    pooled_full, pooled_null = ll_full - 0.1, ll_null - 0.2
    out = pooling.d3(ll_full, ll_null, pooled_full, pooled_null, k=2)
    dbar, dtilde, m, k = 2 * np.mean([4, 5, 3.5, 4.6]), 2 * np.mean([4.1, 5.1, 3.6, 4.7]), 4, 2
    r = (m + 1) / (k * (m - 1)) * (dbar - dtilde)
    assert r < 0
    pos = pooling.d3(ll_full, ll_null, pooled_full, pooled_null, k=2, ariv="positive")
    np.testing.assert_allclose(pos["f_value"], dtilde / k, rtol=1e-12)
    np.testing.assert_allclose(out["f_value"], dtilde / (k * (1 + r)), rtol=1e-12)
    d4 = pooling.d4(ll_full, ll_null, -100.5, -104.8, k=2, h=5)
    r4 = (m + 1) / (k * (m - 1)) * (dbar - 8.6)
    np.testing.assert_allclose([d4["f_value"], d4["riv"], d4["df2"]],
                               [8.6 / (k * (1 + r4)), r4, k * (m - 1) * (1 + 1 / r4) ** 2], rtol=1e-12)
    robust = pooling.d4(ll_full, ll_null, -100.5, -104.8, k=2, h=5, ariv="robust")
    rr = (m + 1) / (5 * (m - 1)) * (2 * ll_full.mean() + 201.0)
    np.testing.assert_allclose(robust["riv"], rr, rtol=1e-12)


# --- printing ------------------------------------------------------------------------------------
def test_format_table_rules():
    cells = format_table([[1.0, 8340000.0], [-0.0, np.nan]], ["x", "long name"], ["a", "df"])
    text = table_lines(cells)
    assert text == (" " * 9 + " " + " " * 8 + "a" + " " + " " * 7 + "df \n"
                    + "x" + " " * 8 + " " + "    1.000" + " " + "8.340e+06 \n"
                    + "long name" + " " + "    0.000" + " " + "      NaN \n")
    assert table_lines(format_table([[1.0, 2.0]], None, ["F", "df1"], digits=[3, 0]),
                       indent=True) == "        F   df1 \n    1.000     2 \n"


def test_print_estimates_layout():
    text = str(test_estimates(qhat=QFRAME, uhat=UHAT, df_com=[20, 30]))
    assert "obtained from 5 imputed data sets." in text
    assert "\n   Estimate Std.Error   t.value        df   P(>|t|)       RIV       FMI \n" in text
    assert "\na     1.050     0.259     4.057    12.035     0.002     0.288     0.327 \n" in text
    assert text.endswith("df=[20,30]\ncomplete-data degrees of freedom.\n\n")


# --- protocol and adapters ------------------------------------------------------------------------
class _Fit:
    """Minimal user type implementing the fitted-model protocol."""

    def __init__(self, q, u):
        self.q, self.u = q, u

    def mitml_coef(self):
        return pd.Series(self.q, index=["a", "b"])

    def mitml_vcov(self):
        return pd.DataFrame(self.u, index=["a", "b"], columns=["a", "b"])

    def mitml_is_reml(self):
        return False


def _null_fit(q, u):
    fit = _Fit(q[:1], u[:1, :1])
    fit.mitml_coef = lambda: pd.Series(q[:1], index=["a"])
    fit.mitml_vcov = lambda: pd.DataFrame(u[:1, :1], index=["a"], columns=["a"])
    return fit


def test_user_protocol_and_analysis_list():
    fits = AnalysisList([_Fit(QHAT[:, i], UHAT[:, :, i]) for i in range(5)], call="user fits")
    assert isinstance(fits[0], FittedModel) is False  # partial protocol is enough for pooling
    assert as_fit(fits[0]) is fits[0]
    assert "AnalysisList of 5" in repr(fits) and isinstance(fits[1:3], AnalysisList)
    res = test_estimates(fits)
    np.testing.assert_allclose(res.estimates.to_numpy(),
                               test_estimates(qhat=QFRAME, uhat=UHAT).estimates.to_numpy(), rtol=RTOL)
    nulls = [_null_fit(QHAT[:, i], UHAT[:, :, i]) for i in range(5)]
    d1 = test_models(fits, nulls).test.iloc[0]
    ref = test_estimates(qhat=QHAT[1:], uhat=UHAT[1:, 1:, :]).estimates.iloc[0]
    np.testing.assert_allclose(d1["F.value"], ref["t.value"] ** 2, rtol=1e-12)
    with pytest.raises(MitmlTypeError, match="'int'.*mitml_coef"):
        as_fit(3)
    with pytest.raises(MitmlError, match="same length"):
        test_models(fits, nulls[:4])
    with pytest.warns(MitmlWarning, match="ignored"):
        test_models(fits, nulls, df_com=10, method="D2")


def test_r_term_names():
    assert r_term_name("Intercept") == "(Intercept)"
    assert r_term_name("Sex[T.Girl]") == "SexGirl"
    assert r_term_name("Sex[T.Girl]:x") == "SexGirl:x"
    assert r_term_name('Q("I.SES")') == "I.SES"


def test_statsmodels_adapters_small():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(1)
    frames = []
    for _ in range(3):
        x = rng.normal(size=60)
        frames.append(pd.DataFrame({"x": x, "g": rng.integers(0, 2, 60).astype(str),
                                    "y": 1 + 0.5 * x + rng.normal(size=60)}))
    ols = [smf.ols("y ~ x + g", f).fit() for f in frames]
    fit = as_fit(ols[0])
    assert list(fit.mitml_coef().index) == ["Intercept", "g[T.1]", "x"]
    assert fit.mitml_loglik()[1] == 4
    np.testing.assert_allclose(fit.mitml_loglik_at(fit.mitml_params()), ols[0].llf, rtol=1e-12)
    np.testing.assert_allclose(fit.mitml_extra()["Residual~~Residual"], ols[0].scale)
    # D4 with one data set stacked is the fit itself
    np.testing.assert_allclose(fit.mitml_stacked_loglik([fit]), ols[0].llf, rtol=1e-10)
    glm = as_fit(smf.glm("y ~ x", frames[0], family=sm.families.Gaussian()).fit())
    assert glm.mitml_loglik()[1] == 3
    with pytest.raises(MitmlError, match="D3"):
        glm.mitml_params()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(glm.mitml_extra()["Residual~~Residual"],
                                   smf.ols("y ~ x", frames[0]).fit().scale, rtol=1e-10)
