"""Parse an lme4-style formula with one grouping factor: ``y ~ 1 + x + (1 + x | id)``.

Only the bar term is handled here; the two right-hand sides are turned into design matrices by
R's ``model.matrix`` rules (:func:`mitml_jax.analysis.lmer.design.model_matrix`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mitml_jax.errors import MitmlError, MitmlTypeError

__all__ = ["LmerFormula", "parse_lmer_formula"]

_BAR = re.compile(r"\(([^()|]*)(\|\|?)([^()|]*)\)")
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class LmerFormula:
    """The parts of a one-grouping-factor mixed-model formula.

    Attributes
    ----------
    text : str
        The formula as R deparses it (``"y ~ 1 + x + (1 + x | id)"``).
    response : str
        Name of the response column.
    fixed : str
        One-sided right-hand side of the fixed part, e.g. ``"1 + Sex + I.SES"``.
    random : str
        One-sided right-hand side of the random part, e.g. ``"1 + x"``.
    group : str
        Name of the grouping (cluster) column.
    """

    text: str
    response: str
    fixed: str
    random: str
    group: str


def _strip_outer(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if depth < 0:
            return False
    return depth == 0


def _clean_rhs(text: str) -> str:
    """Remove empty ``+`` left over after cutting out the bar term."""
    parts = [part.strip() for part in text.split("+")]
    parts = [part for part in parts if part]
    return " + ".join(parts)


def parse_lmer_formula(formula: str) -> LmerFormula:
    """Split ``"y ~ fixed + (random | group)"`` into its parts.

    Parameters
    ----------
    formula : str
        lme4-style formula with exactly one random-effects term ``(terms | group)``.

    Returns
    -------
    LmerFormula

    Raises
    ------
    MitmlTypeError
        If ``formula`` is not a string.
    MitmlError
        If the formula has no response, no or several random-effects terms, a ``||`` term, or a
        grouping factor that is not a plain column name.
    """
    if not isinstance(formula, str):
        raise MitmlTypeError(
            f"'formula' must be a string such as 'y ~ 1 + x + (1 | id)', got {type(formula).__name__}."
        )
    text = " ".join(formula.split())
    if text.count("~") != 1:
        raise MitmlError(
            f"'formula' must contain exactly one '~' with the response on the left: {formula!r}."
        )
    lhs, rhs = (side.strip() for side in text.split("~"))
    lhs = _strip_outer(lhs)
    if not lhs or not _NAME.match(lhs):
        raise MitmlError(
            f"'formula' must have a single response column on the left of '~', got {lhs!r}; "
            "transform the response in the data first."
        )
    bars = list(_BAR.finditer(rhs))
    if len(bars) != 1:
        raise MitmlError(
            f"'formula' must have exactly one random-effects term '(terms | group)' (lmer with one "
            f"grouping factor), found {len(bars)} in {formula!r}."
        )
    bar = bars[0]
    if bar.group(2) == "||":
        raise MitmlError(
            "'formula' uses '||' (uncorrelated random effects), which lmer here does not support; "
            "use '|' for an unstructured random-effect covariance."
        )
    random = _clean_rhs(bar.group(1)) or "1"
    group = _strip_outer(bar.group(3))
    if not _NAME.match(group):
        raise MitmlError(
            f"The grouping factor in 'formula' must be one column name, got {group!r}; "
            "create a single cluster-id column for nested or crossed groupings."
        )
    fixed = _clean_rhs(rhs[: bar.start()] + " + " + rhs[bar.end():])
    if not fixed:
        fixed = "1"
    elif fixed in ("0", "-1"):
        fixed = "0"
    canonical = f"{lhs} ~ {rhs[: bar.start()]}({random} | {group}){rhs[bar.end():]}"
    canonical = re.sub(r"\s*\+\s*", " + ", canonical)
    return LmerFormula(text=canonical, response=lhs, fixed=fixed, random=random, group=group)
