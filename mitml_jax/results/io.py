"""Files for the statistics packages: Mplus and SPSS (write); parquet lists are in
:mod:`mitml_jax.results.parquet`.

Mplus (``write_mplus``, mitml's ``write.mitmlMplus``): ``<name>1.dat`` .. ``<name>m.dat``
(tab separated, no header, missing values as ``-999``, categorical and string columns as integer
codes 1..K in level order, booleans as 0/1, object columns holding only numbers as numbers), the
list file ``<name><suffix>.dat`` naming the data
files (what ``DATA: TYPE = IMPUTATION`` reads), ``<name>.log`` with the variable names and the
code tables, and ``<name>.inp``, an input file template. Checked field by field against mitml
0.4-4 (tests/test_r_crosscheck_implist.py); where it differs, on purpose: numbers are written
with full precision (R: 15 significant digits), booleans as 0/1 (R codes a logical column as a
factor, FALSE = 1, TRUE = 2), string columns get one code table over all data sets (R codes each
data set on its own and logs the last one's table, so codes can disagree between data sets),
and the list and input files name the data files relative to ``folder`` (R: as given). String
levels are sorted by code point (R's ``as.factor`` uses the locale's collation, so codes of
strings that differ in case or accents can differ from R's: R puts ``"été"`` before ``"naïve"``).
Names Mplus cannot read (more than 8 characters, characters other than letters, digits and ``_``,
names equal in their first 8 characters up to case) are written as they are, as R does, with a
``MitmlWarning``. From an
``Imputations`` object both writers keep the data's column order (R writes mitml's reordered
columns: cluster, group, targets, then the rest).

SPSS (``write_spss``, mitml's ``write.mitmlSPSS``): ``<name>.dat``, the data sets stacked under
a header line with a leading column ``Imputation_`` (categorical columns as codes 1..K, missing
values as ``na_value``), and the syntax file ``<name>.sps`` that reads it (``GET DATA``, formats
``F<w+3>.2`` / ``A<w>`` with R's widths, ``VALUE LABELS`` of the categorical columns, ``MISSING
VALUES``). On purpose unlike R (its bug B12): the imputations are numbered 1..m and the original
data, if given, is written as ``Imputation_ = 0``, which is what SPSS's pooling expects (R numbers
the imputations 0..m-1, so SPSS takes the first one for the original data). The syntax leaves out
``VALUE LABELS`` without categorical columns and empty ``MISSING VALUES`` lists (R writes invalid
syntax there), booleans are written as 0/1 numbers, and string widths ``A<w>`` count UTF-8 bytes,
as SPSS does (R counts characters, which cuts non-ASCII text). Text is written unquoted, as R
writes it and as the syntax reads it (no ``/QUALIFIER``); a text value or column name holding the
separator or a line break is an error (R writes it and SPSS shifts the columns).
"""

from __future__ import annotations

import csv
import numbers
import os
import re
import textwrap
import warnings

import numpy as np
import pandas as pd

from ..errors import MitmlError, MitmlTypeError, MitmlWarning

__all__ = ["write_mplus", "write_spss", "check_frames"]



def write_mplus(frames, folder, name="imp", na_value=-999, sep="\t", dec=".", suffix="list"):
    """Write data sets for Mplus ``TYPE = IMPUTATION`` (mitml's ``write.mitmlMplus``).

    Args:
        frames: the imputed data sets, or an ``Imputations`` object (completed first).
        folder: directory to write into (created if needed).
        name: file name stem (R's ``filename``), without a folder part.
        na_value: code written for missing values.
        sep: field separator.
        dec: decimal mark, ``"."`` or ``","`` (R's ``dec``; Mplus itself reads ``"."``).
        suffix: the list file is ``<name><suffix>.dat`` (R's ``suffix``).

    Returns:
        dict with the paths written: ``data`` (list), ``list``, ``log``, ``input``.
    """
    if hasattr(frames, "complete") and not isinstance(frames, list):  # an Imputations object
        frames = frames.complete("all")
    frames = check_frames(frames, "write_mplus")
    _check_text_layout("write_mplus", sep, dec, na_value, " (Mplus reads 'missing = all (<number>)')")
    _check_name("write_mplus", name)
    _check_name("write_mplus", suffix, "suffix", empty=True)
    columns = list(frames[0].columns)
    _warn_mplus_names(columns)
    _make_folder("write_mplus", folder)
    tables = _code_tables(frames)
    data_names = [f"{name}{i + 1}.dat" for i in range(len(frames))]
    if f"{name}{suffix}.dat" in data_names:
        raise MitmlError(f"write_mplus: the list file {name}{suffix}.dat would overwrite a data "
                         f"file; choose another 'suffix' than {suffix!r}.")
    for frame, data_name in zip(frames, data_names):
        out = pd.DataFrame(index=range(len(frame)))
        for col in columns:
            out[col] = _mplus_column(frame[col], tables.get(col))
        out.to_csv(
            os.path.join(folder, data_name), sep=sep, header=False, index=False,
            na_rep=str(na_value).replace(".", dec), lineterminator="\n", decimal=dec,
        )
    list_path = os.path.join(folder, f"{name}{suffix}.dat")
    with open(list_path, "w") as handle:
        handle.write("\n".join(data_names) + "\n")
    log_path = os.path.join(folder, f"{name}.log")
    with open(log_path, "w") as handle:
        handle.write("The data set featured the following variables:\n\n")
        handle.write(" ".join(map(str, columns)))
        if tables:
            handle.write("\n\nFactors were converted to numeric values as follows:\n")
            for col, levels in tables.items():
                handle.write(f"\n{col}:\n")
                handle.write("".join(f"{_label(lev)} = {k + 1}\n" for k, lev in enumerate(levels)))
        handle.write("\n")
    input_path = os.path.join(folder, f"{name}.inp")
    names = textwrap.fill(
        " ".join(map(str, columns)) + ";", width=76, initial_indent="  names = ",
        subsequent_indent="    ", break_long_words=False, break_on_hyphens=False,
    )
    with open(input_path, "w") as handle:
        handle.write(
            "TITLE:\n  This Mplus input file for multiply imputed data sets was generated by "
            "mitml_jax.\n"
            f"DATA:\n  file = {name}{suffix}.dat;\n  type = imputation;\n"
            f"VARIABLE:\n{names}\n  missing = all ({na_value});\n"
        )
    return {
        "data": [os.path.join(folder, d) for d in data_names],
        "list": list_path,
        "log": log_path,
        "input": input_path,
    }


def write_spss(frames, folder, name="imp", sep="\t", dec=".", na_value=-999, syntax=True,
               locale=None, original=None):
    """Write data sets for SPSS (mitml's ``write.mitmlSPSS``; layout in the module docstring).

    Args:
        frames: the imputed data sets, or an ``Imputations`` object (completed first; its data
            is then the original data unless ``original`` is given).
        folder: directory to write into (created if needed).
        name: file name stem (R's ``filename``, no folder part); the syntax reads
            ``<name>.dat`` relative to SPSS's working directory, as R's does.
        sep, dec: field separator and decimal mark (``"."`` or ``","``; ``SET DECIMAL``).
        na_value: code written for missing values (declared in ``MISSING VALUES``).
        syntax: also write ``<name>.sps``.
        locale: optional ``SET LOCALE`` value.
        original: the original (incomplete) data, written as ``Imputation_ = 0``.

    Returns:
        dict with the paths written: ``data`` and ``syntax`` (None without syntax).
    """
    if hasattr(frames, "complete") and not isinstance(frames, list):  # an Imputations object
        if original is None:
            original = frames.data
        frames = frames.complete("all")
    frames = check_frames(frames, "write_spss")
    _check_text_layout("write_spss", sep, dec, na_value)
    columns = list(frames[0].columns)
    if "Imputation_" in columns:
        raise MitmlError("write_spss: the data sets have a column 'Imputation_'; rename it.")
    _check_name("write_spss", name)
    numbered = [(i + 1, f) for i, f in enumerate(frames)]
    if original is not None:
        if not isinstance(original, pd.DataFrame):
            raise MitmlTypeError("write_spss: 'original' must be a pandas DataFrame.")
        absent = [c for c in columns if c not in original.columns]
        if absent:
            raise MitmlError(f"write_spss: columns {absent} of the imputed data are not in 'original'.")
        numbered.insert(0, (0, original[columns]))
    tables = {c: t for c, t in _code_tables([f for _, f in numbered]).items()
              if isinstance(frames[0][c].dtype, pd.CategoricalDtype)}
    out = pd.DataFrame({"Imputation_": np.concatenate([np.full(len(f), k) for k, f in numbered])})
    text = []
    for col in columns:
        series = pd.concat([f[col] for _, f in numbered], ignore_index=True)
        if col in tables or not _is_coded(series):
            out[col] = pd.Series(_mplus_column(series, tables.get(col))).fillna(na_value)
        else:  # strings stay text, written as they are (R: quote = FALSE)
            out[col] = [_label(v) if ok else str(na_value)
                        for v, ok in zip(series.astype(object), series.notna())]
            text.append(col)
    out.columns = [str(c) for c in out.columns]
    text = [str(c) for c in text]
    tables = {str(c): t for c, t in tables.items()}
    _check_spss_text(out, text, sep)
    _make_folder("write_spss", folder)
    data_path = os.path.join(folder, f"{name}.dat")
    out.to_csv(data_path, sep=sep, index=False, decimal=dec, lineterminator="\n",
               quoting=csv.QUOTE_NONE)
    syntax_path = None
    if syntax:
        syntax_path = os.path.join(folder, f"{name}.sps")
        with open(syntax_path, "w") as handle:
            handle.write(_spss_syntax(out, text, tables, f"{name}.dat", sep, dec, na_value, locale))
    return {"data": data_path, "syntax": syntax_path}


def _spss_syntax(out, text, tables, data_name, sep, dec, na_value, locale) -> str:
    """The .sps file, line for line as write.mitmlSPSS writes it (minus its invalid parts)."""
    lines = [f"SET DECIMAL {'DOT' if dec == '.' else 'COMMA'} ."]
    if locale is not None:
        lines.append(f"SET LOCALE {locale} .")
    lines += ["", "GET DATA", " /TYPE=TXT", f' /FILE="{data_name}"', " /DELCASE=LINE",
              ' /DELIMITERS="{}"'.format(sep.replace("\t", "\\t")), " /ARRANGEMENT=DELIMITED",
              " /FIRSTCASE=2", " /IMPORTCASE=ALL", " /VARIABLES="]
    formats = []
    for col in out.columns:
        if col in text:
            # SPSS string widths count bytes (R: characters, too narrow for non-ASCII text)
            formats.append(f" {col} A{max((len(v.encode('utf-8')) for v in out[col]), default=1)}")
        else:
            formats.append(f" {col} F{_r_format_width(out[col].to_numpy(dtype=float)) + 3}.2")
    lines += formats[:-1] + [formats[-1] + " .", "", "CACHE .", "EXECUTE .",
                             "DATASET NAME panImpute1 WINDOW=FRONT .", ""]
    if tables:
        labels = ["VALUE LABELS"]
        for col, levels in tables.items():
            labels.append(f" /{col}")
            labels += [f" {k + 1} '{_label(lev).replace(chr(39), chr(39) * 2)}'"
                       for k, lev in enumerate(levels)]
        lines += labels[:-1] + [labels[-1] + " .", ""]
    numeric = [c for c in out.columns if c not in text]
    missing = [f" {' '.join(numeric)} ({na_value})"]
    if text:  # R's cat() leaves a space at the end of the first line
        missing = [missing[0] + " ", f' {" ".join(text)} ("{na_value}")']
    return "\n".join(lines + ["MISSING VALUES"] + missing[:-1] + [missing[-1] + " ."]) + "\n"


def _r_format_width(values) -> int:
    """Width of R's ``format()`` of a numeric column, which write.mitmlSPSS uses for its ``F``
    formats."""
    from ..diagnostics.printing import r_format

    return max((len(t) for t in r_format(values)), default=0)


def _check_name(what, name, arg="name", empty=False):
    """A file name stem: text without a folder part (folders go into 'folder')."""
    if not isinstance(name, str) or (not name and not empty):
        raise MitmlTypeError(f"{what}: '{arg}' must be a non-empty string (a file name stem), "
                             f"got {name!r}.")
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if any(c in name for c in seps):
        raise MitmlError(f"{what}: '{arg}' ({name!r}) must be a file name without a folder; "
                         "give the folder as 'folder'.")


def _make_folder(what, folder):
    """Create ``folder`` (and its parents), or a MitmlError saying why not."""
    if not isinstance(folder, (str, os.PathLike)):
        raise MitmlTypeError(f"{what}: 'folder' must be a path, not {type(folder).__name__}.")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise MitmlError(f"{what}: 'folder' ({os.fspath(folder)!r}) is a file, not a folder; "
                         "give another folder.")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise MitmlError(f"{what}: cannot create 'folder' {os.fspath(folder)!r} ({err}).") from None


_MPLUS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,7}\Z")


def _warn_mplus_names(columns):
    """Warn about names Mplus cannot read: mitml writes them unchanged, and so do we."""
    bad = [str(c) for c in columns if not _MPLUS_NAME.match(str(c))]
    seen = {}
    for c in map(str, columns):
        seen.setdefault(c[:8].upper(), []).append(c)
    same = [names for names in seen.values() if len(names) > 1]
    if not bad and not same:
        return
    parts = []
    if bad:
        parts.append(f"names {bad} are not Mplus names (up to 8 letters, digits or underscores, "
                     "starting with a letter)")
    if same:
        parts.append(f"names {same} are the same to Mplus (first 8 characters, any case)")
    warnings.warn(
        "write_mplus: " + "; ".join(parts) + ". The files are written with the names as they "
        "are (as mitml does); rename the columns (e.g. implist.within(lambda d: "
        "d.rename(columns={...}))) or edit the NAMES in the input file before running Mplus.",
        MitmlWarning, stacklevel=3,
    )


def _check_spss_text(out, text, sep):
    """The data file is written unquoted (as mitml writes it and as the syntax reads it): a text
    value or column name holding the separator or a line break would shift the columns."""
    def breaks(value):
        return sep in value or "\n" in value or "\r" in value

    names = [c for c in out.columns if breaks(str(c))]
    if names:
        raise MitmlError(f"write_spss: column names {names} contain the separator {sep!r} or a "
                         "line break; rename them or choose another 'sep'.")
    for col in text:
        hits = [v for v in out[col] if breaks(v)]
        if hits:
            raise MitmlError(
                f"write_spss: column {col!r} has values containing the separator {sep!r} or a "
                f"line break (e.g. {hits[0]!r}), which SPSS would split into two fields; choose "
                "another 'sep' (e.g. '\\t' or ';') or change the values."
            )


def _check_text_layout(what, sep, dec, na_value, na_note=""):
    """The delimited-text arguments of the Mplus and SPSS writers, or a MitmlError naming them."""
    if isinstance(na_value, bool) or not isinstance(na_value, numbers.Real) or not np.isfinite(na_value):
        raise MitmlError(f"{what}: 'na_value' must be a finite number{na_note}, got {na_value!r}; "
                         "use e.g. -999.")
    if dec not in (".", ","):
        raise MitmlError(f"{what}: 'dec', the decimal mark, must be '.' or ',', got {dec!r}.")
    if not isinstance(sep, str) or not sep or sep == dec:
        raise MitmlError(f"{what}: 'sep' must be a non-empty string other than the decimal mark "
                         f"'dec', got {sep!r}.")
    if len(sep) != 1 or sep.isalnum() or sep in "+-\n\r":
        # a digit, letter or sign also occurs inside numbers (1e+20, -999, inf): the fields
        # could not be told apart (pandas quotes them, which Mplus and SPSS do not read)
        raise MitmlError(f"{what}: 'sep' must be one character that cannot occur in a number "
                         f"(e.g. '\\t', ';', ',' or ' '), got {sep!r}.")


def check_frames(frames, what):
    """``frames`` as a list of DataFrames with the same, unique, flat column names (what the
    writers and :mod:`.parquet` need); a MitmlError/MitmlTypeError prefixed by ``what``."""
    frames = list(frames)
    if not frames:
        raise MitmlError(f"{what}: there are no data sets to write.")
    if not all(isinstance(f, pd.DataFrame) for f in frames):
        raise MitmlTypeError(f"{what}: every data set must be a pandas DataFrame.")
    first = list(frames[0].columns)
    if isinstance(frames[0].columns, pd.MultiIndex):
        raise MitmlError(f"{what}: the data sets have multi-level column names; flatten them "
                         "to one name per column first.")
    names = [str(c) for c in first]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise MitmlError(f"{what}: the column names {twice} occur more than once; rename them "
                         "so that every column has its own name.")
    for i, frame in enumerate(frames[1:], start=2):
        if list(frame.columns) != first:
            raise MitmlError(
                f"{what}: data set {i} has different columns from data set 1; all must match."
            )
    return frames


def _is_coded(series: pd.Series) -> bool:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return False
    return _object_kind(series) is None


def _object_kind(series: pd.Series):
    """'number' or 'bool' for an object column holding only numbers or only booleans (R
    would hold those as a numeric or logical vector), else None."""
    if series.dtype != object:
        return None
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    return "bool" if kind == "boolean" else None


def _label(value) -> str:
    """A level or text value as R prints it: dates at midnight as ``2020-01-01``."""
    if isinstance(value, (np.datetime64, pd.Timestamp)):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else str(stamp)
    return str(value)


def _code_tables(frames):
    """Column -> levels for categorical/string columns, the same for every data set."""
    tables = {}
    for col in frames[0].columns:
        if not _is_coded(frames[0][col]):
            continue
        dtype = frames[0][col].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            # the first data set's categories, then any level only later data sets have
            levels = list(dtype.categories)
            seen = set(levels)
            for frame in frames[1:]:
                other = frame[col]
                more = (other.cat.categories if isinstance(other.dtype, pd.CategoricalDtype)
                        else pd.unique(other.dropna()))
                for level in more:
                    if level not in seen:
                        seen.add(level)
                        levels.append(level)
            tables[col] = levels
        else:
            values = pd.unique(pd.concat([f[col] for f in frames]).dropna())
            tables[col] = sorted(values, key=str)
    return tables


def _mplus_column(series: pd.Series, levels):
    if levels is not None:
        if isinstance(series.dtype, pd.CategoricalDtype) and \
                list(series.cat.categories) == list(levels):
            codes = series.cat.codes.to_numpy()
        else:  # by value: categories in another order or other levels than the code table
            codes = pd.Index(levels, dtype=object).get_indexer(series.astype(object))
        out = pd.array(codes + 1, dtype="Int64")
        out[codes < 0] = pd.NA
        return out
    kind = _object_kind(series)
    if pd.api.types.is_bool_dtype(series.dtype) or kind == "bool":
        return series.astype("boolean").astype("Int64").array
    if kind == "number":  # numbers, not codes; numeric so that 'dec' applies
        return pd.to_numeric(series.astype(float)).array
    return series.array
