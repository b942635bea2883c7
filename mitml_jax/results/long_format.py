"""Long format: imputed data sets stacked in one DataFrame, and back.

Conventions (mice's ``complete(action="long")`` and mitml's ``long2mitml.list``):

* ``.imp`` numbers the imputations 1..m; ``.imp = 0`` marks the original (incomplete) data when it
  is included (mice's ``as.mids`` layout).
* ``.id`` holds each row's index label in its data set (mice keeps row names there). With the
  default ``RangeIndex`` that is the 0-based row number. Reading mice-style data back
  (:func:`from_mice_long`) makes ``.id`` the index again, so the round trip keeps the index.
* Splitting (:func:`from_long`) sorts by the split values, drops the split column and gives each
  data set a fresh ``RangeIndex`` (as ``long2mitml.list``, which keeps all other columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MitmlError, MitmlTypeError

__all__ = ["to_long", "from_long", "from_mice_long", "same_labels"]


def to_long(frames, include_original=False, original=None, with_id=True, fill=False):
    """Stack data sets into one long DataFrame with ``.imp`` (and ``.id``) in front.

    Args:
        frames: the imputed data sets (a list of DataFrames).
        include_original: add the original data as ``.imp = 0`` (mice style); needs ``original``.
        original: the original incomplete DataFrame (implies ``include_original=True``); its rows
            are matched to the data sets' by index label (the same labels in any order).
        with_id: add the ``.id`` column (each row's index label).
        fill: columns of the imputed data missing from ``original`` (e.g. made by ``within``)
            are added to it as missing values; without ``fill`` that is an error
            (mitml's ``mitml.list2mids(fill=FALSE)``).

    Returns:
        DataFrame with columns ``.imp``, ``.id``, then the data columns; a fresh ``RangeIndex``.
    """
    frames = list(frames)
    if not frames:
        raise MitmlError("to_long: there are no data sets to stack.")
    for name in (".imp", ".id"):
        if name in frames[0].columns:
            raise MitmlError(
                f"to_long: the data sets already have a column {name!r}; rename or drop it first."
            )
    if original is not None:
        include_original = True
    parts = []
    if include_original:
        if original is None:
            raise MitmlError(
                "to_long: include_original=True needs the original data: pass original=<DataFrame>."
            )
        parts.append((0, _align_original(original, frames[0], fill)))
    parts.extend((i + 1, frame) for i, frame in enumerate(frames))
    pieces = []
    for number, frame in parts:
        block = frame.reset_index(drop=True)  # positional: duplicate labels are fine
        if with_id:
            block.insert(0, ".id", frame.index.to_numpy())
        block.insert(0, ".imp", np.full(len(frame), number, dtype=np.int64))
        pieces.append(block)
    return pd.concat(pieces, ignore_index=True)


def same_labels(index: pd.Index, other: pd.Index) -> bool:
    """Whether two indexes hold the same unique labels, in any order: rows that can be matched
    by label (as pandas aligns) rather than by position."""
    return (len(index) == len(other) and index.is_unique and other.is_unique
            and index.sort_values().equals(other.sort_values()))


def _align_original(original, template, fill):
    if not isinstance(original, pd.DataFrame):
        raise MitmlTypeError("to_long: 'original' must be a pandas DataFrame.")
    extra = [c for c in template.columns if c not in original.columns]
    if extra and not fill:
        raise MitmlError(
            f"to_long: columns {extra} of the imputed data are not in 'original'; pass fill=True "
            "to add them to the original data as missing values."
        )
    if len(original) != len(template):
        raise MitmlError(
            f"to_long: 'original' has {len(original)} rows but the imputed data sets have "
            f"{len(template)}."
        )
    if not original.index.equals(template.index):
        if same_labels(original.index, template.index):
            original = original.loc[template.index]  # the same rows in another order
        else:
            raise MitmlError(
                "to_long: the index of 'original' differs from the imputed data sets' index, so "
                "its rows cannot be matched to theirs; pass the data given to the imputation "
                "(or original.set_axis(implist[0].index) if its rows are in the same order)."
            )
    out = original.copy()
    for name in extra:
        dtype = template[name].dtype
        column = pd.Series(np.nan, index=out.index)
        if not (isinstance(dtype, np.dtype) and dtype.kind in "iub"):
            column = column.astype(dtype)  # float, categorical, nullable and string dtypes
        out[name] = column
    return out[list(template.columns)]


def from_long(df, imp=".imp", exclude=None):
    """Split a long DataFrame into data sets (mitml's ``long2mitml.list``).

    Args:
        df: the long DataFrame.
        imp: name of the column that numbers the data sets (R's ``split``).
        exclude: value(s) of that column to leave out (e.g. 0 for the original data).

    Returns:
        A list of DataFrames ordered by the sorted values of ``imp`` (a categorical ``imp`` in the
        order of its categories, as R's ``split`` orders factor levels; unused categories give no
        data set), without the ``imp`` column, each with a fresh ``RangeIndex``.
    """
    if not isinstance(df, pd.DataFrame):
        raise MitmlTypeError("from_long: 'df' must be a pandas DataFrame.")
    if imp not in df.columns:
        raise MitmlError(
            f"from_long: the split column {imp!r} is not in the data; name it with imp=<column>."
        )
    split = df[imp]
    if split.isna().any():
        raise MitmlError(f"from_long: the split column {imp!r} has missing values.")
    keys = _split_keys(split, exclude)
    if not keys:
        if not len(split):
            raise MitmlError("from_long: 'df' has no rows to split into data sets.")
        raise MitmlError(
            f"from_long: exclude={exclude!r} leaves no data set (the values of {imp!r} are "
            f"{sorted(pd.unique(split).tolist(), key=str)[:10]})."
        )
    rest = df.drop(columns=imp)
    codes = pd.Index(keys).get_indexer(split)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.searchsorted(sorted_codes, np.arange(len(keys) + 1))
    frames = []
    for k in range(len(keys)):
        rows = order[bounds[k] : bounds[k + 1]]
        frames.append(rest.iloc[rows].reset_index(drop=True))
    return frames


def _split_keys(split: pd.Series, exclude=None) -> list:
    """The data sets' values of the split column, in R's ``split`` order."""
    keys = pd.unique(split)
    if exclude is not None:
        excluded = np.atleast_1d(np.asarray(exclude, dtype=object)).tolist()
        keys = [k for k in keys if k not in excluded]
    if isinstance(split.dtype, pd.CategoricalDtype):  # R's split(): in the order of the levels
        present = set(keys)
        return [level for level in split.dtype.categories if level in present]
    return sorted(keys)


def from_mice_long(df, imp=".imp", id=".id", keep_original=False):  # noqa: A002
    """Split mice-style long data (``.imp`` 0..m, ``.id``) into data sets.

    Args:
        df: long DataFrame as written by ``to_long`` or by mice's ``complete(action="long",
            include=TRUE)``.
        imp, id: names of the imputation and row-id columns; the row-id column becomes the index
            of each data set (a ``RangeIndex`` when it is 0..n-1); ``id=None`` keeps a fresh index.
        keep_original: also return the ``.imp = 0`` data set (or None when absent).

    Returns:
        The list of imputed data sets (``.imp`` >= 1), or ``(frames, original)`` with
        ``keep_original=True``.
    """
    if id is not None and id not in df.columns:
        raise MitmlError(f"from_mice_long: the id column {id!r} is not in the data; pass id=None.")
    all_frames = from_long(df, imp=imp)
    keys = _split_keys(df[imp])
    frames, original = [], None
    for key, frame in zip(keys, all_frames):
        if id is not None:
            frame = frame.set_index(id)
            frame.index.name = None
            if pd.api.types.is_integer_dtype(frame.index.dtype) and np.array_equal(
                frame.index.to_numpy(), np.arange(len(frame))
            ):
                frame.index = pd.RangeIndex(len(frame))
        if key == 0:
            original = frame
        else:
            frames.append(frame)
    return (frames, original) if keep_original else frames
