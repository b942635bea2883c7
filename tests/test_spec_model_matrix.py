"""model_matrix reproduces R's model.matrix (names, column order, values, NA rows)."""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from mitml_jax.datasets import load_studentratings
from mitml_jax.errors import MitmlError
from mitml_jax.spec.model_matrix import model_matrix, r_expression, rhs_terms


@pytest.fixture(scope="module")
def students():
    return load_studentratings()


def _frame(columns, index):
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in columns.items()}, index=index)


def test_sex_readachiev_interaction(students):
    # R: model.matrix(~ 1 + Sex + ReadAchiev + Sex:ReadAchiev, studentratings)
    got = model_matrix("1 + Sex + ReadAchiev + Sex:ReadAchiev", students)
    girl = (students["Sex"] == "Girl").to_numpy(dtype=float)
    read = students["ReadAchiev"].to_numpy(dtype=float)
    expected = _frame({"(Intercept)": np.ones(len(students)), "SexGirl": girl,
                       "ReadAchiev": read, "SexGirl:ReadAchiev": girl * read}, students.index)
    pdt.assert_frame_equal(got, expected)


def test_star_and_variable_order(students):
    # R orders the variables of an interaction by first appearance: x + f + f:x -> x:fGirl
    got = model_matrix("ReadAchiev + Sex + Sex:ReadAchiev", students)
    assert list(got.columns) == ["(Intercept)", "ReadAchiev", "SexGirl", "ReadAchiev:SexGirl"]
    star = model_matrix("Sex*ReadAchiev", students)
    assert list(star.columns) == ["(Intercept)", "SexGirl", "ReadAchiev", "SexGirl:ReadAchiev"]


def test_factor_predictor_fedstate(students):
    # R: model.matrix(~ FedState + MathDis, ...) keeps NA rows with na.action = na.pass
    got = model_matrix("FedState + SES", students)
    sh = (students["FedState"] == "SH").to_numpy(dtype=float)
    expected = _frame({"(Intercept)": np.ones(len(students)), "FedStateSH": sh,
                       "SES": students["SES"].to_numpy(dtype=float)}, students.index)
    pdt.assert_frame_equal(got, expected)
    assert got["SES"].isna().sum() == students["SES"].isna().sum() > 0


def test_no_intercept_full_dummies(students):
    # R: ~ 0 + FedState + Sex -> FedStateB, FedStateSH, SexGirl
    got = model_matrix("0 + FedState + Sex", students)
    assert list(got.columns) == ["FedStateB", "FedStateSH", "SexGirl"]
    np.testing.assert_array_equal(got["FedStateB"], (students["FedState"] == "B").astype(float))
    same = model_matrix("FedState + Sex - 1", students)
    pdt.assert_frame_equal(got, same)


def test_factor_by_factor_interaction(students):
    # R: ~ Sex * FedState; and ~ Sex:FedState alone gets full dummies (first factor fastest)
    got = model_matrix("Sex*FedState", students)
    assert list(got.columns) == ["(Intercept)", "SexGirl", "FedStateSH", "SexGirl:FedStateSH"]
    only = model_matrix("Sex:FedState", students)
    assert list(only.columns) == ["(Intercept)", "SexBoy:FedStateB", "SexGirl:FedStateB",
                                  "SexBoy:FedStateSH", "SexGirl:FedStateSH"]
    boy_sh = ((students["Sex"] == "Boy") & (students["FedState"] == "SH")).astype(float)
    np.testing.assert_array_equal(only["SexBoy:FedStateSH"], boy_sh)


def test_numeric_interaction_without_main_effect(students):
    # R: ~ ReadAchiev:Sex -> (Intercept), ReadAchiev:SexBoy, ReadAchiev:SexGirl
    got = model_matrix("ReadAchiev:Sex", students)
    assert list(got.columns) == ["(Intercept)", "ReadAchiev:SexBoy", "ReadAchiev:SexGirl"]
    boy = (students["Sex"] == "Boy").to_numpy(dtype=float)
    np.testing.assert_allclose(got["ReadAchiev:SexBoy"], boy * students["ReadAchiev"])


def test_transforms_are_named_as_r(students):
    got = model_matrix("I(ReadAchiev^2) + log(CognAbility)", students)
    assert list(got.columns) == ["(Intercept)", "I(ReadAchiev^2)", "log(CognAbility)"]
    np.testing.assert_allclose(got["I(ReadAchiev^2)"], students["ReadAchiev"] ** 2)
    np.testing.assert_allclose(got["log(CognAbility)"], np.log(students["CognAbility"]))
    pdt.assert_frame_equal(model_matrix("I(ReadAchiev**2)", students)[["I(ReadAchiev^2)"]],
                           got[["I(ReadAchiev^2)"]])
    assert r_expression("I(x - y * 2)") == "I(x - y * 2)"
    assert r_expression("I((x + 1) ** 2)") == "I((x + 1)^2)"
    assert r_expression("I(x / 2)") == "I(x/2)"


def test_cluster_means_inside_formula(students):
    got = model_matrix("I(clusterMeans(ReadAchiev, ID))", students)
    expected = students.groupby("ID")["ReadAchiev"].transform("mean").to_numpy()
    np.testing.assert_allclose(got["I(clusterMeans(ReadAchiev, ID))"], expected)


def test_strings_bool_and_missing_factor_levels():
    data = pd.DataFrame({"s": ["b", "a", None, "c"], "flag": [True, False, True, True],
                         "x": [1.0, 2.0, 3.0, 4.0]})
    got = model_matrix("s + flag", data)
    assert list(got.columns) == ["(Intercept)", "sb", "sc", "flagTRUE"]
    assert got.loc[2, ["sb", "sc"]].isna().all()  # NA factor -> NA row, never dropped
    np.testing.assert_array_equal(got["sb"].to_numpy()[[0, 1, 3]], [1.0, 0.0, 0.0])
    inter = model_matrix("x:s", data)
    assert np.isnan(inter.loc[2, "x:sb"])


def test_ordered_factor_polynomial_contrasts():
    data = pd.DataFrame({"o": pd.Categorical(list("abcab"), categories=list("abc"),
                                             ordered=True)})
    got = model_matrix("o", data)
    assert list(got.columns) == ["(Intercept)", "o.L", "o.Q"]
    # R: contr.poly(3) = [[-0.7071068, 0.4082483], [0, -0.8164966], [0.7071068, 0.4082483]]
    np.testing.assert_allclose(got.loc[[0, 1, 2], ["o.L", "o.Q"]].to_numpy(),
                               [[-0.7071068, 0.4082483], [0, -0.8164966],
                                [0.7071068, 0.4082483]], atol=1e-7)


def test_intercept_only_and_empty(students):
    assert list(model_matrix("1", students).columns) == ["(Intercept)"]
    assert model_matrix("0", students).shape == (len(students), 0)
    terms = rhs_terms("(Sex + FedState + ReadAchiev)^2")
    assert terms.labels == ("Sex", "FedState", "ReadAchiev", "Sex:FedState", "Sex:ReadAchiev",
                            "FedState:ReadAchiev")


def test_input_not_modified_and_index_kept(students):
    data = students.iloc[::-1].copy()
    before = data.copy(deep=True)
    got = model_matrix("Sex*ReadAchiev + FedState", data)
    pdt.assert_frame_equal(data, before)
    assert got.index.equals(data.index)


def test_unknown_column_is_named(students):
    with pytest.raises(MitmlError, match="Nope"):
        model_matrix("1 + Nope", students)
    with pytest.raises(MitmlError, match="Nope"):
        model_matrix("I(Nope^2)", students)
