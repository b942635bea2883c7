"""Validators for the model specification (mitml's checks plus the ones it lacks).

Every ``check_*`` raises :class:`~mitml_jax.errors.MitmlError` (or ``MitmlTypeError``) with a
message that names the argument or column and says what to do; none modifies its inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError, MitmlTypeError

__all__ = [
    "check_data_frame", "check_columns", "check_complete", "check_finite",
    "check_no_duplicates", "check_target_types", "check_observed", "check_has_missing", "is_categorical",
    "target_levels", "within_cluster_constant", "check_full_rank",
]

_EPS = float(np.sqrt(np.finfo(float).eps))


def check_data_frame(data) -> None:
    """``data`` must be a pandas DataFrame (mitml's bug B13 let matrices through)."""
    if not isinstance(data, pd.DataFrame):
        raise MitmlTypeError(
            f"'data' must be a pandas DataFrame, not {type(data).__name__}; convert it with "
            "pandas.DataFrame(..., columns=[...]) so that columns have names.")
    if data.columns.has_duplicates:
        dups = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
        raise MitmlError(f"'data' has duplicate column names {dups}: rename them.")


def check_columns(data: pd.DataFrame, names, role: str) -> None:
    """Every name must be a column of ``data``."""
    missing = [n for n in names if n not in data.columns]
    if missing:
        raise MitmlError(
            f"Could not find {role} {', '.join(repr(m) for m in missing)} in 'data' (columns: "
            f"{', '.join(map(str, data.columns))}). Check the spelling in 'formula'/'group'.")


def check_complete(data: pd.DataFrame, column: str, role: str) -> None:
    """The cluster or group column must have no missing values."""
    if data[column].isna().any():
        rows = list(data.index[data[column].isna()][:5])
        raise MitmlError(f"{role} '{column}' must not contain missing data (rows {rows}); drop "
                         "or fill those rows first.")


def check_finite(frame: pd.DataFrame, role: str, allow_nan: bool) -> None:
    """Numeric columns of ``frame`` must be finite (and complete unless ``allow_nan``)."""
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind not in "iufb" and not pd.api.types.is_numeric_dtype(col.dtype):
            continue
        values = col.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(values).any():
            raise MitmlError(f"{role} '{name}' contains infinite values; replace them (e.g. by "
                             "NaN for targets) before imputation.")
        if not allow_nan and np.isnan(values).any():
            raise MitmlError(f"{role.capitalize()} must not contain missing data: '{name}' has "
                             f"{int(np.isnan(values).sum())} missing values. Impute it as a "
                             "target or drop those rows.")


def check_no_duplicates(names) -> None:
    """Targets must not repeat (L1 and L2 together)."""
    seen, dups = set(), []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise MitmlError(f"Found duplicate target variables: {', '.join(dups)}. List each target "
                         "once (level 1 and level 2 together).")


def is_categorical(series: pd.Series) -> bool:
    """True for category, string/object and bool columns (factors in R)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return True  # NumPy bool and pandas' nullable "boolean" (numeric to pandas) alike
    if dtype.kind in "iuf" or pd.api.types.is_numeric_dtype(dtype):
        return False
    return True


def target_levels(series: pd.Series) -> tuple:
    """Levels of a categorical target: category order, else sorted unique observed values."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return tuple(series.cat.categories)
    observed = series.dropna().unique()
    try:
        return tuple(sorted(observed))
    except TypeError as exc:
        kinds = sorted({type(v).__name__ for v in observed})
        raise MitmlError(f"Target '{series.name}' mixes value types {kinds}; convert it to a "
                         "pandas category with explicit levels.") from exc


def check_target_types(data: pd.DataFrame, targets, kind: str) -> None:
    """pan needs numeric targets; jomo takes numbers or categories (strings become categories)."""
    for name in targets:
        if data[name].dtype.kind in "mM":
            raise MitmlError(f"Target '{name}' has dtype {data[name].dtype}; convert dates and "
                             "durations to numbers before imputation.")
        if kind == "pan" and is_categorical(data[name]):
            raise MitmlError(f"Target variables must be numeric: '{name}' has dtype "
                             f"{data[name].dtype}. You may either convert it or use jomo_impute() "
                             "instead.")
        if kind == "jomo" and is_categorical(data[name]):
            _check_not_numbers(data[name])
            levels = target_levels(data[name])
            if len(levels) < 2:
                raise MitmlError(f"Categorical target '{name}' has fewer than two levels "
                                 f"({list(levels)}); drop it from the model or recode it.")


def _check_not_numbers(series: pd.Series) -> None:
    """An object column whose values are all numbers is numeric data stored as objects (e.g.
    after concatenating frames); as a jomo target it would silently become one category per
    distinct value. R keeps numbers numeric, so ask for the intended type."""
    if series.dtype != object:
        return
    observed = series.dropna()
    if len(observed) and observed.map(
            lambda v: isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))).all():
        raise MitmlError(f"Target '{series.name}' holds numbers in an object column, which would "
                         f"make every distinct value a category: convert it with "
                         f"pd.to_numeric(data['{series.name}']) for a continuous target, or "
                         f".astype('category') for a categorical one.")


def check_observed(data: pd.DataFrame, targets, group=None) -> None:
    """Every target needs observed values to impute from: one per group, two distinct overall.

    A target that is entirely missing (in the data or in one group) or constant (one observed
    value or category) gives the sampler nothing to estimate its distribution from.
    """
    groups = None if group is None else data[group].to_numpy()
    for name in targets:
        column = data[name]
        observed = column.notna().to_numpy()
        if not observed.any():
            raise MitmlError(f"Target '{name}' has no observed values, so it cannot be imputed; "
                             "drop it from the model.")
        if groups is not None:
            seen = pd.Series(observed).groupby(groups, sort=False).any()
            if not seen.all():
                raise MitmlError(f"Target '{name}' has no observed value in group "
                                 f"{_plain(seen.index[~seen.to_numpy()][0])!r} of '{group}'; "
                                 "drop the target from the model or the group from the data.")
        values = column[observed].unique()
        if len(values) < 2:
            what = "category" if is_categorical(column) else "value"
            raise MitmlError(f"Target '{name}' is constant: its only observed {what} is "
                             f"{_plain(values[0])!r}, so there is no variation to model; drop "
                             "it from the model or recode it.")


def _plain(value):
    """A NumPy scalar as the Python value (messages show ``1.5``, not ``np.float64(1.5)``)."""
    return value.item() if isinstance(value, np.generic) else value


def check_has_missing(data: pd.DataFrame, targets) -> None:
    """At least one target must have a missing value."""
    if not any(data[name].isna().any() for name in targets):
        raise MitmlError(f"Target variables do not contain any missing data: "
                         f"{', '.join(targets)} are complete, so there is nothing to impute.")


def within_cluster_constant(values: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Per column, True when every non-missing value equals its cluster mean (mitml's test)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    frame = pd.DataFrame(values)
    means = frame.groupby(np.asarray(cluster), sort=False).transform("mean").to_numpy()
    ok = np.isnan(values) | (np.abs(values - means) < _EPS * np.maximum(1.0, np.abs(means)))
    return ok.all(axis=0)


def _aliased_columns(rows: np.ndarray) -> list:
    """Positions of the columns of ``rows`` (n, p) that are linear combinations of the columns
    before them: R's ``lm`` rule (LINPACK ``dqrdc2``, ``tol = 1e-7``), so the later of two
    collinear columns is the one named, never the intercept in front of a constant predictor.

    Gram-Schmidt in column order, orthogonalised twice; a column whose remaining norm is below
    ``1e-7`` times its own norm (or that is zero) is aliased and left out of the basis. p is a
    handful of predictors; no scipy.linalg import (~0.5 s).
    """
    a = np.array(rows, dtype=float)
    basis, aliased = [], []
    for k in range(a.shape[1]):
        v = a[:, k].copy()
        norm0 = float(np.sqrt(v @ v))
        for _ in range(2):
            for q in basis:
                v -= q * (q @ v)
        norm = float(np.sqrt(v @ v))
        if norm0 == 0.0 or not norm > 1e-7 * norm0:
            aliased.append(k)
        else:
            basis.append(v / norm)
    return aliased


def check_full_rank(matrix: np.ndarray, names, part: str, groups: np.ndarray,
                    group_labels) -> None:
    """Within each group the model matrix must have full column rank (else the sampler fails)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[1] == 0:
        return
    for code, label in enumerate(group_labels):
        rows = matrix[groups == code]
        if rows.shape[0] == 0:
            continue
        aliased = _aliased_columns(rows)
        if aliased:
            where = "" if label is None else f" in group {label!r}"
            zero = [str(names[i]) for i in aliased if not np.any(rows[:, i])]
            other = [str(names[i]) for i in aliased if np.any(rows[:, i])]
            why = []
            if other:
                why.append(f"{', '.join(other)} {'is' if len(other) == 1 else 'are'} a linear "
                           "combination of the columns before it (e.g. constant"
                           f"{' within the group' if label is not None else ''}, or a multiple "
                           "of another predictor)")
            if zero:
                hint = ("a factor level or predictor value that does not occur in the group, "
                        "e.g. the grouping variable as a predictor" if label is not None else
                        "a factor level that does not occur: drop unused levels with "
                        ".cat.remove_unused_categories()")
                why.append(f"{', '.join(zero)} {'is' if len(zero) == 1 else 'are'} zero in "
                           f"every row{where} ({hint})")
            raise MitmlError(f"The {part} of the model is rank deficient{where}: "
                             f"{'; '.join(why)}. Remove it from 'formula'.")
