"""mitml's integer type vector gives the same ModelSpec as the equivalent formula."""

import warnings

import pytest

from mitml_jax.datasets import load_justice, load_leadership, load_studentratings
from mitml_jax.errors import MitmlError, MitmlWarning
from mitml_jax.spec.model_spec import build_spec

# studentratings columns: ID FedState Sex MathAchiev MathDis SES ReadAchiev ReadDis CognAbility
#                         SchClimate


@pytest.fixture(scope="module")
def students():
    return load_studentratings()


def test_introduction_vignette(students):
    formula = build_spec(students, "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)")
    typed = build_spec(students, type=[-2, 0, 0, 0, 0, 0, 1, 1, 0, 1])
    assert formula == typed and hash(formula) == hash(typed)


def test_analysis_vignette(students):
    # targets follow the type vector's column order (SES before ReadDis), as in mitml
    formula = build_spec(students, "SES + ReadDis ~ 1 + Sex + (1|ID)")
    typed = build_spec(students, type=[-2, 0, 2, 0, 0, 1, 0, 1, 0, 0])
    assert formula == typed
    assert typed.fixed_names == ("(Intercept)", "SexGirl")
    vignette_order = build_spec(students, "ReadDis + SES ~ 1 + Sex + (1|ID)")
    assert vignette_order.targets == ("ReadDis", "SES") and vignette_order != typed


def test_level2_vignette():
    data = load_leadership()  # GRPID JOBSAT COHES NEGLEAD WLOAD
    formula = build_spec(data, ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"],
                         kind="jomo")
    typed = build_spec(data, type=[[-2, 1, 0, 1, 1], [-2, 0, 1, 0, 0]], kind="jomo")
    assert formula == typed
    assert typed.is_l2 and typed.targets_l2 == ("COHES",)


def test_random_slopes_and_group_from_type(students):
    typed = build_spec(students, type=[-2, -1, 0, 0, 0, 0, 3, 1, 2, 0])
    assert typed.formula == "ReadDis ~ 1 + ReadAchiev + CognAbility + (1 + ReadAchiev | ID)"
    assert typed.group == "FedState"
    formula = build_spec(students, "ReadDis ~ 1 + ReadAchiev + CognAbility + (1 + ReadAchiev|ID)",
                         group="FedState")
    assert typed == formula


def test_single_level_jomo_type(students):
    typed = build_spec(students, type=[0, 0, 0, 0, 0, 0, 2, 1, 0, 1], kind="jomo")
    formula = build_spec(students, "ReadDis + SchClimate ~ 1 + ReadAchiev", kind="jomo")
    assert typed == formula and typed.cluster is None and not typed.is_multilevel


def test_group_argument_with_type(students):
    with pytest.warns(MitmlWarning, match="Setting 'type' of 'FedState' to '-1'"):
        jomo = build_spec(students, type=[-2, 0, 0, 0, 0, 0, 1, 1, 0, 1], group="FedState",
                          kind="jomo")
    assert jomo.group == "FedState"
    with pytest.warns(MitmlWarning, match="ignored"):
        pan = build_spec(students, type=[-2, 0, 0, 0, 0, 0, 1, 1, 0, 1], group="FedState")
    assert pan.group is None  # mitml: the type vector decides the group for pan


def test_level2_group_from_second_vector():
    data = load_justice()  # id sex sat jor jcl
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        typed = build_spec(data, type=[[-2, 1, 1, 1, 0], [0, 0, 0, 0, 1]], kind="jomo")
    formula = build_spec(data, ["sex + sat + jor ~ 1 + (1|id)", "jcl ~ 1"], kind="jomo")
    assert typed == formula
    assert dict(typed.categories) == {"sex": ("male", "female")}


def test_level2_type_needs_level2_target():
    with pytest.raises(MitmlError, match="type\\[1\\]"):
        build_spec(load_leadership(), type=[[-2, 1, 0, 1, 1], [0, 0, 0, 0, 0]], kind="jomo")
