"""Completed data sets from an :class:`~mitml_jax.results.imputations.Imputations` object
(mitml's ``mitmlComplete``).

Each completed frame is ``imp.data`` with the imputed values written into the missing cells, built
column by column with NumPy (no per-cell loops). It keeps the original row order, index, column
order and every column that was not in the model. Dtypes are kept: a float column stays float (its
own precision), a categorical column stays categorical with the same categories, an object or
string column receives level values; an integer column (only possible with pandas' nullable
``Int64``-style dtypes when it has missing values) becomes ``float64``, because imputed values of
a continuous target are not integers. ``imp.data`` is never modified.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from ..errors import MitmlError, MitmlTypeError
from ..sampling.arguments import check_flag
from . import frames as _frames

__all__ = ["mitml_complete"]


def mitml_complete(imp, print="all", force_list=False):  # noqa: A002 - mitml's argument name
    """Completed data sets (mitml's ``mitmlComplete``).

    Args:
        imp: an :class:`~mitml_jax.results.imputations.Imputations` (from ``pan_impute`` or
            ``jomo_impute``).
        print: ``"all"`` or ``"list"`` for all ``m`` data sets; an int ``i`` (1..m) for the
            ``i``-th (a whole float such as ``1.0`` counts, as R's numeric ``1``); ``0`` (or any
            value <= 0) for the original data with its missing values; a list of ints for
            several (at most one of them <= 0).
        force_list: with a single int, return a one-element :class:`ImputedList` instead of a
            DataFrame.

    Returns:
        A DataFrame (single int) or an :class:`~mitml_jax.results.implist.ImputedList`.

    Raises:
        MitmlError: "Only one negative or zero value is allowed in 'print'." or
            "Invalid 'print' argument." (as in mitml), or an imputation number above ``m``.
    """
    from .implist import ImputedList
    from .imputations import Imputations

    if not isinstance(imp, Imputations):
        raise MitmlTypeError(
            f"'imp' must be the Imputations result of pan_impute or jomo_impute, got "
            f"{type(imp).__name__}."
        )
    check_flag("force_list", force_list)
    m = int(imp.m)
    single, which = _parse_print(print, m)
    filler = _Filler(imp)
    frames = [filler.frame(i) for i in which]
    if single and not force_list:
        return frames[0]
    return ImputedList(frames)


def _parse_print(print, m):  # noqa: A002
    """-> (single, list of 0-based imputation numbers or -1 for the original data)."""
    if isinstance(print, str):
        if print not in ("all", "list"):
            raise MitmlError(
                "Invalid 'print' argument. Use \"all\" (or \"list\"), an imputation number "
                f"1..{m}, 0 for the original data, or a list of numbers."
            )
        return False, list(range(m))
    if isinstance(print, np.ndarray) and print.ndim == 0:  # np.array(2): a single number
        print = print.item()  # noqa: A001
    single = _is_int(print)
    if single:
        values = [print]
    elif isinstance(print, (list, tuple, np.ndarray, pd.Series, range)):
        values = list(np.asarray(print).ravel()) if isinstance(print, (np.ndarray, pd.Series)) else list(print)
        if not values or not all(_is_int(v) for v in values):
            raise MitmlError(
                "Invalid 'print' argument: a list of imputation numbers must hold integers "
                f"(1..{m}, or one 0 for the original data), got {print!r}."
            )
    else:
        raise MitmlError(
            "Invalid 'print' argument. Use \"all\" (or \"list\"), an imputation number "
            f"1..{m}, 0 for the original data, or a list of numbers; got {print!r}."
        )
    values = [int(v) for v in values]
    if sum(v <= 0 for v in values) > 1:
        raise MitmlError("Only one negative or zero value is allowed in 'print'.")
    too_big = [v for v in values if v > m]
    if too_big:
        raise MitmlError(
            f"Invalid 'print' argument: imputation {too_big[0]} requested, but only m = {m} "
            "imputations are available."
        )
    return single, [v - 1 if v > 0 else -1 for v in values]


def _is_int(value) -> bool:
    """An integer, or a whole float such as R's numeric ``1`` (``1.0``); never a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and float(value).is_integer()


class _Filler:
    """Per-column positions and values of the imputed cells, prepared once for all frames."""

    def __init__(self, imp):
        data = imp.data
        index = np.asarray(imp.index, dtype=np.int64).reshape(-1, 2)
        replacement = np.asarray(imp.replacement)
        if replacement.ndim == 1:
            replacement = replacement.reshape(-1, 1)
        if replacement.shape[0] != index.shape[0]:
            raise MitmlError(
                f"Imputations: 'replacement' has {replacement.shape[0]} rows but 'index' has "
                f"{index.shape[0]}; they must describe the same cells."
            )
        if index.size and (
            index[:, 0].min() < 0
            or index[:, 0].max() >= data.shape[0]
            or index[:, 1].min() < 0
            or index[:, 1].max() >= data.shape[1]
        ):
            raise MitmlError("Imputations: 'index' points outside 'data' (rows or columns).")
        categories = getattr(imp.spec, "categories", None) or {}
        self.data = data
        self.columns = []  # (column position, row positions, (n_cells, m) values)
        for col in np.unique(index[:, 1]):
            sel = index[:, 1] == col
            name = data.columns[col]
            values = replacement[sel]
            if name in categories:
                values = _codes_to_column_codes(values, categories[name], data.iloc[:, col], name)
            base, wrap = _prepare(data.iloc[:, col], values)
            self.columns.append((int(col), index[sel, 0], values, base, wrap))

    def frame(self, i: int) -> pd.DataFrame:
        """Completed frame for imputation ``i`` (0-based); ``-1`` gives a copy of the data."""
        if i < 0:
            return self.data.copy()
        # under Copy-on-Write a shallow copy (untouched columns share memory with imp.data, and
        # pandas copies them if the user later changes a completed frame); a deep copy on pandas
        # 2 without it, where changing a shared column in place would change imp.data too
        out = _frames.detached_copy(self.data)
        for col, rows, values, base, wrap in self.columns:
            filled = base.copy()
            filled[rows] = values[:, i]
            out.isetitem(col, wrap(filled))
        return out


def _codes_to_column_codes(codes, levels, column: pd.Series, name):
    """Map codes into ``levels`` to codes into the column's own categories (or to level values)."""
    codes = np.asarray(codes)
    if not np.all(np.isfinite(codes.astype(float))) or np.any(codes != np.round(codes)):
        raise MitmlError(f"Imputations: categorical column {name!r} has non-integer codes.")
    codes = codes.astype(np.int64)
    levels = list(levels)
    if codes.size and (codes.min() < 0 or codes.max() >= len(levels)):
        raise MitmlError(
            f"Imputations: codes of categorical column {name!r} fall outside its {len(levels)} levels."
        )
    if isinstance(column.dtype, pd.CategoricalDtype):
        cats = column.dtype.categories
        position = cats.get_indexer(pd.Index(levels, dtype=cats.dtype if len(levels) else None))
        if np.any(position < 0):
            missing = [lev for lev, p in zip(levels, position) if p < 0]
            raise MitmlError(
                f"Imputations: levels {missing} of {name!r} are not categories of the data column."
            )
        return position[codes]
    return np.asarray(levels, dtype=object)[codes]


def _prepare(column: pd.Series, values: np.ndarray):
    """-> (base array to write imputed values into, function turning it into the new column).

    Dtypes are kept: categorical (codes), object/string (level values), NumPy floats; nullable
    float dtypes stay nullable; other dtypes that can hold missing values become float64.
    """
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(copy=True), lambda codes: pd.Categorical.from_codes(
            codes, dtype=dtype
        )
    if values.dtype == object:  # level values for an object / string column
        index, name = column.index, column.name
        # a Series with explicit dtype: pandas would infer "str" from a bare object array
        return column.to_numpy(dtype=object, copy=True), lambda arr: pd.Series(
            arr, index=index, dtype=dtype, name=name
        )
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return column.to_numpy(copy=True), _identity
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        raise MitmlError(
            f"Imputations: column {column.name!r} is {dtype} (it cannot hold missing values) "
            "but has imputed cells."
        )
    base = column.to_numpy(dtype=float, na_value=np.nan, copy=True)
    if pd.api.types.is_float_dtype(dtype):  # nullable Float64/Float32
        return base, lambda arr: pd.array(arr, dtype=dtype)
    return base, _identity  # nullable integers: imputed values are not integers


def _identity(arr):
    return arr
