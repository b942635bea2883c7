"""Parquet files of imputed data sets: :func:`write_implist` and :func:`read_implist`.

Parquet layout (``write_implist`` / ``read_implist``): one file, the data sets stacked with an
integer column ``.imp`` = 1..m in front, each data set's index stored as pandas index columns, and
a small JSON entry ``mitml_jax.implist`` in the file's key-value metadata (format version, m,
and each data set's ``RangeIndex`` when it had one, the categories of categorical columns and the
units of datetime columns). Dtypes come back as they went in: float and integer widths,
categorical columns with their categories and order (number and date categories too, which
parquet alone turns into plain columns), datetimes with their unit, strings, nullable dtypes.
Object columns of strings come back as pandas' string dtype, and columns parquet cannot store
(complex, sparse, nested Arrow types) are refused with a MitmlError.
Any reader of parquet sees an ordinary long table (``.imp`` plus the columns).

``read_implist`` also reads plain long files without that metadata (for instance the CLI's
``mitml-jax impute --out x.parquet``, or a CSV-turned-parquet): rows are split by ``.imp``
(0 = original data is left out), and an ``.id`` column, if present, becomes the index.
"""

from __future__ import annotations

import base64
import json
import os

import numpy as np
import pandas as pd

from ..errors import MitmlError, MitmlTypeError
from .io import check_frames

__all__ = ["write_implist", "read_implist"]

_META_KEY = b"mitml_jax.implist"
_IMP = ".imp"


def _pyarrow(caller: str):
    """(pyarrow, pyarrow.parquet), or a MitmlError that says how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MitmlError(f"{caller}: parquet files need pyarrow, which is not installed: pip "
                         "install 'mitml-jax[parquet]' (or a CSV file: implist.to_long().to_csv(path))."
                         ) from None
    return pa, pq


def write_implist(frames, path) -> None:
    """Write imputed data sets to one parquet file (layout in the module docstring)."""
    pa, pq = _pyarrow("write")

    frames = check_frames(frames, "write")
    if not isinstance(path, (str, os.PathLike)):
        raise MitmlTypeError(f"write: 'path' must be a file name (str or path), not "
                             f"{type(path).__name__}.")
    if _IMP in frames[0].columns:
        raise MitmlError(
            f"write: the data sets have a column {_IMP!r}, which the file format uses; rename it."
        )
    odd = [c for c in frames[0].columns if not isinstance(c, str)]
    if odd:
        raise MitmlError(
            f"write: column names {odd[:5]} are not strings; parquet stores names as text, so "
            "rename them (e.g. frames.within(lambda d: d.rename(columns=str))) before writing."
        )
    nested = [c for c in frames[0].columns if isinstance(frames[0][c].dtype, pd.ArrowDtype)
              and (pa.types.is_nested(frames[0][c].dtype.pyarrow_dtype)
                   or pa.types.is_dictionary(frames[0][c].dtype.pyarrow_dtype))]
    if nested:
        raise MitmlError(
            f"write: columns {nested} have nested or dictionary Arrow types, which pandas cannot "
            "read back from parquet; convert them (dictionary: .astype('category'))."
        )
    ranges = []
    blocks = []
    for i, frame in enumerate(frames):
        index = frame.index
        if isinstance(index, pd.RangeIndex):
            ranges.append([index.start, index.stop, index.step, index.name])
        else:
            ranges.append(None)
        block = frame.copy(deep=False)
        block.insert(0, _IMP, np.full(len(frame), i + 1, dtype=np.int64))
        blocks.append(block)
    long = pd.concat(blocks, axis=0)
    if all(r is not None for r in ranges):
        long = long.reset_index(drop=True)  # ranges restore the index
    try:
        table = pa.Table.from_pandas(long, preserve_index=not all(r is not None for r in ranges))
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise MitmlError(
            f"write: a column cannot be stored in parquet ({err}); convert mixed-type object, "
            "complex or sparse columns to strings or plain numbers first."
        ) from None
    meta = {"format": 1, "m": len(frames), "imp_column": _IMP, "range_index": ranges,
            "categories": _categories_meta(frames), "dtypes": _datetime_meta(frames)}
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()}
    )
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MitmlError(f"write: the folder {folder!r} of {path!r} does not exist; create it first.")
    if os.path.isdir(path):
        raise MitmlError(f"write: 'path' {path!r} is a folder; give a file name such as "
                         "'imputed.parquet'.")
    try:
        pq.write_table(table, path)
    except OSError as err:
        raise MitmlError(f"write: cannot write {path!r} ({err}).") from None


def read_implist(path):
    """Read imputed data sets written by ``ImputedList.write`` (:func:`write_implist`), or a
    plain long parquet file with an ``.imp`` column (``.imp = 0``, the original data, is left
    out; an ``.id`` column becomes the index), such as ``mitml-jax impute --out x.parquet``.

    Args:
        path: the parquet file.

    Returns:
        An :class:`~mitml_jax.results.implist.ImputedList`.
    """
    pa, pq = _pyarrow("read_implist")

    from .implist import ImputedList
    from .long_format import from_long, from_mice_long

    path = os.fspath(path)
    if not os.path.exists(path):
        raise MitmlError(f"read_implist: file {path!r} does not exist.")
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:  # pyarrow.ArrowInvalid is a ValueError
        raise MitmlError(f"read_implist: {path!r} is not a readable parquet file ({err}).") from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    try:
        long = table.to_pandas()
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise MitmlError(
            f"read_implist: the columns of {path!r} cannot be converted to pandas ({err})."
        ) from None
    if raw is None:
        if _IMP not in long.columns:
            raise MitmlError(
                f"read_implist: {path!r} has no {_IMP!r} column; it is not a long file of "
                "imputed data sets."
            )
        if ".id" in long.columns:
            return ImputedList(from_mice_long(long.reset_index(drop=True)))
        return ImputedList(from_long(long.reset_index(drop=True), exclude=0))
    meta = json.loads(raw.decode())
    split = long[meta["imp_column"]].to_numpy()
    rest = _restore_dtypes(long.drop(columns=meta["imp_column"]), meta)
    frames = []
    for i, ranged in enumerate(meta["range_index"]):
        frame = rest.iloc[np.flatnonzero(split == i + 1)]
        if ranged is not None:
            start, stop, step, name = ranged
            frame = frame.set_axis(pd.RangeIndex(start, stop, step, name=name), axis=0)
        frames.append(frame)
    return ImputedList(frames)


def _categories_meta(frames):
    """Column -> (categories as a base64 Arrow IPC stream, ordered) for the columns that are
    categorical with the same categories in every data set.

    Parquet keeps a categorical's categories only when they are strings (integer or date
    categories came back as plain columns); these entries restore them, unused ones included.
    Categories that differ between data sets are stacked as plain values and stay so.
    """
    import pyarrow as pa

    out = {}
    for col in frames[0].columns:
        dtype = frames[0][col].dtype
        if isinstance(dtype, pd.CategoricalDtype) and all(
                f[col].dtype == dtype for f in frames[1:]):
            table = pa.Table.from_pandas(pd.DataFrame({"c": dtype.categories}),
                                         preserve_index=False)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            out[col] = [base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii"),
                        bool(dtype.ordered)]
    return out


def _datetime_meta(frames):
    """Column -> dtype name for datetime/timedelta columns (parquet has no seconds unit)."""
    first = frames[0]
    return {col: str(first[col].dtype) for col in first.columns
            if first[col].dtype.kind in "mM"
            and all(str(f[col].dtype) == str(first[col].dtype) for f in frames[1:])}


def _restore_dtypes(rest, meta):
    """Categorical and datetime dtypes from the file's metadata, where parquet changed them."""
    import pyarrow as pa

    for col, (blob, ordered) in meta.get("categories", {}).items():
        categories = pa.ipc.open_stream(base64.b64decode(blob)).read_all().to_pandas()["c"]
        dtype = pd.CategoricalDtype(pd.Index(categories).rename(None), ordered=ordered)
        if rest[col].dtype != dtype:
            restored = rest[col].astype(dtype)
            if not (restored.isna() & rest[col].notna()).any():  # never lose a value
                rest[col] = restored
    for col, name in meta.get("dtypes", {}).items():
        if str(rest[col].dtype) != name:
            rest[col] = rest[col].astype(name)
    return rest
