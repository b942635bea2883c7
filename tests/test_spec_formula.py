"""parse_formula: lme4-style formulas split into targets, fixed part, random part, cluster."""

import pytest

from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning
from mitml_jax.spec.formula import parse_formula


def test_targets_fixed_random_cluster():
    p = parse_formula("y1 + y2 ~ 1 + x1 + (1 + x1 | id)")
    assert p.lhs == ("y1", "y2")
    assert p.fixed == "1 + x1"
    assert p.random == "1 + x1" and p.cluster == "id"
    assert not p.intercept_dropped


@pytest.mark.parametrize("text", ["y ~ 0 + x + (1|id)", "y ~ x - 1 + (1|id)",
                                  "y ~ -1 + x + (1|id)"])
def test_dropped_intercept(text):
    p = parse_formula(text)
    assert p.intercept_dropped
    assert p.cluster == "id" and p.lhs == ("y",)


def test_random_without_intercept():
    p = parse_formula("y ~ x + (0 + x | id)")
    assert p.random == "0 + x" and p.fixed == "x"


def test_no_bar_is_single_level():
    p = parse_formula("y1 + y2 ~ 1 + x")
    assert p.random is None and p.cluster is None and p.fixed == "1 + x"


def test_only_random_part_gives_intercept():
    p = parse_formula("y ~ (1|id)")
    assert p.fixed == "1" and not p.intercept_dropped


def test_extra_bar_terms_ignored_with_warning():
    with pytest.warns(MitmlWarning, match="only the first"):
        p = parse_formula("y ~ 1 + (1|id) + (1|school)")
    assert p.cluster == "id"


def test_backticked_names():
    p = parse_formula("`my y` + z ~ 1 + (1 | `my id`)")
    assert p.lhs == ("my y", "z") and p.cluster == "my id"


@pytest.mark.parametrize("text, fragment", [
    ("y 1 + (1|id)", "~"),
    ("y ~ x ~ z", "~"),
    ("~ x + (1|id)", "no target"),
    ("log(y) ~ 1 + (1|id)", "log\\(y\\)"),
    ("y ~ 1 + (1|id/school)", "id/school"),
    ("y ~ 1 + x | id", "parentheses"),
    ("y ~ ", "nothing right"),
    ("y ~ 1 + (1|id", "Unbalanced"),
])
def test_malformed(text, fragment):
    with pytest.raises(MitmlError, match=fragment):
        parse_formula(text)


def test_not_a_string():
    with pytest.raises(MitmlTypeError, match="formula"):
        parse_formula(["y ~ 1"])
