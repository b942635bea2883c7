"""R's ``model.matrix`` for one-sided formulas, with R's column names and NA handling.

:mod:`mitml_jax.spec.terms` expands the formula (``+``, ``-``, ``*``, ``:``, ``/``, ``^``, ``0``/``-1``); the columns
are then assembled here with R's rules (names and values as R's):

* terms are ordered by degree, and the variables inside an interaction follow their order of
  first appearance in the formula (R writes ``x + f + f:x`` as ``x:fGirl``);
* a factor is coded by treatment contrasts (``contr.poly`` for ordered categoricals) when the term
  without it is the empty term or is contained in an earlier term, and by full dummies otherwise;
  without an intercept the first factor of the first term that has one gets full dummies
  (``model.c``'s ``TermCode``);
* category/string/bool columns are factors (levels: category order, sorted unique values, or
  FALSE/TRUE); numbers are R-printed in names (``SexGirl``, ``bTRUE``, ``factor(ID)1002``);
* expressions are named as R deparses them (``I(x^2)``, ``log(x)``); ``^`` inside a call means
  power, as in R; rows are never dropped and a missing predictor gives NaN in every column built
  from it (R's ``na.action = na.pass``).

Expressions are evaluated with the data's columns (which take precedence) and ``I``, ``log``,
``exp``, ``sqrt``, ``abs``, ``mean``, ``factor``/``C``, ``clusterMeans(x, cluster)``,
``poly(x, degree, raw)`` (several columns, named ``poly(x, 2)1``, ``poly(x, 2)2`` as in R; see
:mod:`mitml_jax.spec.poly`), ``TRUE``/``FALSE`` (and ``T``/``F`` unless they are columns) and
``np`` in scope. Names that are not Python identifiers go in backticks (``I(`x.1`^2)``); bare
``x.1`` works outside calls.
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError
from mitml_jax.spec.poly import MatrixTerm, poly
from mitml_jax.spec.terms import expand_terms

__all__ = ["model_matrix", "rhs_terms", "RhsTerms", "to_python_rhs", "r_expression", "r_name",
           "sanitize_expression"]


class RhsTerms(NamedTuple):
    """Expanded right-hand side: intercept flag and terms (tuples of factor expressions).

    ``terms`` are in R's order (by degree, then appearance) and each term's factors in the order
    of first appearance of the variables; ``labels`` are R's term labels (``"Sex:ReadAchiev"``).
    """

    intercept: bool
    terms: tuple
    labels: tuple


# -- text translation ---------------------------------------------------------------------------

def to_python_rhs(rhs: str) -> str:
    """Translate R-only syntax of a right-hand side into what formulaic parses.

    ``^`` inside a function call (``I(x^2)``) becomes ``**``; ``^`` between terms stays a formula
    operator. ``-1``/``+0`` are understood by formulaic as they are.
    """
    out = []
    stack = []  # True for call parentheses
    for i, ch in enumerate(rhs):
        if ch == "(":
            j = len(out) - 1
            while j >= 0 and out[j] == " ":
                j -= 1
            stack.append(j >= 0 and (out[j].isalnum() or out[j] in "._"))
        elif ch == ")":
            if stack:
                stack.pop()
        elif ch == "^" and any(stack):
            out.append("**")
            continue
        out.append(ch)
    return "".join(out)


_BINOPS = {
    ast.Add: (" + ", 1), ast.Sub: (" - ", 1), ast.Mult: (" * ", 2), ast.Div: ("/", 2),
    ast.Mod: (" %% ", 2), ast.FloorDiv: (" %/% ", 2), ast.Pow: ("^", 4),
}
_CMPOPS = {ast.Eq: " == ", ast.NotEq: " != ", ast.Lt: " < ", ast.LtE: " <= ", ast.Gt: " > ",
           ast.GtE: " >= "}


def _number(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


# R's syntactic names in a UTF-8 locale: letters of any script (``größe``), digits, '.', '_'
_R_SYNTACTIC = re.compile(r"^(?:[^\W\d_]|\.(?!\d))[\w.]*$|^\.$")
_TOKEN = re.compile(r"`[^`]+`|(?:[^\W\d]|\.)[\w.]*")


def r_name(column: str) -> str:
    """A column name as R prints it in formulas and model-matrix names (backticks if needed)."""
    return column if _R_SYNTACTIC.match(column) else f"`{column}`"


def sanitize_expression(expr: str, columns) -> tuple[str, dict]:
    """Replace backticked and non-Python column names by placeholders (placeholder -> name).

    Non-ASCII names are replaced too: Python NFKC-normalises identifiers (``ﬁx`` reads as
    ``fix``), so they would not find their column."""
    names: dict = {}

    def swap(match):
        token = match.group(0)
        name = token[1:-1] if token.startswith("`") else token
        if token.startswith("`") or (name in columns and not (name.isidentifier() and name.isascii())):
            key = f"_mitml_col{len(names)}_"
            names[key] = name
            return key
        return token

    return _TOKEN.sub(swap, expr), names


def _deparse(node, parent: int = 0, names=None) -> str:
    names = names or {}
    if isinstance(node, ast.Name):
        return r_name(names[node.id]) if node.id in names else node.id
    if isinstance(node, ast.Constant):
        return _number(node.value) if not isinstance(node.value, str) else f'"{node.value}"'
    if isinstance(node, ast.Attribute):
        return f"{_deparse(node.value, 5, names=names)}.{node.attr}"
    if isinstance(node, ast.BinOp):
        sym, prec = _BINOPS.get(type(node.op), (" ? ", 1))
        right_prec = prec + (0 if isinstance(node.op, ast.Pow) else 1)
        left_prec = prec + (1 if isinstance(node.op, ast.Pow) else 0)
        text = (_deparse(node.left, left_prec, names=names) + sym
                + _deparse(node.right, right_prec, names=names))
        return f"({text})" if prec < parent else text
    if isinstance(node, ast.UnaryOp):
        sym = {ast.USub: "-", ast.UAdd: "+", ast.Not: "!"}.get(type(node.op), "-")
        text = sym + _deparse(node.operand, 3, names=names)
        return f"({text})" if 3 < parent else text
    if isinstance(node, ast.Compare):
        parts = [_deparse(node.left, 1, names=names)]
        for op, comp in zip(node.ops, node.comparators):
            parts.append(_CMPOPS.get(type(op), " ? ") + _deparse(comp, 1, names=names))
        text = "".join(parts)
        return f"({text})" if parent > 0 else text
    if isinstance(node, ast.Call):
        args = [_deparse(a, names=names) for a in node.args]
        args += [f"{k.arg} = {_deparse(k.value, names=names)}" for k in node.keywords]
        return f"{_deparse(node.func, 5, names=names)}({', '.join(args)})"
    return ast.unparse(node)


def r_expression(expr: str, columns=()) -> str:
    """R's spelling of a Python-syntax factor expression (``I(x ** 2)`` -> ``I(x^2)``)."""
    expr = expr.strip()
    bare = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    if bare in columns or _R_SYNTACTIC.match(bare) or expr.startswith("`"):
        return r_name(bare)
    text, names = sanitize_expression(expr, columns)
    try:
        return _deparse(ast.parse(text, mode="eval").body, names=names)
    except SyntaxError:
        return r_name(expr)


# -- term expansion -----------------------------------------------------------------------------

def rhs_terms(rhs: str, columns=()) -> RhsTerms:
    """Expand a one-sided formula into R's terms (see :class:`RhsTerms`).

    ``columns`` (the data's column names) lets labels spell non-Python names as R does.
    """
    text = rhs.strip()
    if text.startswith("~"):
        text = text[1:].strip()
    if text == "":
        raise MitmlError("The formula's right-hand side is empty: write '1' for an intercept only.")
    try:
        expanded = expand_terms(to_python_rhs(text))
    except MitmlError as exc:
        raise MitmlError(f"Could not parse the formula part {rhs!r}: {str(exc).split(': ', 1)[-1]}") from None
    intercept = expanded.intercept
    raw_terms = list(expanded.terms)
    order = list(expanded.variables)  # R orders an interaction's factors by the formula's variables
    terms = [tuple(sorted(set(t), key=order.index)) for t in raw_terms]
    terms = sorted(dict.fromkeys(terms), key=len)  # stable: degree, then appearance
    columns = {str(c) for c in columns}
    labels = tuple(":".join(r_expression(f, columns) for f in t) for t in terms)
    return RhsTerms(intercept, tuple(terms), labels)


# -- evaluation of one factor ---------------------------------------------------------------------

class _Factor(NamedTuple):
    name: str             # R spelling
    values: np.ndarray    # float (numeric; n x k for a matrix term) or int codes (-1 = missing)
    levels: tuple | None  # None for numeric
    ordered: bool
    suffixes: tuple | None = None  # column-name suffixes of a matrix term (poly)


class _AsFactor:
    """Marker returned by ``factor(x)``/``C(x)`` in formula expressions."""

    def __init__(self, values):
        self.values = values


def _cluster_means(x, cluster):
    frame = pd.DataFrame({"x": np.asarray(x, dtype=float), "c": np.asarray(cluster)})
    return frame.groupby("c", sort=False, dropna=False)["x"].transform("mean").to_numpy()


_FUNCTIONS = {"I": lambda v: v, "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs,
              "mean": np.mean, "np": np, "factor": _AsFactor, "C": _AsFactor,
              "clusterMeans": _cluster_means, "poly": poly, "TRUE": True, "FALSE": False,
              "T": True, "F": False}


class _Namespace(dict):
    """Names in formula expressions: data columns (converted on first use), then functions."""

    def __init__(self, data: pd.DataFrame, aliases=None):
        super().__init__()
        self.data = data
        self.columns = {str(c): c for c in data.columns}
        self.aliases = aliases or {}

    def __missing__(self, key):
        name = self.aliases.get(key, key)
        if name in self.columns:
            series = self.data[self.columns[name]]
            if series.dtype.kind in "iuf":
                value = series.to_numpy(dtype=float, na_value=np.nan)
            else:
                value = series
        elif name in _FUNCTIONS:
            value = _FUNCTIONS[name]
        else:
            raise KeyError(key)
        self[key] = value
        return value


def _level_name(level) -> str:
    if isinstance(level, (bool, np.bool_)):
        return "TRUE" if level else "FALSE"
    if isinstance(level, (float, np.floating)):
        return _number(float(level))
    return str(level)


def _as_factor(values, n: int, name: str) -> _Factor:
    forced = isinstance(values, _AsFactor)
    if forced:
        values = values.values
    if isinstance(values, MatrixTerm) and not forced:
        if values.values.shape[0] != n:
            raise MitmlError(f"Formula term {name!r} has {values.values.shape[0]} values for {n} "
                             "rows.")
        return _Factor(name, values.values, None, False, values.suffixes)
    if np.ndim(values) == 0:
        values = np.full(n, values)
    if isinstance(values, pd.DataFrame) or np.ndim(values) > 1:
        raise MitmlError(f"Formula term {name!r} gives several columns; only single-column "
                         "terms are supported.")
    series = pd.Series(values).reset_index(drop=True)
    if len(series) != n:
        raise MitmlError(f"Formula term {name!r} has {len(series)} values for {n} rows.")
    dtype = series.dtype
    if dtype.kind in "mM" and not forced:
        raise MitmlError(f"Predictor {name!r} has dtype {dtype}: convert dates and durations to "
                         "numbers (e.g. days since a reference date) or use factor() before imputation.")
    if isinstance(dtype, pd.CategoricalDtype):
        cat = series.cat
        return _Factor(name, cat.codes.to_numpy(dtype=np.int64), tuple(cat.categories),
                       bool(dtype.ordered))
    if forced or dtype == bool or dtype.kind in "bOSU" or pd.api.types.is_string_dtype(dtype):
        observed = series.dropna()
        if dtype == bool or (len(observed) and observed.map(type).eq(bool).all()):
            levels = (False, True)
        else:
            try:
                levels = tuple(sorted(observed.unique()))
            except TypeError:
                kinds = sorted({type(v).__name__ for v in observed})
                raise MitmlError(f"Column {name!r} mixes value types {kinds}; convert it to one "
                                 "type (numbers, or a pandas category with explicit levels).") from None
        codes = pd.Categorical(series, categories=list(levels)).codes.astype(np.int64)
        return _Factor(name, codes, levels, False)
    return _Factor(name, series.to_numpy(dtype=float, na_value=np.nan), None, False)


def _evaluate(expr: str, data: pd.DataFrame, n: int, columns: set) -> _Factor:
    name = r_expression(expr, columns)
    bare = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
    if bare in columns:
        return _as_factor(_Namespace(data)[bare], n, name)
    if expr.strip() == ".":
        raise MitmlError("'.' (all other columns) is not supported in these formulas: list the "
                         "predictors by name.")
    text, names = sanitize_expression(expr, columns)
    local = _Namespace(data, names)
    try:
        code = compile(ast.parse(text, mode="eval"), "<formula>", "eval")
        value = eval(code, {"__builtins__": {}}, local)  # noqa: S307 (formula expression)
    except NameError as exc:
        found = re.findall(r"'([^']+)'", str(exc))
        what = names.get(found[0], found[0]) if found else expr
        raise MitmlError(f"Could not find column {what!r} (formula term {name!r}) in 'data'. "
                         "Check the spelling or add the column.") from exc
    except Exception as exc:
        raise MitmlError(f"Could not evaluate formula term {name!r}: {exc}") from exc
    if callable(value) and not isinstance(value, (_AsFactor, MatrixTerm)):
        raise MitmlError(f"Formula term {name!r} gives a function, not one value per row; call "
                         "it on a column (e.g. 'log(x)') or remove the term.")
    try:
        return _as_factor(value, n, name)
    except MitmlError:
        raise
    except (TypeError, ValueError) as exc:
        raise MitmlError(f"Could not use formula term {name!r} as a predictor: {exc}") from exc


# -- coding ---------------------------------------------------------------------------------------

def _contr_poly(k: int) -> np.ndarray:
    x = np.arange(1, k + 1, dtype=float)
    raw = np.vander(x - x.mean(), k, increasing=True)
    q, r = np.linalg.qr(raw)
    z = q * np.diag(r)
    z = z / np.sqrt((z ** 2).sum(axis=0))
    return z[:, 1:]


def _poly_names(k: int) -> list:
    base = [".L", ".Q", ".C"]
    return [base[i] if i < 3 else f"^{i + 1}" for i in range(k - 1)]


def _factor_block(factor: _Factor, full: bool) -> tuple[np.ndarray, list]:
    if factor.levels is None:
        if factor.suffixes is not None:
            return factor.values, [factor.name + s for s in factor.suffixes]
        return factor.values[:, None], [factor.name]
    k = len(factor.levels)
    codes = factor.values
    if full or k < 2:
        contrast, names = np.eye(k), [_level_name(lev) for lev in factor.levels]
    elif factor.ordered:
        contrast, names = _contr_poly(k), _poly_names(k)
    else:
        contrast, names = np.eye(k)[:, 1:], [_level_name(lev) for lev in factor.levels[1:]]
    block = np.full((len(codes), contrast.shape[1]), np.nan)
    ok = codes >= 0
    block[ok] = contrast[codes[ok]]
    return block, [factor.name + lab for lab in names]


def _coding(terms: tuple, factors: dict, intercept: bool) -> list:
    """R's TermCode: per term, per factor variable, True for full dummy coding."""
    coding = []
    for t_index, term in enumerate(terms):
        codes = {}
        for f in term:
            if factors[f].levels is None:
                continue
            rest = set(term) - {f}
            contrast = not rest or any(rest <= set(prev) for prev in terms[:t_index])
            codes[f] = not contrast
        coding.append(codes)
    if not intercept:
        for codes, term in zip(coding, terms):
            factor_vars = [f for f in term if f in codes]
            if factor_vars:
                codes[factor_vars[0]] = True
                break
    return coding


def model_matrix(rhs: str, data: pd.DataFrame) -> pd.DataFrame:
    """R's ``model.matrix(~ rhs, data)`` with rows kept (missing predictors give NaN).

    Args:
        rhs: a one-sided formula's right-hand side, e.g. ``"1 + Sex + ReadAchiev"``,
            ``"0 + x"``, ``"x*z"``, ``"I(x^2)"``; a leading ``~`` is allowed.
        data: the data; never modified.

    Returns:
        A float DataFrame with ``data``'s index and R's column names (``(Intercept)``,
        ``SexGirl``, ``x:z``, ``I(x^2)``).

    Raises:
        MitmlError: unparsable formula, unknown column, or a term that cannot be evaluated.
    """
    columns = {str(c) for c in data.columns}
    expanded = rhs_terms(rhs, columns)
    n = len(data)
    factors = {}
    for term in expanded.terms:
        for f in term:
            if f not in factors:
                factors[f] = _evaluate(f, data, n, columns)
    blocks, names = [], []
    if expanded.intercept:
        blocks.append(np.ones((n, 1)))
        names.append("(Intercept)")
    for term, codes in zip(expanded.terms, _coding(expanded.terms, factors, expanded.intercept)):
        block, block_names = np.ones((n, 1)), [""]
        for f in term:  # first factor varies fastest, as in R
            fb, fnames = _factor_block(factors[f], codes.get(f, False))
            block = (fb[:, :, None] * block[:, None, :]).reshape(n, -1)
            block_names = [f"{b}:{a}" if b else a for a in fnames for b in block_names]
        blocks.append(block)
        names.extend(block_names)
    matrix = np.concatenate(blocks, axis=1) if blocks else np.empty((n, 0))
    return pd.DataFrame(matrix, index=data.index, columns=names)
