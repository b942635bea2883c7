"""The seam between host and device: a ``Design`` (NumPy, original row order) -> padded arrays.

Rows are sorted by (group, cluster, original position) and laid out as ``(G, k, J, L)``: G groups,
k columns (targets or predictors), J clusters per group (padded to the largest group), L rows per
cluster (padded to the largest cluster). Columns come before rows ("structure of arrays"), so the
tiny per-row algebra of the kernels is elementwise over contiguous (J, L) blocks, which XLA fuses
and vectorises well; per-cluster sums are reductions over the padded ``L`` axis and groups become
a ``vmap`` axis. A cluster is a (group, cluster) pair, so a cluster id that occurs in two groups
gives two clusters, as in mitml (which renumbers clusters within each group).

Missing cells are addressed by a flat index into the ``(r, J, L)`` block of their group, ordered
column-major over targets (all missing cells of the first target by original row, then the
second target, ...), as mitml's ``index.mat``. Groups hold different numbers of missing cells;
each is padded to ``M`` (the largest) with a dummy index ``r * J * L``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from ..errors import MitmlError

__all__ = ["ModelArrays", "Layout", "build_arrays"]


class ModelArrays(NamedTuple):
    """Device arrays of the imputation model (one leading group axis G).

    Attributes:
        y: (G, r, J, L) targets, observed values and 0 in missing or padded cells.
        obs: (G, r, J, L) bool, True for observed cells.
        row_mask: (G, J, L) bool, True for real (not padded) rows.
        used: (G, J, L) bool, real rows with at least one observed target (pan's n*).
        x: (G, p, J, L) fixed-effects design, 0 in padded rows.
        z: (G, q, J, L) random-effects design, 0 in padded rows.
        cluster_mask: (G, J) bool, True for real clusters.
        n_clusters: (G,) number of clusters per group (float).
        n_rows: (G,) number of rows per group (float).
        n_used: (G,) number of used rows per group (float).
        miss_index: (G, M) int32 flat index of missing cells into (r * J * L) (+1 dummy slot).
        miss_valid: (G, M) bool, True for real missing cells.
    """

    y: jax.Array
    obs: jax.Array
    row_mask: jax.Array
    used: jax.Array
    x: jax.Array
    z: jax.Array
    cluster_mask: jax.Array
    n_clusters: jax.Array
    n_rows: jax.Array
    n_used: jax.Array
    miss_index: jax.Array
    miss_valid: jax.Array


class Layout(NamedTuple):
    """Host-side bookkeeping of the padded layout (NumPy).

    Attributes:
        dims: dict with G, J, L, r, p, q, M, n, n_miss.
        row_position: (G, J, L) original row position of each padded row, -1 for padding.
        miss_row: (n_miss,) original row position of each missing cell (mitml order).
        miss_col: (n_miss,) target index (0..r-1) of each missing cell.
        miss_slot: (n_miss,) position of the cell in the flattened (G * M) saved vector.
        observed_mean: (G, r) mean of the observed values of each target per group.
    """

    dims: dict
    row_position: np.ndarray
    miss_row: np.ndarray
    miss_col: np.ndarray
    miss_slot: np.ndarray
    observed_mean: np.ndarray


def build_arrays(design, dtype=None) -> tuple[ModelArrays, Layout]:
    """Sort, pad and move a design to the device.

    Args:
        design: an object with NumPy attributes ``y (n, r)`` (NaN = missing), ``x (n, p)``,
            ``z (n, q)``, ``cluster (n,)`` integer codes and ``group (n,)`` integer codes
            (``mitml_jax.spec`` ``Design``).
        dtype: floating dtype of the device arrays (default float64).

    Returns:
        (arrays, layout): :class:`ModelArrays` on the device and the host :class:`Layout`.
    """
    dtype = np.dtype(dtype or np.float64)
    y = np.asarray(design.y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n, r = y.shape
    x = np.asarray(design.x, dtype=np.float64).reshape(n, -1)
    z = np.asarray(design.z, dtype=np.float64).reshape(n, -1)
    cluster = np.asarray(design.cluster).astype(np.int64).reshape(n)
    group = np.zeros(n, np.int64) if getattr(design, "group", None) is None else np.asarray(design.group).astype(np.int64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(z))):
        raise MitmlError("Predictor variables must not contain missing data: remove or impute them first.")
    p, q = x.shape[1], z.shape[1]

    order = np.lexsort((np.arange(n), cluster, group))
    g_s, c_s = group[order], cluster[order]
    new_unit = np.r_[True, (g_s[1:] != g_s[:-1]) | (c_s[1:] != c_s[:-1])]
    unit = np.cumsum(new_unit) - 1
    unit_start = np.flatnonzero(new_unit)
    row_in_unit = np.arange(n) - unit_start[unit]
    unit_group = g_s[new_unit]
    G = int(group.max()) + 1 if n else 1
    group_first_unit = np.searchsorted(unit_group, np.arange(G))
    unit_in_group = np.arange(len(unit_group)) - group_first_unit[unit_group]
    J = int(np.bincount(unit_group, minlength=G).max())
    L = int(np.bincount(unit).max())

    gi, ji, li = g_s, unit_in_group[unit], row_in_unit
    obs_sorted = ~np.isnan(y[order])
    ypad = np.zeros((G, J, L, r))
    obs = np.zeros((G, J, L, r), bool)
    row_mask = np.zeros((G, J, L), bool)
    xpad = np.zeros((G, J, L, p))
    zpad = np.zeros((G, J, L, q))
    row_position = np.full((G, J, L), -1, np.int64)
    ypad[gi, ji, li] = np.where(obs_sorted, y[order], 0.0)
    obs[gi, ji, li] = obs_sorted
    row_mask[gi, ji, li] = True
    xpad[gi, ji, li] = x[order]
    zpad[gi, ji, li] = z[order]
    row_position[gi, ji, li] = order
    used = row_mask & obs.any(axis=-1)
    ypad, obs = np.moveaxis(ypad, -1, 1), np.moveaxis(obs, -1, 1)
    xpad, zpad = np.moveaxis(xpad, -1, 1), np.moveaxis(zpad, -1, 1)
    cluster_mask = np.zeros((G, J), bool)
    cluster_mask[unit_group, unit_in_group] = True

    # missing cells in mitml's order: by target, then original row
    miss_col, miss_row = np.nonzero(np.isnan(y).T)
    inv = np.empty(n, np.int64)
    inv[order] = np.arange(n)
    g_m = group[miss_row]
    flat = (miss_col * J + unit_in_group[unit[inv[miss_row]]]) * L + row_in_unit[inv[miss_row]]
    counts = np.bincount(g_m, minlength=G)
    M = max(int(counts.max()) if len(counts) else 0, 1)
    slot_in_group = np.zeros(len(miss_row), np.int64)
    for gg in range(G):  # host bookkeeping over groups (G is small)
        sel = np.flatnonzero(g_m == gg)
        # slots follow the padded (sorted) position, so the noise order, and hence the
        # imputations, do not depend on the order of clusters in the input rows
        sel = sel[np.argsort(flat[sel], kind="stable")]
        slot_in_group[sel] = np.arange(len(sel))
    miss_index = np.full((G, M), J * L * r, np.int64)
    miss_valid = np.zeros((G, M), bool)
    miss_index[g_m, slot_in_group] = flat
    miss_valid[g_m, slot_in_group] = True
    miss_slot = g_m * M + slot_in_group

    with np.errstate(invalid="ignore", divide="ignore"):
        obs_mean = np.stack([np.nanmean(y[group == gg], axis=0) for gg in range(G)])
    if np.any(~np.isfinite(obs_mean)):
        bad = np.argwhere(~np.isfinite(obs_mean))[0]
        raise MitmlError(
            f"Target column {int(bad[1]) + 1} has no observed value in group {int(bad[0]) + 1}: "
            "remove it from the model or drop that group."
        )

    # NumPy, then one device_put: jnp.asarray compiles a small program per array shape on first use
    arrays = jax.device_put(ModelArrays(
        y=np.asarray(ypad, dtype),
        obs=np.asarray(obs),
        row_mask=np.asarray(row_mask),
        used=np.asarray(used),
        x=np.asarray(xpad, dtype),
        z=np.asarray(zpad, dtype),
        cluster_mask=np.asarray(cluster_mask),
        n_clusters=np.asarray(cluster_mask.sum(axis=1), dtype),
        n_rows=np.asarray(row_mask.sum(axis=(1, 2)), dtype),
        n_used=np.asarray(used.sum(axis=(1, 2)), dtype),
        miss_index=np.asarray(miss_index, np.int32),
        miss_valid=np.asarray(miss_valid),
    ))
    dims = dict(G=G, J=J, L=L, r=r, p=p, q=q, M=M, n=n, n_miss=len(miss_row))
    layout = Layout(dims, row_position, miss_row, miss_col, miss_slot, obs_mean)
    return arrays, layout
