"""Parse lme4-style imputation formulas: ``"y1 + y2 ~ 1 + x1 + (1 + x1 | id)"``.

The bar term is split off here; the fixed and random parts are plain
one-sided formulas handled by :mod:`mitml_jax.spec.model_matrix`. As in mitml, only the first
``( ... | cluster)`` term is used; further bar terms are ignored (with a warning here).
"""

from __future__ import annotations

import re
import warnings
from typing import NamedTuple

from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

__all__ = ["ParsedFormula", "parse_formula", "split_top_level"]

_NAME = re.compile(r"^(?:(?:[^\W\d]|\.)[\w.]*|`[^`]+`)$")  # letters: any script, as R in UTF-8


class ParsedFormula(NamedTuple):
    """One parsed formula.

    Attributes:
        lhs: target column names, in formula order.
        fixed: the fixed part's right-hand side (bar terms removed; ``"1"`` if nothing is left).
        random: the random part's right-hand side (left of ``|``), or None without a bar term.
        cluster: the cluster column (right of ``|``), or None.
        intercept_dropped: True when the fixed part has ``0``/``-1``.
        text: the formula as given.
    """

    lhs: tuple
    fixed: str
    random: str | None
    cluster: str | None
    intercept_dropped: bool
    text: str


def split_top_level(text: str, separators: str) -> list:
    """Split ``text`` at ``separators`` outside parentheses/brackets/backticks.

    Returns a list of ``(separator or "", chunk)`` pairs; chunks are stripped.
    """
    parts, depth, current, sep, in_tick = [], 0, [], "", False
    for ch in text:
        if ch == "`":
            in_tick = not in_tick
        elif not in_tick and ch in "([{":
            depth += 1
        elif not in_tick and ch in ")]}":
            depth -= 1
            if depth < 0:
                raise MitmlError(f"Unbalanced parentheses in formula {text!r}.")
        elif not in_tick and depth == 0 and ch in separators:
            parts.append((sep, "".join(current).strip()))
            current, sep = [], ch
            continue
        current.append(ch)
    if depth != 0 or in_tick:
        raise MitmlError(f"Unbalanced parentheses or backticks in formula {text!r}.")
    parts.append((sep, "".join(current).strip()))
    return parts


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith("`") and name.endswith("`") else name


def _bar_term(chunk: str):
    """``(1 + x | id)`` -> ("1 + x", "id"); None when ``chunk`` is no bar term."""
    if not (chunk.startswith("(") and chunk.endswith(")")):
        return None
    inner = chunk[1:-1]
    try:
        pieces = split_top_level(inner, "|")
    except MitmlError:
        return None  # "(a) + (b)" is not one parenthesised chunk
    if len(pieces) < 2:
        return None
    pieces = [p for _, p in pieces if p != ""]  # "||" (lme4's uncorrelated form) acts like "|"
    if len(pieces) != 2:
        raise MitmlError(f"Could not read the random part {chunk!r}: write '(<random terms> | "
                         "<cluster>)' with one cluster variable.")
    return pieces[0], pieces[1]


def parse_formula(text: str) -> ParsedFormula:
    """Parse ``"y1 + y2 ~ fixed + (random | cluster)"`` (or a formula without a bar term).

    Raises:
        MitmlTypeError: ``text`` is not a string.
        MitmlError: no ``~``, an empty or transformed left-hand side, a malformed bar term, or a
            cluster that is not a single column name.
    """
    if not isinstance(text, str):
        raise MitmlTypeError(f"'formula' must be a string such as 'y ~ 1 + x + (1 | id)', "
                             f"not {type(text).__name__}.")
    sides = split_top_level(text, "~")
    if len(sides) != 2:
        raise MitmlError(f"'formula' {text!r} must contain exactly one '~' separating the target "
                         "variables (left) from the predictors (right).")
    lhs_text, rhs_text = sides[0][1], sides[1][1]
    if lhs_text == "":
        raise MitmlError(f"'formula' {text!r} has no target variables: list the columns to "
                         "impute left of '~'.")
    lhs = []
    for sep, chunk in split_top_level(lhs_text, "+-"):
        if sep == "-" or not _NAME.match(chunk):
            bad = chunk if sep != "-" else f"-{chunk}"
            quote = ("" if sep == "-" or any(ch in chunk for ch in "()`,*/^:%") else
                     f" A column name that starts with a digit or holds spaces or symbols goes "
                     f"in backticks: `{chunk}`.")
            raise MitmlError(f"Could not find: {bad}. Target variables in 'formula' must be "
                             "contained in the data set 'as is', and transformations must be "
                             f"applied beforehand.{quote}")
        lhs.append(_unquote(chunk))
    if rhs_text == "":
        raise MitmlError(f"'formula' {text!r} has nothing right of '~': write '1' for an "
                         "intercept-only model.")
    fixed_parts, bars = [], []
    for sep, chunk in split_top_level(rhs_text, "+-"):
        if chunk == "" and sep == "" and not fixed_parts:
            continue  # leading sign, e.g. "~ -1 + x"
        if chunk == "":
            raise MitmlError(f"'formula' {text!r} has an empty term around {sep!r}.")
        bar = _bar_term(chunk)
        if bar is not None:
            if sep == "-":
                raise MitmlError(f"'formula' {text!r}: a random part cannot be subtracted.")
            bars.append(bar)
            continue
        if "|" in chunk:
            raise MitmlError(f"'formula' {text!r}: put the random part in parentheses, "
                             "e.g. '(1 + x | id)'.")
        fixed_parts.append(f"{sep} {chunk}".strip() if fixed_parts or sep == "-" else chunk)
    fixed = " ".join(fixed_parts) if fixed_parts else "1"
    if fixed.startswith("+"):
        fixed = fixed[1:].strip()
    random = cluster = None
    if bars:
        if len(bars) > 1:
            warnings.warn(f"'formula' {text!r} has {len(bars)} random parts; only the first, "
                          f"'({bars[0][0]} | {bars[0][1]})', is used (mitml supports one "
                          "cluster variable).", MitmlWarning, stacklevel=2)
        random, cluster = bars[0]
        if not _NAME.match(cluster):
            raise MitmlError(f"The cluster variable {cluster!r} in 'formula' must be a single "
                             "column name (three-level models are not supported).")
        cluster = _unquote(cluster)
    from mitml_jax.spec.model_matrix import rhs_terms

    intercept_dropped = not rhs_terms(fixed).intercept
    return ParsedFormula(tuple(lhs), fixed, random, cluster, intercept_dropped, text)
