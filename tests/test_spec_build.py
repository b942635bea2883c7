"""build_spec / ModelSpec / Design on the vignette models."""

import numpy as np
import pandas as pd
import pytest

from mitml_jax.datasets import load_leadership, load_studentratings
from mitml_jax.errors import MitmlError
from mitml_jax.spec.model_spec import Design, ModelSpec, build_spec


@pytest.fixture(scope="module")
def students():
    return load_studentratings()


def test_introduction_model_spec(students):
    spec = build_spec(students, "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)")
    assert isinstance(spec, ModelSpec)
    assert spec.targets == ("ReadAchiev", "ReadDis", "SchClimate")
    assert spec.cluster == "ID" and spec.group is None
    assert spec.fixed_names == ("(Intercept)",) and spec.random_names == ("(Intercept)",)
    assert spec.formula == "ReadAchiev + ReadDis + SchClimate ~ 1 + (1 | ID)"
    assert hash(spec) == hash(build_spec(students, "ReadAchiev+ReadDis+SchClimate~(1|ID)"))


def test_design_original_order_and_codes(students):
    spec = build_spec(students, "ReadDis + SES ~ 1 + Sex + (1|ID)", group="FedState")
    design = spec.design(students)
    assert isinstance(design, Design)
    n = len(students)
    assert design.y.shape == (n, 2) and design.x.shape == (n, 2) and design.z.shape == (n, 1)
    np.testing.assert_array_equal(design.y[:, 0], students["ReadDis"].to_numpy(dtype=float))
    np.testing.assert_array_equal(design.x[:, 1], (students["Sex"] == "Girl").to_numpy(float))
    labels = np.sort(students["ID"].unique())
    np.testing.assert_array_equal(design.cluster_labels, labels)
    np.testing.assert_array_equal(labels[design.cluster], students["ID"].to_numpy())
    first = list(pd.unique(students["FedState"]))
    assert list(design.group_labels) == first
    np.testing.assert_array_equal(np.asarray(first, dtype=object)[design.group],
                                  students["FedState"].astype(object).to_numpy())
    assert spec.save_pred == ("SexGirl",)
    assert spec.fixed_terms == ("(Intercept)", "Sex")


def test_level2_jomo_spec():
    data = load_leadership()
    spec = build_spec(data, ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"],
                      kind="jomo")
    assert spec.targets == ("JOBSAT", "NEGLEAD", "WLOAD") and spec.targets_l2 == ("COHES",)
    assert dict(spec.categories) == {"WLOAD": ("low", "high")}
    design = spec.design(data)
    codes = design.y[:, 2]
    expected = data["WLOAD"].cat.codes.to_numpy().astype(float)
    expected[expected < 0] = np.nan
    np.testing.assert_array_equal(codes, expected)
    assert design.x_l2.shape == (len(data), 1) and design.y_l2.shape == (len(data), 1)


def test_level1_predictor_in_level2_equation_becomes_cluster_mean():
    data = load_leadership()
    data["X"] = np.arange(len(data), dtype=float)
    data["W"] = data.groupby("GRPID")["X"].transform("min")  # constant within clusters
    before = data.copy(deep=True)
    with pytest.warns(Warning, match=r"replaced with cluster means \(X\)"):
        spec = build_spec(data, ["JOBSAT ~ 1 + (1|GRPID)", "COHES ~ 1 + X + W"], kind="jomo")
    assert spec.cluster_mean_predictors == ("X",)
    design = spec.design(data)
    pd.testing.assert_frame_equal(data, before)
    means = data.groupby("GRPID")["X"].transform("mean").to_numpy()
    np.testing.assert_allclose(design.x_l2[:, 1], means)
    np.testing.assert_array_equal(design.x_l2[:, 2], data["W"].to_numpy())
    np.testing.assert_array_equal(design.x[:, 0], 1.0)


def test_string_target_is_categorical_for_jomo(students):
    data = students.copy()
    data["Grade"] = np.where(data["ReadAchiev"] > 520, "high",
                             np.where(data["ReadAchiev"] > 450, "mid", "low")).astype(object)
    data.loc[[0, 5, 9], "Grade"] = None
    spec = build_spec(data, "Grade + ReadDis ~ 1 + Sex + (1|ID)", kind="jomo")
    assert spec.categories["Grade"] == ("high", "low", "mid")  # sorted unique observed
    design = spec.design(data)
    assert np.isnan(design.y[[0, 5, 9], 0]).all()
    expected = data["Grade"].map({"high": 0.0, "low": 1.0, "mid": 2.0}).to_numpy(dtype=float)
    np.testing.assert_array_equal(design.y[:, 0], expected)


def test_spec_is_frozen_and_hashable(students):
    spec = build_spec(load_leadership(), ["JOBSAT + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"],
                      kind="jomo")
    with pytest.raises(Exception):
        spec.targets = ("x",)
    with pytest.raises(TypeError):
        spec.categories["WLOAD"] = ("a",)
    assert isinstance(spec.targets, tuple) and len({spec, spec}) == 1


def test_group_codes_by_first_appearance_and_rows_unsorted(students):
    data = students.sample(frac=1.0, random_state=3)
    spec = build_spec(data, "ReadDis ~ 1 + (1|ID)", group="Sex")
    design = spec.design(data)
    first = data["Sex"].iloc[0]
    assert design.group[0] == 0 and design.group_labels[0] == first
    np.testing.assert_array_equal(design.y[:, 0], data["ReadDis"].to_numpy(dtype=float))
    np.testing.assert_array_equal(design.cluster_labels[design.cluster], data["ID"].to_numpy())


def test_save_pred_lists_derived_columns(students):
    spec = build_spec(students, "ReadDis ~ 1 + Sex*ReadAchiev + I(CognAbility^2) + "
                                "(1 + CognAbility|ID)")
    assert spec.fixed_names == ("(Intercept)", "SexGirl", "ReadAchiev", "I(CognAbility^2)",
                                "SexGirl:ReadAchiev")
    assert spec.save_pred == ("SexGirl", "I(CognAbility^2)", "SexGirl:ReadAchiev")
    assert spec.random_names == ("(Intercept)", "CognAbility")
    assert spec.fixed_terms == ("(Intercept)", "Sex", "ReadAchiev", "I(CognAbility^2)",
                                "Sex:ReadAchiev")


def test_single_level_design(students):
    spec = build_spec(students, "ReadDis ~ 1 + ReadAchiev", kind="jomo")
    design = spec.design(students)
    assert design.z.shape == (len(students), 0) and (design.cluster == 0).all()
    assert spec.random_names == () and not spec.is_multilevel


def test_spec_pickles_and_design_arrays_are_writable(students):
    import pickle

    spec = build_spec(load_leadership(), ["JOBSAT + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"],
                      kind="jomo")
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and hash(again) == hash(spec)
    design = spec.design(load_leadership())
    for array in design:
        assert array.flags.writeable


def test_categorical_level2_target():
    data = load_leadership()
    high = np.where(data["COHES"] > 0, "high", "low").astype(object)
    data["CL"] = pd.Categorical(np.where(data["COHES"].isna(), None, high),
                                categories=["low", "high"])
    spec = build_spec(data, ["JOBSAT ~ 1 + (1|GRPID)", "CL ~ 1"], kind="jomo")
    assert spec.categories["CL"] == ("low", "high") and spec.targets_l2 == ("CL",)
    y_l2 = spec.design(data).y_l2[:, 0]
    expected = data["CL"].cat.codes.to_numpy().astype(float)
    expected[expected < 0] = np.nan
    np.testing.assert_array_equal(y_l2, expected)
    data.loc[0, "CL"] = "high" if data.loc[1, "CL"] == "low" else "low"  # now varies in cluster 1
    with pytest.raises(MitmlError, match="CL"):
        build_spec(data, ["JOBSAT ~ 1 + (1|GRPID)", "CL ~ 1"], kind="jomo")


@pytest.mark.parametrize("formula", [
    "ReadDis + SES ~ Sex*ReadAchiev + I(CognAbility^2) + (1 + ReadAchiev|ID)",
    "ReadDis ~ 0 + FedState + Sex + (0 + CognAbility|ID)",
    "ReadDis ~ ReadAchiev:Sex - 1 + (1|ID)",
    "ReadDis ~ `read score` + log(CognAbility) + (1|`school id`)",
])
def test_canonical_formula_round_trips(students, formula):
    data = students.assign(**{"read score": students["ReadAchiev"], "school id": students["ID"]})
    spec = build_spec(data, formula)
    assert build_spec(data, spec.formula) == spec
