"""``ImputedList``: the m completed data sets (mitml's ``mitml.list``).

A ``list`` of pandas DataFrames with the operations mitml offers on its lists::

    implist = imp.complete("all")                      # mitmlComplete(imp, "all")
    implist = implist.within(lambda d: {               # within(implist, {...})
        "G.SES": cluster_means(d.SES, d.ID),
        "I.SES": d.SES - cluster_means(d.SES, d.ID),
    })
    fits = implist.analyse(                            # with(implist, lmer(...))
        lambda d: smf.mixedlm("MathAchiev ~ Sex + I.SES + G.SES", d, groups=d.ID).fit()
    )
    implist.to_long()                                  # .imp = 1..m, .id = row label
    ImputedList.from_long(long, imp=".imp")            # long2mitml.list
    implist.write("imputed.parquet"); read_implist("imputed.parquet")

Every operation returns a new ``ImputedList`` (also ``rbind``/``cbind``, where mitml loses the
class: its bug B10) and never modifies the data sets it was given.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import MitmlError, MitmlTypeError
from . import frames as _frames
from . import io as _io
from . import parquet as _parquet
from . import long_format as _long

__all__ = ["ImputedList"]


class ImputedList(list):
    """Imputed data sets, one DataFrame per imputation (R's ``mitml.list``).

    Args:
        frames: the data sets (pandas DataFrames).
    """

    def __init__(self, frames=()):
        frames = list(frames)
        for i, frame in enumerate(frames):
            if not isinstance(frame, pd.DataFrame):
                raise MitmlTypeError(
                    f"ImputedList: entry {i} is a {type(frame).__name__}, not a pandas DataFrame; "
                    "convert it with pd.DataFrame(...) first."
                )
        super().__init__(frames)

    # -- list behaviour that keeps the class ------------------------------------------------
    def __getitem__(self, item):
        out = super().__getitem__(item)
        return ImputedList(out) if isinstance(item, slice) else out

    def __add__(self, other):
        """Concatenate imputation lists (mitml's ``c.mitml.list``)."""
        return ImputedList(list(self) + _as_frame_list(other, "+"))

    def __radd__(self, other):
        return ImputedList(_as_frame_list(other, "+") + list(self))

    def concat(self, *others):
        """This list followed by the data sets of ``others`` (mitml's ``c.mitml.list``)."""
        out = list(self)
        for other in others:
            out.extend(_as_frame_list(other, "concat"))
        return ImputedList(out)

    def copy(self):
        return ImputedList(f.copy() for f in self)

    def __repr__(self) -> str:
        if not self:
            return "ImputedList of 0 data sets"
        rows, cols = self[0].shape
        return f"ImputedList of {len(self)} data sets ({rows} rows x {cols} columns each)"

    # -- analysis ---------------------------------------------------------------------------
    def analyse(self, fn, include_data=False):
        """Call ``fn(df)`` on each data set (R's ``with.mitml.list``).

        Args:
            fn: function of one DataFrame returning a fitted model (or anything).
            include_data: keep the data sets in the result (``AnalysisList.data``), for the
                likelihood-based tests that refit or stack models.

        Returns:
            :class:`~mitml_jax.analysis.analysis_list.AnalysisList` of the results.
        """
        from ..analysis.analysis_list import AnalysisList

        _check_callable(fn, "analyse")
        fits = []
        for i, frame in enumerate(self):
            try:
                fits.append(fn(_frames.detached_copy(frame)))
            except Exception as err:  # say where: the data sets differ only in imputed values
                err.add_note(f"(raised by the analysis of imputed data set {i + 1} of {len(self)})")
                raise
        name = getattr(fn, "__name__", None)
        call = None if name in (None, "<lambda>") else name
        return AnalysisList(fits, data=list(self) if include_data else None, call=call)

    analyze = analyse

    def lmer(self, formula, reml=True, **kwargs):
        """Fit an lme4-style mixed model to every data set at once (:func:`mitml_jax.lmer`).

        The batched fit runs in NumPy for small batches (such as 100 random-intercept fits)
        and as a compiled XLA program for larger ones. ``reml`` (default True) chooses REML or
        ML; keyword arguments (``maxiter``) go to :func:`mitml_jax.lmer`. Returns an
        :class:`~mitml_jax.AnalysisList`.
        """
        from ..analysis.lmer import lmer

        if "REML" in kwargs:
            raise MitmlTypeError(
                "lmer: the argument is spelled 'reml' here (lme4's REML), e.g. reml=False for ML.")
        return lmer(formula, self, reml=reml, **kwargs)

    def within(self, fn, ignore=None):
        """Transform each data set (R's ``within.mitml.list``).

        Args:
            fn: function of one DataFrame (a copy; changing it is safe) returning either a
                DataFrame (the new data set), a dict of columns to add or overwrite (a value of
                None deletes that column; new columns are appended in dict order, whereas R
                appends in reverse order of creation), or None (the changed copy is kept).
                A Series value is matched to the rows by index label when it has the data
                set's labels (in any order, as pandas assigns), otherwise by position.
            ignore: column names to leave out of the result.

        Returns:
            A new :class:`ImputedList`.
        """
        _check_callable(fn, "within")
        ignore = [] if ignore is None else ([ignore] if isinstance(ignore, str) else list(ignore))
        out = []
        for frame in self:
            work = _frames.detached_copy(frame)
            result = fn(work)
            if result is None:
                result = work
            elif isinstance(result, Mapping):
                result = _apply_columns(work, result)
            elif not isinstance(result, pd.DataFrame):
                raise MitmlTypeError(
                    "within: 'fn' must return a DataFrame, a dict of columns, or None; got "
                    f"{type(result).__name__}."
                )
            out.append(result.drop(columns=[c for c in ignore if c in result.columns]))
        return ImputedList(out)

    # -- reshaping ----------------------------------------------------------------------------
    def subset(self, rows=None, columns=None):
        """Rows and/or columns of every data set (R's ``subset.mitml.list``).

        Args:
            rows: a function of a DataFrame returning a boolean mask (evaluated per data set),
                or one boolean mask for all; missing values count as False.
            columns: list of column names to keep, in that order.
        """
        out = []
        for frame in self:
            if rows is not None:
                mask = rows(frame) if callable(rows) else rows
                frame = frame.loc[_boolean_mask(mask, len(frame))]
            if columns is not None:
                if isinstance(columns, str):
                    cols = [columns]
                elif isinstance(columns, (list, tuple, pd.Index, np.ndarray)):
                    cols = list(columns)
                else:
                    raise MitmlTypeError(
                        "subset: 'columns' must be a column name or a list of names; got "
                        f"{type(columns).__name__}."
                    )
                missing = [c for c in cols if c not in frame.columns]
                if missing:
                    raise MitmlError(f"subset: columns {missing} are not in the data.")
                frame = frame[cols]
            out.append(frame)
        return ImputedList(out)

    def sort(self, by, ascending=True):
        """Sort the rows of every data set (R's ``sort.mitml.list``); stable, index kept.

        Missing keys go last (also descending) and categorical keys follow their category
        order, as in R. Strings sort by code point (``"B" < "a"``); R's ``order`` uses the
        locale's collation for character keys (``"a" < "A" < "b"`` in most locales).

        Args:
            by: a column name, a list of names, or a function of a DataFrame returning one key
                (array/Series) or a list of keys.
            ascending: bool, or a list of bools (one per key).
        """
        out = []
        for frame in self:
            keys = by(frame) if callable(by) else by
            if isinstance(keys, (str, np.ndarray, pd.Series)):
                keys = [keys]
            elif isinstance(keys, (list, tuple, pd.Index)):
                keys = list(keys)
            else:
                raise MitmlTypeError(
                    "sort: 'by' must be a column name, a list of names, or a function returning "
                    f"sort keys; got {type(keys).__name__}."
                )
            if not keys:
                raise MitmlError("sort: 'by' names no sort key.")
            if not isinstance(ascending, bool) and np.ndim(ascending) == 1 \
                    and len(ascending) != len(keys):
                raise MitmlError(
                    f"sort: 'ascending' has {len(ascending)} entries for {len(keys)} sort keys; "
                    "give one bool per key, or one bool for all."
                )
            columns = {}
            for k, key in enumerate(keys):
                if isinstance(key, str):
                    if key not in frame.columns:
                        raise MitmlError(f"sort: column {key!r} is not in the data.")
                    key = frame[key]
                if isinstance(key, pd.Series):  # keeps category order for categorical keys
                    key = key.reset_index(drop=True)
                else:
                    key = pd.Series(np.asarray(key))
                if key.shape != (len(frame),):
                    raise MitmlError(f"sort: key {k + 1} must have one value per row.")
                columns[k] = key
            order = (
                pd.DataFrame(columns)
                .sort_values(list(columns), ascending=ascending, kind="stable")
                .index.to_numpy()
            )
            out.append(frame.iloc[order])
        return ImputedList(out)

    def rbind(self, other, ignore_index=False):
        """Append rows to every data set: ``other`` is a list of data sets (one per imputation)
        or one DataFrame for all. Returns an ``ImputedList`` (mitml returns a plain list, B10)."""
        others = _per_imputation(other, len(self), "rbind")
        for i, (a, b) in enumerate(zip(self, others), start=1):
            if set(a.columns) != set(b.columns):  # R: "names do not match previous names"
                raise MitmlError(
                    f"rbind: the rows added to data set {i} have columns {list(b.columns)}, the "
                    f"data set has {list(a.columns)}; they must have the same names (any order)."
                )
        return ImputedList(
            pd.concat([a, b], axis=0, ignore_index=ignore_index) for a, b in zip(self, others)
        )

    def cbind(self, other):
        """Add columns to every data set (R's ``cbind.mitml.list``, class kept; B10).

        Args:
            other: a list of DataFrames (one per imputation, matched by row position), one
                DataFrame for all, or a dict ``name -> value`` where a list/tuple value holds
                one column per imputation and any other value (array, Series, scalar) is used
                for every imputation; a Series is matched by index label when it has the data
                set's labels (in any order), otherwise by position.
        """
        if isinstance(other, Mapping):
            out = []
            for i, frame in enumerate(self):
                columns = {}
                for name, value in other.items():
                    if isinstance(value, (list, tuple)):
                        if len(value) != len(self):
                            raise MitmlError(
                                f"cbind: column {name!r} is a list of {len(value)} entries; it "
                                f"needs one per imputation ({len(self)})."
                            )
                        value = value[i]
                    columns[name] = value
                _check_new_columns(frame, columns, "cbind")
                out.append(_apply_columns(frame, columns))
            return ImputedList(out)
        others = _per_imputation(other, len(self), "cbind")
        out = []
        for frame, add in zip(self, others):
            if len(add) != len(frame):
                raise MitmlError(
                    f"cbind: data sets have {len(frame)} rows but the added columns {len(add)}."
                )
            _check_new_columns(frame, add.columns, "cbind")
            out.append(pd.concat([frame, add.set_axis(frame.index, axis=0)], axis=1))
        return ImputedList(out)

    # -- long format --------------------------------------------------------------------------
    def to_long(self, include_original=False, original=None, with_id=True, fill=False):
        """Stack into one DataFrame with ``.imp`` (1..m; 0 = ``original``) and ``.id`` columns.

        See :func:`mitml_jax.results.long_format.to_long`.
        """
        return _long.to_long(self, include_original, original, with_id=with_id, fill=fill)

    def to_mice_long(self, original, fill=False):
        """mice-style long data: ``.imp`` 0 (``original``) .. m and ``.id`` (R's
        ``mitml.list2mids`` input); new columns need ``fill=True``."""
        return _long.to_long(self, True, original, with_id=True, fill=fill)

    @classmethod
    def from_long(cls, df, imp=".imp", exclude=None):
        """Split long data by column ``imp`` (R's ``long2mitml.list``), sorted by its values."""
        return cls(_long.from_long(df, imp=imp, exclude=exclude))

    @classmethod
    def from_jomo(cls, df):
        """Split jomo output (column ``Imputation``, 0 = original data left out)."""
        return cls(_long.from_long(df, imp="Imputation", exclude=0))

    @classmethod
    def from_mice_long(cls, df, imp=".imp", id=".id"):  # noqa: A002
        """Split mice-style long data (``.imp`` 0..m, ``.id`` -> index); ``.imp = 0`` dropped."""
        return cls(_long.from_mice_long(df, imp=imp, id=id))

    # -- files --------------------------------------------------------------------------------
    def write(self, path):
        """Write to one parquet file; see :mod:`mitml_jax.results.parquet` for the layout."""
        _parquet.write_implist(self, path)

    @classmethod
    def read(cls, path):
        """Read a file written by :meth:`write` (same as :func:`read_implist`)."""
        return _parquet.read_implist(path)

    def write_mplus(self, folder, name="imp", na_value=-999, sep="\t", dec=".", suffix="list"):
        """Write Mplus ``TYPE = IMPUTATION`` files (R's ``write.mitmlMplus``); returns the paths.

        See :func:`mitml_jax.results.io.write_mplus` for the files and the arguments.
        """
        return _io.write_mplus(self, folder, name=name, na_value=na_value, sep=sep, dec=dec,
                               suffix=suffix)

    def write_spss(self, folder, name="imp", sep="\t", dec=".", na_value=-999, syntax=True,
                   locale=None, original=None):
        """Write an SPSS data file and syntax (R's ``write.mitmlSPSS``); returns the paths.

        The imputations are numbered ``Imputation_`` = 1..m and ``original`` (the incomplete
        data), if given, is written as 0 (R numbers the imputations from 0: its bug B12). See
        :func:`mitml_jax.results.io.write_spss`.
        """
        return _io.write_spss(self, folder, name=name, sep=sep, dec=dec, na_value=na_value,
                              syntax=syntax, locale=locale, original=original)


def _check_callable(fn, what):
    if not callable(fn):
        raise MitmlTypeError(f"{what}: 'fn' must be a function of one DataFrame.")


def _as_frame_list(other, what):
    if isinstance(other, pd.DataFrame) or not isinstance(other, (list, tuple)):
        raise MitmlTypeError(
            f"{what}: can only combine with a list of DataFrames (an ImputedList), "
            f"not {type(other).__name__}."
        )
    return list(ImputedList(other))


def _per_imputation(other, m, what):
    if isinstance(other, pd.DataFrame):
        return [other] * m
    others = _as_frame_list(other, what)
    if len(others) != m:
        raise MitmlError(f"{what}: {len(others)} data sets given for {m} imputations.")
    return others


def _boolean_mask(mask, n):
    """A NumPy bool mask of length n; missing values count as False (as in R's subset)."""
    values = mask.to_numpy() if isinstance(mask, pd.Series) else np.asarray(mask)
    if values.dtype == object:
        try:
            values = pd.array(values, dtype="boolean")
        except (TypeError, ValueError):
            raise MitmlError("subset: 'rows' must be logical (a boolean mask).") from None
        values = values.fillna(False).to_numpy(dtype=bool)
    if values.dtype != bool:
        raise MitmlError("subset: 'rows' must be logical (a boolean mask).")
    if values.shape != (n,):
        raise MitmlError(
            f"subset: the mask has shape {values.shape}; it needs one value per row ({n})."
        )
    return values


def _check_new_columns(frame, names, what):
    clash = [c for c in names if c in frame.columns]
    if clash:
        raise MitmlError(
            f"{what}: columns {clash} already exist; use within() to overwrite columns."
        )


def _apply_columns(frame, columns):
    out = frame.copy(deep=False)
    for name, value in columns.items():
        if value is None:
            if name in out.columns:
                out = out.drop(columns=name)
            continue
        if isinstance(value, pd.Series) and not value.index.equals(out.index):
            if len(value) != len(out):
                raise MitmlError(f"column {name!r} has {len(value)} values for {len(out)} rows.")
            if _long.same_labels(value.index, out.index):
                value = value.reindex(out.index)  # same labels in another order: by label
            value = value.to_numpy()
        elif isinstance(value, (np.ndarray, list)):
            if np.ndim(value) > 1:
                raise MitmlError(
                    f"column {name!r} has shape {np.shape(value)}; a column needs one value per "
                    "row (a 1-d array, list or Series)."
                )
            if np.ndim(value) == 1 and len(value) != len(out):
                raise MitmlError(f"column {name!r} has {len(value)} values for {len(out)} rows.")
        out[name] = value
    return out
