"""Bad input: each case raises MitmlError naming the culprit and leaves the caller's data alone."""

import copy

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from mitml_jax.datasets import load_leadership, load_studentratings
from mitml_jax.errors import MitmlError, MitmlTypeError
from mitml_jax.spec.model_spec import build_spec

STUDENTS = load_studentratings()
LEADERSHIP = load_leadership()
INTRO_TYPE = [-2, 0, 0, 0, 0, 0, 1, 1, 0, 1]


def _students(**changes):
    """A factory for a copy of studentratings with cells set to missing."""
    def make():
        data = STUDENTS.copy()
        for column, (rows, value) in changes.items():
            data.loc[rows, column] = value
        return data
    return make


def _string_target():
    data = STUDENTS.copy()
    data["SexText"] = data["Sex"].astype(str)
    data.loc[:3, "SexText"] = None
    return data


def _inf(column):
    data = STUDENTS.copy()
    data.loc[5, column] = np.inf
    return data


CASES = {
    # name: (data factory, build_spec keyword arguments, error type, pattern in the message)
    "data_numpy": (lambda: STUDENTS[["ReadDis", "ID"]].to_numpy(),
                   {"formula": "ReadDis ~ 1 + (1|ID)"}, MitmlTypeError, "'data'.*DataFrame"),
    "data_list": (lambda: [[1.0, 2.0]], {"formula": "y ~ 1 + (1|id)"}, MitmlTypeError, "'data'"),
    "data_none": (lambda: None, {"formula": "y ~ 1 + (1|id)"}, MitmlTypeError, "'data'"),
    "unknown_target": (STUDENTS.copy, {"formula": "Nope + ReadDis ~ 1 + (1|ID)"}, MitmlError,
                       "Nope"),
    "unknown_predictor": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + Nope + (1|ID)"}, MitmlError,
                          "Nope"),
    "unknown_random": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1 + Slope|ID)"}, MitmlError,
                       "Slope"),
    "unknown_cluster": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1|School)"}, MitmlError,
                        "School"),
    "unknown_group": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1|ID)", "group": "Land"},
                      MitmlError, "'group'.*Land"),
    "two_groups": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1|ID)",
                                   "group": ["FedState", "Sex"]}, MitmlError, "group"),
    "target_is_predictor": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + ReadDis + (1|ID)"},
                            MitmlError, "ReadDis"),
    "target_in_random_part": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1 + ReadDis|ID)"},
                              MitmlError, "ReadDis"),
    "target_in_transform": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + I(ReadDis^2) + (1|ID)"},
                            MitmlError, "ReadDis"),
    "target_is_cluster": (STUDENTS.copy, {"formula": "ID ~ 1 + (1|ID)"}, MitmlError,
                          "'ID' is also the cluster"),
    "missing_predictor": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + SES + (1|ID)"}, MitmlError,
                          "SES"),
    "missing_factor_predictor": (_students(Sex=(7, np.nan)),
                                 {"formula": "ReadDis ~ 1 + Sex + (1|ID)"}, MitmlError,
                                 "SexGirl"),
    "missing_cluster": (_students(ID=(4, np.nan)), {"formula": "ReadDis ~ 1 + (1|ID)"},
                        MitmlError, "'ID'"),
    "missing_group": (_students(FedState=(2, np.nan)),
                      {"formula": "ReadDis ~ 1 + (1|ID)", "group": "FedState"}, MitmlError,
                      "FedState"),
    "pan_without_cluster": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + ReadAchiev"}, MitmlError,
                            "formula"),
    "duplicate_targets": (STUDENTS.copy, {"formula": "ReadDis + ReadDis ~ 1 + (1|ID)"},
                          MitmlError, "duplicate.*ReadDis"),
    "no_missing_targets": (STUDENTS.copy, {"formula": "ReadAchiev + CognAbility ~ 1 + (1|ID)"},
                           MitmlError, "ReadAchiev"),
    "pan_categorical_target": (_students(Sex=(3, np.nan)), {"formula": "Sex ~ 1 + (1|ID)"},
                               MitmlError, "Sex.*jomo"),
    "pan_string_target": (_string_target, {"formula": "SexText ~ 1 + (1|ID)"}, MitmlError,
                          "SexText"),
    "empty_targets": (STUDENTS.copy, {"formula": "~ 1 + (1|ID)"}, MitmlError, "formula"),
    "malformed_formula": (STUDENTS.copy, {"formula": "ReadDis 1 + (1|ID)"}, MitmlError,
                          "formula"),
    "transformed_target": (STUDENTS.copy, {"formula": "log(ReadDis) ~ 1 + (1|ID)"}, MitmlError,
                           "log\\(ReadDis\\)"),
    "formula_wrong_type": (STUDENTS.copy, {"formula": 3}, MitmlTypeError, "formula"),
    "formula_and_type": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1|ID)", "type": INTRO_TYPE},
                         MitmlError, "'type' or 'formula'"),
    "neither_formula_nor_type": (STUDENTS.copy, {}, MitmlError, "'formula'"),
    "bad_kind": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1|ID)", "kind": "mice"},
                 MitmlError, "'kind'"),
    "type_length": (STUDENTS.copy, {"type": [-2, 1, 0]}, MitmlError, "Length of 'type'"),
    "type_two_clusters": (STUDENTS.copy, {"type": [-2, -2, 0, 0, 0, 0, 1, 1, 0, 1]},
                          MitmlError, "ID, FedState"),
    "type_bad_code": (STUDENTS.copy, {"type": [-2, 0, 0, 0, 0, 0, 1, 7, 0, 1]}, MitmlError,
                      "ReadDis"),
    "type_no_target": (STUDENTS.copy, {"type": [-2, 0, 0, 0, 0, 0, 2, 0, 0, 0]}, MitmlError,
                       "'type'"),
    "type_pan_no_cluster": (STUDENTS.copy, {"type": [0, 0, 0, 0, 0, 0, 1, 1, 0, 1]},
                            MitmlError, "'type'"),
    "type_not_numbers": (STUDENTS.copy, {"type": "ReadDis"}, MitmlTypeError, "'type'"),
    "inf_target": (lambda: _inf("ReadDis"), {"formula": "ReadDis ~ 1 + (1|ID)"}, MitmlError,
                   "ReadDis.*infinite"),
    "inf_predictor": (lambda: _inf("ReadAchiev"),
                      {"formula": "ReadDis ~ 1 + ReadAchiev + (1|ID)"}, MitmlError,
                      "ReadAchiev.*infinite"),
    "predictor_constant_in_group": (STUDENTS.copy,
                                    {"formula": "ReadDis ~ 1 + FedState + (1|ID)",
                                     "group": "FedState"}, MitmlError, "FedStateSH"),
    "collinear_predictors": (lambda: STUDENTS.assign(Twice=STUDENTS["CognAbility"] * 2),
                             {"formula": "ReadDis ~ 1 + Twice + CognAbility + (1|ID)"},
                             MitmlError, "rank deficient"),
    "datetime_target": (lambda: STUDENTS.assign(When=pd.to_datetime("2020-01-01")).assign(
        When=lambda d: d["When"].where(d.index > 3)),
        {"formula": "When ~ 1 + (1|ID)", "kind": "jomo"}, MitmlError, "When"),
    "group_is_cluster": (STUDENTS.copy, {"formula": "ReadDis ~ 1 + (1|ID)", "group": "ID"},
                         MitmlError, "'ID'"),
    "l2_target_varies": (LEADERSHIP.copy, {"formula": ["COHES ~ 1 + (1|GRPID)", "JOBSAT ~ 1"],
                                           "kind": "jomo"}, MitmlError, "JOBSAT"),
    "l2_without_cluster": (LEADERSHIP.copy, {"formula": ["JOBSAT ~ 1", "COHES ~ 1"],
                                             "kind": "jomo"}, MitmlError, "cluster"),
    "three_formulas": (LEADERSHIP.copy, {"formula": ["JOBSAT ~ 1 + (1|GRPID)", "COHES ~ 1",
                                                     "COHES ~ 1"], "kind": "jomo"},
                       MitmlError, "number of levels"),
    "pan_formula_pair": (LEADERSHIP.copy, {"formula": ["JOBSAT ~ 1 + (1|GRPID)", "COHES ~ 1"]},
                         MitmlError, "'formula'.*jomo"),
    "jomo_duplicate_l1_l2": (LEADERSHIP.copy,
                             {"formula": ["COHES ~ 1 + (1|GRPID)", "COHES ~ 1"], "kind": "jomo"},
                             MitmlError, "COHES"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name):
    factory, kwargs, error, pattern = CASES[name]
    data = factory()
    before = copy.deepcopy(data)
    with pytest.raises(error, match=pattern):
        build_spec(data, **kwargs)
    if isinstance(data, pd.DataFrame):
        pdt.assert_frame_equal(data, before)
    elif isinstance(data, np.ndarray):
        np.testing.assert_array_equal(data, before)
    else:
        assert data == before


def test_number_of_cases():
    assert len(CASES) >= 25


def test_string_cluster_ids_get_codes():
    data = STUDENTS.copy()
    data["School"] = "s" + data["ID"].astype(str)
    before = data.copy(deep=True)
    spec = build_spec(data, "ReadDis ~ 1 + (1|School)")
    design = spec.design(data)
    pdt.assert_frame_equal(data, before)
    assert design.cluster_labels.tolist() == sorted(data["School"].unique())
    np.testing.assert_array_equal(design.cluster_labels[design.cluster], data["School"])


def test_design_rejects_data_without_the_columns():
    spec = build_spec(STUDENTS, "ReadDis ~ 1 + Sex + (1|ID)")
    with pytest.raises(MitmlError, match="ReadDis"):
        spec.design(STUDENTS.drop(columns="ReadDis"))
    with pytest.raises(MitmlTypeError, match="'data'"):
        spec.design(STUDENTS.to_numpy())
