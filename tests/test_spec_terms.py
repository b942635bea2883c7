"""R's term algebra (mitml_jax.spec.terms through rhs_terms) against R's terms() labels.

Expected labels and intercepts were printed by R 4 (``attr(terms(f), "term.labels")``).
"""

import pytest

from mitml_jax.errors import MitmlError
from mitml_jax.spec.model_matrix import rhs_terms

R_TERMS = {
    "(a+b+c)^2": ("a b c a:b a:c b:c", True),
    "a/b": ("a a:b", True),
    "(a+b)/c": ("a b a:b:c", True),
    "a*b-a": ("b a:b", True),
    "a %in% b": ("a:b", True),
    "a*b:c": ("a b:c a:b:c", True),
    "a:b*c": ("c a:b a:b:c", True),
    "b:a+a:b": ("b:a", True),
    "a:b:c+a": ("a a:b:c", True),
    "(a*b)^2": ("a b a:b", True),
    "a/(b+c)": ("a a:b a:c", True),
    "(a+b):(c+d)": ("a:c a:d b:c b:d", True),
    "a-1+1": ("a", True),
    "a-0": ("a", True),
    "0+a": ("a", False),
    "a + b - b": ("a", True),
    "a*b*c": ("a b c a:b a:c b:c a:b:c", True),
    "-1 + x": ("x", False),
    "x - 1": ("x", False),
    "1": ("", True),
    "0": ("", False),
    "I(x^2) + log( z )": ("I(x^2) log(z)", True),
    "x + I(x*2)": ("x I(x * 2)", True),
}


@pytest.mark.parametrize("formula", sorted(R_TERMS))
def test_terms_match_r(formula):
    labels, intercept = R_TERMS[formula]
    out = rhs_terms(formula)
    assert " ".join(out.labels) == labels
    assert out.intercept is intercept


def test_backticked_names_and_calls():
    out = rhs_terms("`x.1` + log(`a b`) * y", columns=["x.1", "a b", "y"])
    assert out.labels == ("x.1", "log(`a b`)", "y", "log(`a b`):y")


@pytest.mark.parametrize("bad", ["a +", "(a + b", "a * 2", "a ^ b", "a + )", "x $ y", "log(x"])
def test_syntax_errors_name_the_formula(bad):
    with pytest.raises(MitmlError, match="Could not parse the formula part"):
        rhs_terms(bad)
