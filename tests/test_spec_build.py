"""build_spec / ModelSpec / Design on the vignette models."""

import numpy as np
import pandas as pd
import pytest

from mitml_jax.datasets import load_leadership, load_studentratings
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
