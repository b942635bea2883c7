"""QA pass on the imputation input (pan_impute / jomo_impute): regressions for the defects found.

Each test failed before its fix: a traceback from NumPy/pandas instead of a MitmlError naming the
argument, a misleading message, or a silently wrong model. Most cases stop before the sampler
(build_spec, argument and prior checks); the one sampler run is tiny.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError, MitmlTypeError
from mitml_jax.spec.model_spec import build_spec

from test_reliability_bad_input import tiny as _bad_input_tiny

FORMULA = "y1 + y2 ~ 1 + x + (1|id)"
FAST = {"n_burn": 10, "n_iter": 5, "m": 2, "seed": 1, "progress": False}


def tiny() -> pd.DataFrame:
    """The bad-input tests' 24 rows (6 clusters of 4; y1, y2 with missing values; x complete; a
    group), with the factor ``cat`` complete and without their extra column ``w``."""
    data = _bad_input_tiny().drop(columns="w")
    cat = pd.Categorical(np.array(["a", "b", "c"])[np.arange(len(data)) % 3], categories=["a", "b", "c"])
    return data.assign(cat=cat)


def _raises(call, data, error, pattern):
    """``call(data)`` raises ``error`` matching ``pattern`` and leaves ``data`` unchanged."""
    before = copy.deepcopy(data)
    with pytest.raises(error, match=pattern):
        call(data)
    pdt.assert_frame_equal(data, before, check_exact=True)


# -- priors: NumPy's ValueError/TypeError leaked for non-numeric parts ---------------------------
def _pan_prior(**kw):
    prior = {"a": 2.0, "Binv": np.eye(2), "c": 2.0, "Dinv": np.eye(2)}
    prior.update(kw)
    return prior


@pytest.mark.parametrize("part, value", [
    ("Binv", "eye"), ("Binv", [[1.0, 0.0], [0.0]]), ("Dinv", [["1", "0"], ["0", "x"]]),
    ("Binv", np.eye(2) * (1 + 1j)), ("Binv", np.eye(2, dtype=bool)),
])
def test_pan_prior_matrix_not_numbers(part, value):
    _raises(lambda d: mj.pan_impute(d, FORMULA, prior=_pan_prior(**{part: value}), **FAST),
            tiny(), MitmlError, rf"prior\['{part}'\] must be a 2 x 2 matrix of real numbers")


@pytest.mark.parametrize("value", [True, "3", np.array(["3"])])
def test_pan_prior_df_not_a_number(value):
    """True was read as 1 and the text "3" as 3.0."""
    _raises(lambda d: mj.pan_impute(d, FORMULA, prior=_pan_prior(a=value), **FAST),
            tiny(), MitmlError, r"prior\['a'\] must be a single number")


@pytest.mark.parametrize("value", ["eye", [[1.0, 0.0], [0.0]], np.eye(2) * (1 + 1j)])
def test_jomo_prior_matrix_not_numbers(value):
    _raises(lambda d: mj.jomo_impute(d, FORMULA, prior={"Binv": value, "Dinv": np.eye(2)}, **FAST),
            tiny(), MitmlError, r"prior\['Binv'\] must be a 2 x 2 matrix of real numbers")


@pytest.mark.parametrize("value", ["x", None, [1.0, 2.0], True])
def test_jomo_prior_a_not_a_number(value):
    prior = {"Binv": np.eye(2), "Dinv": np.eye(2), "a": value}
    _raises(lambda d: mj.jomo_impute(d, FORMULA, random_L1="mean", prior=prior, **FAST),
            tiny(), MitmlError, r"prior\['a'\] must be a single positive number")


def test_jomo_prior_a_names_the_group():
    prior = [{"Binv": np.eye(2), "Dinv": np.eye(2)}, {"Binv": np.eye(2), "Dinv": np.eye(2), "a": "x"}]
    _raises(lambda d: mj.jomo_impute(d, FORMULA, random_L1="mean", group="grp", prior=prior, **FAST),
            tiny(), MitmlError, r"prior\['a'\] \(group 2\)")


# -- arguments -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["garbage", 5])
def test_pan_dtype_not_a_dtype(dtype):
    _raises(lambda d: mj.pan_impute(d, FORMULA, dtype=dtype, **FAST), tiny(), MitmlError, "'dtype'")


@pytest.mark.parametrize("impute", [mj.pan_impute, mj.jomo_impute])
@pytest.mark.parametrize("value", ["no", None, 0])
def test_progress_must_be_a_flag(impute, value):
    """progress='no' was truthy and showed the bar: a logical argument, checked as save_pred."""
    _raises(lambda d: impute(d, FORMULA, **{**FAST, "progress": value}), tiny(), MitmlTypeError,
            "'progress' must be True or False")


@pytest.mark.parametrize("value", [1, "no"])
def test_jomo_save_pred_must_be_a_flag(value):
    """jomo_impute took any value (pan_impute already refused)."""
    _raises(lambda d: mj.jomo_impute(d, FORMULA, save_pred=value, **FAST), tiny(), MitmlTypeError,
            "'save_pred' must be True or False")


# -- empty model parts: tracebacks from inside the kernels ----------------------------------------
@pytest.mark.parametrize("kind, formula, part", [
    ("pan", "y1 + y2 ~ 1 + x + (0|id)", "random part"),
    ("pan", "y1 + y2 ~ 1 + x + (-1|id)", "random part"),
    ("pan", "y1 + y2 ~ 0 + (1|id)", "fixed part"),
    ("jomo", "y1 + y2 ~ 1 + x + (0|id)", "random part"),
    ("jomo", "y1 + y2 ~ 0 + (1|id)", "fixed part"),
    ("jomo", "y1 + y2 ~ 0", "fixed part"),
])
def test_model_part_without_columns(kind, formula, part):
    impute = mj.pan_impute if kind == "pan" else mj.jomo_impute
    _raises(lambda d: impute(d, formula, **FAST), tiny(), MitmlError,
            f"The {part} of 'formula' .* has no columns")


def test_level2_part_without_columns():
    data = tiny()
    data["z2"] = np.repeat(np.random.default_rng(1).normal(size=6), 4)
    data.loc[[0, 1, 2, 3], "z2"] = np.nan
    _raises(lambda d: mj.jomo_impute(d, [FORMULA, "z2 ~ 0"], **FAST), data, MitmlError,
            "The level-2 part of 'formula' 'z2 ~ 0' has no columns")


# -- predictors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [
    pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(24) % 5, "D"),
    pd.to_timedelta(np.arange(24) % 5, "D"),
    pd.date_range("2020-01-01", periods=24, freq="D", tz="Europe/Berlin"),
])
def test_date_predictor_named(values):
    """Dates were taken as nanoseconds: 'rank deficient: (Intercept)' or 'singular'."""
    data = tiny()
    data["t"] = values
    _raises(lambda d: build_spec(d, "y1 ~ 1 + t + (1|id)"), data, MitmlError,
            "Predictor 't' has dtype .*convert dates and durations to numbers")


def test_date_predictor_as_factor_still_works():
    """Guard: factor() of a date column stays a factor."""
    data = tiny()
    data["t"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(24) % 2, "D")
    spec = build_spec(data, "y1 ~ 1 + factor(t) + (1|id)")
    assert len(spec.fixed_names) == 2


@pytest.mark.parametrize("term", ["log", "I(x.__class__)", "I(np.log)"])
def test_formula_term_that_is_no_values(term):
    _raises(lambda d: build_spec(d, f"y1 ~ 1 + {term} + (1|id)"), tiny(), MitmlError,
            "gives a function, not one value per row")


def test_dot_in_formula():
    _raises(lambda d: build_spec(d, "y1 ~ . + (1|id)"), tiny(), MitmlError,
            r"'\.' \(all other columns\) is not supported")


# -- rank deficiency: R's rule names the later column, never the intercept ------------------------
@pytest.mark.parametrize("add, rhs, named", [
    ({"c": 3.0}, "1 + c", "c is a linear combination of the columns before it"),
    ({"x2": lambda d: 2 * d["x"]}, "1 + x + x2", "x2 is a linear combination"),
    ({"c2": lambda d: pd.Categorical(d["cat"], categories=["a", "b", "c", "zz"])}, "1 + c2",
     r"c2zz is zero in every row \(a factor level that does not occur: drop unused levels"),
])
def test_rank_deficient_names_the_later_column(add, rhs, named):
    """Before: a constant predictor gave '(Intercept) is a linear combination', x + 2x named x."""
    data = tiny()
    for name, value in add.items():
        data[name] = value(data) if callable(value) else value
    with pytest.raises(MitmlError, match=named) as info:
        build_spec(data, f"y1 ~ {rhs} + (1|id)")
    assert "(Intercept)" not in str(info.value)


def test_rank_deficient_in_group_hint():
    with pytest.raises(MitmlError, match=r"in group 'g1': .*grpg2 is zero in every row in group "
                                         r"'g1' \(a factor level or predictor value"):
        build_spec(tiny(), "y1 ~ 1 + grp + (1|id)", group="grp")


def test_large_predictors_are_full_rank():
    """Guard for R's looser 1e-7 aliasing tolerance: a year and an income in dollars are ordinary
    predictors for the spec check."""
    data = tiny()
    data["year"] = 2000.0 + np.arange(24) % 10
    data["income"] = 5e4 + 2e4 * data["x"]
    spec = build_spec(data, "y1 ~ 1 + year + income + (1|id)")
    assert spec.fixed_names == ("(Intercept)", "year", "income")


def test_pan_takes_predictors_on_large_scales():
    """pan_impute refused a year (2000 + k) or an income in dollars as 'singular' (its check read
    the raw X'X's eigenvalues, whose spread grows with the predictors' scale). Centring them is
    the same model: with intercept first, X L^-T is the same orthonormal basis, so the same seed
    gives the same imputations up to rounding."""
    data = tiny()
    data["year"] = 2000.0 + np.arange(24) % 10
    data["income"] = 5e4 + 2e4 * data["x"]
    centred = data.assign(year=data["year"] - 2004.5, income=data["income"] - 5e4)
    kw = {"n_burn": 10, "n_iter": 5, "m": 2, "seed": 3, "progress": False}
    formula = "y1 + y2 ~ 1 + year + income + (1|id)"
    raw = mj.pan_impute(data, formula, **kw)
    ref = mj.pan_impute(centred, formula, **kw)
    np.testing.assert_allclose(raw.replacement, ref.replacement, rtol=1e-6, atol=1e-6)


# -- column names --------------------------------------------------------------------------------
def _unicode():
    return tiny().rename(columns={"y1": "ÿ1", "x": "größe", "id": "schüle", "grp": "ﬁx"})


def test_unicode_column_names_in_formula():
    """'Could not find: ÿ1' although the column exists (names were ASCII only); R takes them."""
    data = _unicode()
    spec = build_spec(data, "ÿ1 + y2 ~ 1 + größe + I(größe^2) + ﬁx + (1 + größe | schüle)")
    assert spec.targets == ("ÿ1", "y2")
    assert spec.fixed_names == ("(Intercept)", "größe", "I(größe^2)", "ﬁxg2")
    assert spec.random_names == ("(Intercept)", "größe")
    assert spec.cluster == "schüle"
    design = spec.design(data)
    np.testing.assert_array_equal(design.x[:, 2], data["größe"].to_numpy() ** 2)
    # 'ﬁx' is NFKC-normalised to 'fix' by Python's parser: it must still find its own column
    np.testing.assert_array_equal(design.x[:, 3], (data["ﬁx"] == "g2").to_numpy(float))


def test_unicode_names_impute_and_keep_observed_values():
    data = _unicode()
    before = copy.deepcopy(data)
    imp = mj.pan_impute(data, "ÿ1 + y2 ~ 1 + größe + (1|schüle)", **FAST)
    pdt.assert_frame_equal(data, before, check_exact=True)
    for k in (1, 2):
        done = imp.complete(k)
        for col in ("ÿ1", "y2"):
            observed = data[col].notna().to_numpy()
            np.testing.assert_array_equal(done[col].to_numpy()[observed], data[col].to_numpy()[observed])
            assert done[col].notna().all()


def test_digit_first_target_hint():
    data = tiny().rename(columns={"y1": "1y"})
    _raises(lambda d: build_spec(d, "1y + y2 ~ 1 + (1|id)"), data, MitmlError,
            "goes in backticks: `1y`")
    assert build_spec(data, "`1y` + y2 ~ 1 + (1|id)").targets == ("1y", "y2")


# -- type as a labelled Series -------------------------------------------------------------------
def test_type_series_is_matched_by_column_name():
    """A Series labelled by column names was read by position: reversed, it gave 'grp' the
    target code (and with numeric columns a silently different model)."""
    data = tiny()
    codes = pd.Series([-2, 2, 1, 1, 0, 0], index=data.columns)
    expected = build_spec(data, type=list(codes), kind="pan")
    assert build_spec(data, type=codes[::-1], kind="pan") == expected
    assert build_spec(data, type=codes.sample(frac=1, random_state=3), kind="pan") == expected
    assert build_spec(data, type=codes.reset_index(drop=True), kind="pan") == expected


@pytest.mark.parametrize("index, pattern", [
    (list("abcdef"), "labels that are not columns of 'data': a, b"),
    (["id", "x", "y1", "y2", "grp", "grp"], "no code for the columns cat; duplicate labels grp"),
])
def test_type_series_with_wrong_labels(index, pattern):
    codes = pd.Series([-2, 2, 1, 1, 0, 0], index=index)
    _raises(lambda d: mj.pan_impute(d, type=codes, **FAST), tiny(), MitmlError, pattern)


# -- target types --------------------------------------------------------------------------------
def _boolean_target():
    data = tiny()
    data["b"] = (data["x"] > 0).astype("boolean")
    data.loc[[0, 5], "b"] = pd.NA
    return data


def test_nullable_boolean_target_is_categorical_for_jomo():
    """pandas' "boolean" counts as numeric to pandas: jomo imputed it as a continuous variable
    (completed values such as 0.80 in a float column)."""
    data = _boolean_target()
    before = copy.deepcopy(data)
    imp = mj.jomo_impute(data, "b + y1 ~ 1 + (1|id)", **FAST)
    pdt.assert_frame_equal(data, before, check_exact=True)
    assert list(imp.spec.categories["b"]) == [False, True]
    done = imp.complete(1)
    assert done["b"].notna().all()
    assert set(done["b"].tolist()) <= {False, True}
    observed = data["b"].notna().to_numpy()
    assert (done["b"][observed].to_numpy() == data["b"][observed].to_numpy()).all()


def test_nullable_boolean_target_refused_by_pan():
    _raises(lambda d: mj.pan_impute(d, "b + y1 ~ 1 + (1|id)", **FAST), _boolean_target(),
            MitmlError, "Target variables must be numeric: 'b' has dtype boolean")


def test_jomo_target_of_numbers_in_an_object_column():
    """An object column of floats became a categorical target with one level per value."""
    data = tiny()
    data["y1"] = data["y1"].astype(object)
    _raises(lambda d: mj.jomo_impute(d, FORMULA, **FAST), data, MitmlError,
            r"Target 'y1' holds numbers in an object column.*pd.to_numeric")


def test_jomo_type_as_two_row_array():
    """[type_L1, type_L2] as a 2-row NumPy array (R's list of two vectors) was refused."""
    data = tiny()
    data["z2"] = np.repeat(np.random.default_rng(1).normal(size=6), 4)
    data.loc[[0, 1, 2, 3], "z2"] = np.nan
    pair = [[-2, 2, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1]]
    expected = build_spec(data, type=pair, kind="jomo")
    assert build_spec(data, type=np.array(pair), kind="jomo") == expected
    assert expected.targets_l2 == ("z2",)


def test_messages_show_plain_values():
    """'its only observed value is np.float64(-0.49...)': NumPy reprs in messages."""
    data = tiny().iloc[:1]
    with pytest.raises(MitmlError, match=r"only observed value is -?\d") as info:
        build_spec(data, "y1 ~ 1 + (1|id)")
    assert "np." not in str(info.value)
    data = tiny()
    data["g"] = np.where(data["id"] <= 3, 0.5, 1.5)
    data.loc[data["g"] == 0.5, "y1"] = np.nan
    with pytest.raises(MitmlError, match=r"no observed value in group 0\.5 of 'g'"):
        build_spec(data, "y1 ~ 1 + (1|id)", group="g")


def test_group_given_as_values_names_the_type():
    """group=data['grp'] (values instead of the column name) printed the whole Series."""
    data = tiny()
    for values in (data["grp"], data["grp"].to_numpy()):
        with pytest.raises(MitmlError, match=r"'group' is not correctly specified: a (Series|ndarray) "
                                             r"must be the name of a column of 'data'\.$"):
            build_spec(data, FORMULA, group=values)


def test_call_text_lists_the_arguments_given():
    """The printed call left out keep_chains, save_pred, prior, type and exact_beta2 (mitml prints
    the call as written), and jomo printed a 'formula_l2' argument that does not exist."""
    data = mj.load_studentratings()
    kw = {"n_burn": 5, "n_iter": 2, "m": 2, "progress": False, "seed": 1}
    imp = mj.pan_impute(data, formula="ReadDis ~ 1 + (1|ID)", keep_chains="diagonal",
                        save_pred=True, **kw)
    assert imp.call == ("pan_impute(formula='ReadDis ~ 1 + (1|ID)', n_burn=5, n_iter=2, m=2, "
                        "chains=1, seed=1, keep_chains='diagonal', save_pred=True)")
    codes = [{"ID": -2, "ReadDis": 1}.get(c, 0) for c in data.columns]
    prior = {"a": 1, "Binv": np.eye(1), "c": 1, "Dinv": np.eye(1)}
    imp = mj.pan_impute(data, type=np.array(codes), prior=prior, **kw)
    assert imp.call.startswith(f"pan_impute(type={codes}, n_burn=5")
    assert "prior={'a': ..., 'Binv': ..., 'c': ..., 'Dinv': ...}" in imp.call
    lead = mj.load_leadership()
    imp = mj.jomo_impute(lead, formula=["JOBSAT ~ 1 + (1|GRPID)", "COHES ~ 1"], exact_beta2=True, **kw)
    assert imp.call.startswith("jomo_impute(formula=['JOBSAT ~ 1 + (1|GRPID)', 'COHES ~ 1'], ")
    assert imp.call.endswith("exact_beta2=True)") and "formula_l2" not in imp.call
    # as written: mitml prints the call, not the formula with '*' expanded
    for impute in (mj.pan_impute, mj.jomo_impute):
        imp = impute(data, formula="ReadDis ~ Sex*ReadAchiev + (1|ID)", **kw)
        assert "formula='ReadDis ~ Sex*ReadAchiev + (1|ID)'" in imp.call
        assert "Sex:ReadAchiev" in repr(imp)  # the model section shows the expanded predictors
