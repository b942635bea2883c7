"""mitml's integer ``type`` vector -> the equivalent formula (``.type2formula``).

Codes, one per column of ``data``: ``1`` target, ``2`` fixed-effect predictor, ``3`` fixed and
random effect, ``0`` not in the model, ``-1`` grouping variable, ``-2`` cluster indicator. The
intercept is always a fixed (and, with a cluster, random) effect. For jomo, ``[type_L1, type_L2]``
adds a level-2 model: ``1`` level-2 target, ``2``/``3`` level-2 predictor, ``-1`` the group if the
level-1 vector has none (``-2`` there is ignored).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning
from mitml_jax.spec.model_matrix import r_name

__all__ = ["type_to_formula"]

_CODES = (-2, -1, 0, 1, 2, 3)


def _by_name(data: pd.DataFrame, vector, which: str):
    """A ``type`` Series labelled by column names is matched to the columns by name (a labelled
    vector in another order must not give codes to the wrong columns); a Series with the default
    0..n-1 index stays positional, as R's (unnamed) vector."""
    if not isinstance(vector, pd.Series) or vector.index.equals(pd.RangeIndex(len(vector))):
        return vector
    labels, columns = list(vector.index), list(data.columns)
    unknown = [str(v) for v in labels if v not in columns]
    absent = [str(c) for c in columns if c not in labels]
    if unknown or absent or vector.index.has_duplicates:
        dups = sorted({str(v) for v in vector.index[vector.index.duplicated()]})
        parts = ([f"labels that are not columns of 'data': {', '.join(unknown)}"] if unknown
                 else []) + ([f"no code for the columns {', '.join(absent)}"] if absent else []) \
            + ([f"duplicate labels {', '.join(dups)}"] if dups else [])
        raise MitmlError(f"{which} is a Series labelled by column names, but it has "
                         f"{'; '.join(parts)}. Give one code per column of 'data' (labels "
                         "matching data.columns), or a plain list in column order.")
    return vector.reindex(columns)


def _as_codes(data: pd.DataFrame, vector, which: str) -> np.ndarray:
    vector = _by_name(data, vector, which)
    try:
        codes = np.asarray(vector)
    except Exception as exc:  # pragma: no cover - numpy accepts nearly anything
        raise MitmlTypeError(f"{which} must be a sequence of integers.") from exc
    if codes.ndim != 1 or codes.dtype.kind not in "iuf" or codes.size == 0:
        raise MitmlTypeError(f"{which} must be a one-dimensional sequence of integer codes "
                             f"(-2, -1, 0, 1, 2, 3), one per column of 'data'; got {vector!r}.")
    if codes.size != data.shape[1]:
        raise MitmlError(f"Length of 'type' must be equal to the number of colums in 'data': "
                         f"{which} has {codes.size} codes for {data.shape[1]} columns.")
    bad = [str(c) for c, v in zip(data.columns, codes) if v not in _CODES]
    if bad:
        raise MitmlError(f"{which} has codes outside (-2, -1, 0, 1, 2, 3) for columns "
                         f"{', '.join(bad)}.")
    return codes.astype(int)


def _split_type(type_):
    if isinstance(type_, np.ndarray) and type_.ndim == 2:
        type_ = list(type_)  # rows: [type_L1] or [type_L1, type_L2]
    if isinstance(type_, (list, tuple)) and len(type_) > 0 and all(
            isinstance(t, (list, tuple, np.ndarray, pd.Series)) for t in type_):
        if len(type_) == 1:
            return type_[0], None
        if len(type_) == 2:
            return type_[0], type_[1]
        raise MitmlError("Cannot determine the number of levels. The 'formula' or 'type' argument "
                         "must indicate either a single-level model, a model for responses at "
                         "level 1, or two models for responses at level 1 and 2 (got "
                         f"{len(type_)} type vectors).")
    return type_, None


def _names(columns, codes, wanted) -> list:
    return [str(c) for c, v in zip(columns, codes) if v in wanted]


def type_to_formula(data: pd.DataFrame, type_, group, kind: str):
    """Translate ``type`` into ``(formula or [level1, level2], group)``.

    Raises:
        MitmlError / MitmlTypeError: wrong length or codes, several cluster or group columns, no
            target, a pan model without cluster, a level-2 model for pan.
    """
    if isinstance(type_, (str, dict)) or type_ is None:
        raise MitmlTypeError("'type' must be a sequence of integer codes, one per column of "
                             f"'data' (or, for jomo, a list of two), not {type(type_).__name__}.")
    odd = [c for c in data.columns if not isinstance(c, str)]
    if odd:
        raise MitmlError(f"'type' needs string column names, but 'data' has the column name(s) "
                         f"{odd[:5]!r}{' ...' if len(odd) > 5 else ''}: name the columns first, "
                         "e.g. data.columns = data.columns.astype(str).")
    level1, level2 = _split_type(type_)
    if level2 is not None and kind == "pan":
        raise MitmlError("'type' for pan must be one vector; level-2 target models "
                         "([type_L1, type_L2]) are supported by jomo_impute().")
    codes = _as_codes(data, level1, "'type'" if level2 is None else "'type[0]'")
    codes2 = _as_codes(data, level2, "'type[1]'") if level2 is not None else None
    columns = list(data.columns)
    clusters = _names(columns, codes, (-2,))
    if len(clusters) > 1:
        raise MitmlError(f"Only one cluster indicator may be specified ('type' codes -2 for "
                         f"{', '.join(clusters)}).")
    groups = _names(columns, codes, (-1,))
    if not groups and codes2 is not None:
        groups = _names(columns, codes2, (-1,))
    if group is not None:
        name = group[0] if isinstance(group, (list, tuple)) and len(group) == 1 else group
        if kind == "jomo":
            if not isinstance(name, str) or name not in data.columns:
                raise MitmlError(f"Argument 'group' is not correctly specified: {group!r} must "
                                 "be the name of a column of 'data'.")
            warnings.warn("The 'group' argument is intended only for 'formula'. Setting 'type' "
                          f"of '{name}' to '-1'.", MitmlWarning, stacklevel=3)
            codes = codes.copy()
            codes[columns.index(name)] = -1
            groups = _names(columns, codes, (-1,))
        else:
            warnings.warn("The 'group' argument is ignored when 'type' is given; code the "
                          "grouping column as -1 in 'type' instead.", MitmlWarning, stacklevel=3)
    if len(groups) > 1:
        raise MitmlError(f"Multiple 'group' variables found ({', '.join(groups)}). There can be "
                         "only one!")
    targets = _names(columns, codes, (1,))
    if not targets:
        raise MitmlError("'type' has no target variable: code the columns to impute as 1.")
    if not clusters:
        if kind == "pan":
            raise MitmlError("Cluster indicator not found in 'type': code the cluster column as "
                             "-2. Single-level imputation is supported by jomo_impute().")
        if codes2 is not None:
            raise MitmlError("No cluster variable found. Imputation models for responses at "
                             "level 1 and 2 require the specification of a cluster variable "
                             "(code it -2 in 'type[0]').")
        random = _names(columns, codes, (3,))
        if random:  # mitml builds the fixed effect only, silently
            warnings.warn(f"'type' code 3 (fixed and random effect) for {', '.join(random)} "
                          "without a cluster indicator (-2): a single-level model has no random "
                          "effects, so they are fixed effects only (as code 2).", MitmlWarning,
                          stacklevel=3)
    lhs = " + ".join(map(r_name, targets))
    fixed = " + ".join(["1", *map(r_name, _names(columns, codes, (2, 3)))])
    formula = f"{lhs} ~ {fixed}"
    if clusters:
        random = " + ".join(["1", *map(r_name, _names(columns, codes, (3,)))])
        formula += f" + ({random} | {r_name(clusters[0])})"
    group_name = groups[0] if groups else None
    if codes2 is None:
        return formula, group_name
    targets2 = _names(columns, codes2, (1,))
    if not targets2:
        raise MitmlError("'type[1]' has no level-2 target variable: code the level-2 columns "
                         "to impute as 1.")
    fixed2 = " + ".join(["1", *map(r_name, _names(columns, codes2, (2, 3)))])
    return [formula, f"{' + '.join(map(r_name, targets2))} ~ {fixed2}"], group_name
