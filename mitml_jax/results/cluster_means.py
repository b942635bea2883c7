"""Cluster means of a variable (mitml's ``clusterMeans``).

Typical use is inside :meth:`ImputedList.within` to split a level-1 variable into its cluster
mean and the deviation from it::

    implist.within(lambda d: {
        "G.SES": cluster_means(d.SES, d.ID),
        "I.SES": d.SES - cluster_means(d.SES, d.ID),
    })

Differences from R (on purpose; checked against mitml 0.4-4 in
tests/test_r_crosscheck_implist.py): cluster and group ids of any type work, strings included
(mitml turns character ids into ``NA``, so all rows fall into one cluster and get the grand mean:
its bug B16); rows whose cluster or group id is missing get NaN (R makes them one more cluster);
cells are the pairs (cluster, group) (R codes them as ``cluster + group / (ngr + 1)``, which
merges cells of different clusters when numeric group codes are not 1..ngr, e.g. cluster 1 with
group 4 and cluster 2 with group 0 when there are 3 groups); names are looked up in ``data``
rather than in the caller's frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MitmlError, MitmlTypeError
from ..sampling.arguments import check_flag
from .long_format import same_labels

__all__ = ["cluster_means"]


def cluster_means(x, cluster, adj=False, group=None, data=None):
    """Each unit's cluster mean of ``x`` (missing values ignored).

    Args:
        x: values (array-like or Series), or a column name when ``data`` is given.
        cluster: cluster ids of the same length (numbers, strings, categories), or a column name;
            a Series with ``x``'s index labels in another order is matched by label, other ids
            by position.
        adj: if True, the leave-one-out mean ``(n_j * mean_j - x_i) / (n_j - 1)`` where ``n_j``
            counts the observed values of cluster ``j``; NaN where ``x_i`` is missing, and NaN
            (or +-inf) where ``n_j = 1``, as in R.
        group: optional second id; means are then taken within the cells cluster x group.
        data: a DataFrame in which string arguments are looked up as column names.

    Returns:
        A float array of the length of ``x``, or a Series with ``x``'s index when ``x`` is a
        Series. Clusters with no observed value of ``x`` get NaN. Rows whose cluster (or group)
        id is missing get NaN.
    """
    check_flag("adj", adj, where="cluster_means: ")
    x = _resolve(x, data, "x")
    cluster = _resolve(cluster, data, "cluster")
    group = None if group is None else _resolve(group, data, "group")
    index = x.index if isinstance(x, pd.Series) else None
    cluster = _by_label(cluster, index)
    group = _by_label(group, index)

    values = _as_float(x)
    n = values.shape[0]
    codes = _codes(cluster, n, "cluster")
    if group is not None:
        group_codes = _codes(group, n, "group")
        # missing cluster or group ids -> NaN pair, which factorize codes as missing (-1)
        pair = np.where((codes < 0) | (group_codes < 0), np.nan,
                        codes * (group_codes.max() + 1.0) + group_codes)
        codes = _codes(pair, n, "cluster x group")

    valid = codes >= 0
    observed = valid & ~np.isnan(values)
    n_cells = int(codes.max()) + 1 if valid.any() else 0
    sums = np.bincount(codes[observed], weights=values[observed], minlength=n_cells)
    counts = np.bincount(codes[observed], minlength=n_cells).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
        out = np.full(n, np.nan)
        out[valid] = means[codes[valid]]
        if adj:
            n_obs = np.full(n, np.nan)
            n_obs[valid] = counts[codes[valid]]
            out = (n_obs * out - values) / (n_obs - 1.0)
    if index is not None:
        return pd.Series(out, index=index, name=x.name)
    return out


def _resolve(arg, data, name):
    if isinstance(arg, str):
        if data is None:
            raise MitmlTypeError(
                f"cluster_means: '{name}' is the string {arg!r}; pass data=<DataFrame> to look it "
                "up as a column, or pass the values themselves."
            )
        if arg not in data.columns:
            raise MitmlError(f"cluster_means: column {arg!r} (argument '{name}') is not in 'data'.")
        return data[arg]
    return arg


def _by_label(ids, index):
    """A Series of ids with x's index labels in another order, put in x's order (as pandas
    aligns); any other ids are matched by position."""
    if (index is not None and isinstance(ids, pd.Series) and not ids.index.equals(index)
            and same_labels(ids.index, index)):
        return ids.reindex(index)
    return ids


def _as_float(x) -> np.ndarray:
    if isinstance(x, pd.Series):
        if isinstance(x.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(x.dtype) or pd.api.types.is_bool_dtype(x.dtype)
        ):
            raise MitmlTypeError(
                f"cluster_means: 'x' ({x.name!r}) must be numeric, not {x.dtype}; convert it first."
            )
        return x.to_numpy(dtype=float, na_value=np.nan)
    try:
        values = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise MitmlTypeError(f"cluster_means: 'x' must be numeric ({err}).") from None
    if values.ndim != 1:
        raise MitmlError(f"cluster_means: 'x' must be one-dimensional, got shape {values.shape}.")
    return values


def _codes(ids, n, name) -> np.ndarray:
    """Integer codes 0..K-1 in order of first appearance; -1 for missing ids."""
    if isinstance(ids, (pd.Series, pd.Index, pd.Categorical)):
        ids_len = len(ids)
    else:
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise MitmlError(f"cluster_means: '{name}' must be one-dimensional.")
        ids_len = ids.shape[0]
    if ids_len != n:
        raise MitmlError(
            f"cluster_means: '{name}' has length {ids_len} but 'x' has length {n}; they must match."
        )
    codes, _ = pd.factorize(ids, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64)
