"""pan's data as sufficient statistics plus the missing cells, for the chains-innermost sweep.

Every step of pan's sweep except the missing-value draw sees the data only through sums over
rows: ``sum y y^T``, ``X^T y`` and every cluster's ``Z_i^T y_i`` (``X^T X``, ``Z_i^T Z_i`` and
``Z_i^T X_i`` are fixed). The observed cells' part of those sums never changes, so it is computed
once here, on the host; a sweep of :mod:`pan_chains` then works on the missing cells only, and the
state it carries is their values. With studentratings' Introduction model that is 293 cells
instead of the 2,250 of the padded (r, J, L) grid.

The cells are laid out by target: ``(r_m, Mt)``, the ``r_m`` targets with a missing cell in some
group (:attr:`CellStats.targets`, static) times ``Mt``, the most missing cells of one target in one
group; the target of a cell is then a static index, so every sum lands in its column without a
scatter. A cell's contributions: ``v x`` to ``X^T y``, ``v z`` to its cluster's ``Z_i^T y_i`` (a sum
over cells sorted by cluster), ``v^2`` and ``v`` times the row's observed and other missing values
to ``sum y y^T``. Rows with every target missing (outside pan's n*) have weight 0 there.

Sums of squares are taken of ``y~ = y - X beta0`` with a fixed ``beta0`` (least squares on the
mean-filled data): the sweep's ``beta`` is ``beta0 + beta~`` there, and since ``X beta0`` lies in
the column space of X, Sigma's scale (residuals after projecting on X) is the same. This keeps
``sum y~ y~^T - ...`` from cancelling digits when a target's mean is large against its residual
variation (a year, an income).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

__all__ = ["CellStats", "available", "prepare"]


class CellStats(NamedTuple):
    """Constants of the chains-innermost sweep, each with a leading group axis G (the static
    ``targets`` aside). Cells are indexed (tm, i): the i-th missing cell of target ``targets[tm]``.

    Attributes:
        targets: tuple of the targets with a missing cell (static; pytree auxiliary data).
        beta0: (G, p, r) the fixed offset of beta.
        yy0: (G, r, r) ``sum o o^T`` over used rows, ``o = y~`` in observed cells and 0 in missing ones.
        xy0: (G, p, r) ``sum x o^T``; zy0: (G, q, r, J) every cluster's ``sum z o^T``.
        ztx: (G, q, p, J) every cluster's ``Z_i^T X_i`` over its used rows.
        valid: (G, r_m, Mt) bool, real cells.
        cell: (G, r_m, Mt) int32 flat index of the cell into the (r, J, L) grid (0 for padding).
        place: (G, r J L) int32 position ``tm Mt + i`` of every grid cell, ``r_m Mt`` where observed.
        cluster: (G, r_m, Mt) int32 the cell's cluster.
        weight: (G, r_m, Mt) 1 where the cell's row is used (pan's n*), else 0.
        x: (G, p, r_m, Mt); z: (G, q, r_m, Mt) the cell's row of the designs.
        offset: (G, r_m, Mt) ``(X beta0)`` of the cell's row and target.
        y_row: (G, r, r_m, Mt) the row's observed data (0 in missing cells).
        o_row: (G, r, r_m, Mt) the row's ``o`` times ``weight``.
        pattern: (G, r_m, Mt) int32 the row's missingness pattern (``missing_patterns.row_patterns``).
        noise_index: (G, r_m, r_m, Mt) int32 ``[jm, tm, i]``: the missing-cell slot (layout order)
            of target ``targets[jm]`` in the row of cell (tm, i), ``M`` where that cell is observed.
        pair_index: (G, n_pairs, Mt) int32 for each pair ``tm < um`` of :func:`pairs`: position of
            the row's cell of target ``targets[um]`` (``um Mt + i``), ``r_m Mt`` where observed.
    """

    targets: tuple
    beta0: jax.Array
    yy0: jax.Array
    xy0: jax.Array
    zy0: jax.Array
    ztx: jax.Array
    valid: jax.Array
    cell: jax.Array
    place: jax.Array
    cluster: jax.Array
    weight: jax.Array
    x: jax.Array
    z: jax.Array
    offset: jax.Array
    y_row: jax.Array
    o_row: jax.Array
    pattern: jax.Array
    noise_index: jax.Array
    pair_index: jax.Array


jax.tree_util.register_pytree_node(
    CellStats,
    lambda s: (tuple(s[1:]), s.targets),
    lambda targets, children: CellStats(targets, *children),
)


def pairs(n_targets: int) -> list:
    """The pairs ``(tm, um)``, ``tm < um``, of targets with missing cells (``pair_index`` order)."""
    return [(a, b) for a in range(n_targets) for b in range(a + 1, n_targets)]


def available(data, row_pattern) -> bool:
    """Whether :func:`prepare` builds statistics for these arrays (where the chains-innermost
    sweep is used, :func:`pan_chains.applies`): float64 data, the per-pattern missing draw, and
    clusters of fewer than ``conditionals.DOT_MIN_LENGTH`` padded rows in all.

    Float32 keeps the row-by-row sums: ``sum y~ y~^T`` less the fitted part loses the digits of the
    ratio of a target's spread to its residual variation, which float32 (7 digits) cannot spare
    for targets with strongly clustered data or large means (a model without intercept).

    Only for data on the CPU: on a GPU the vmapped kernel was as fast or faster (NVIDIA H200, the
    Introduction model, ms per iteration with 64 / 1,024 / 4,096 chains: 0.082 / 0.247 / 2.06
    against 0.075 / 0.275 / 1.22), and compiled faster (5.4 against 2.6 s at 4,096 chains)."""
    from .conditionals import DOT_MIN_LENGTH

    return (row_pattern is not None and data.y.dtype == np.float64 and _on_cpu(data.y)
            and data.y.shape[2] * data.y.shape[3] < DOT_MIN_LENGTH)


def _on_cpu(array) -> bool:
    """Whether ``array`` (a JAX array, or a host array bound for the default backend) lives on
    CPU devices."""
    devices = getattr(getattr(array, "sharding", None), "device_set", None)
    if devices:
        return all(d.platform == "cpu" for d in devices)
    return jax.default_backend() == "cpu"


def prepare(data, row_pattern, xtx_inv) -> CellStats:
    """The :class:`CellStats` of one data set (host NumPy, float64, then cast; ``data`` a
    ``ModelArrays``, ``row_pattern`` (G, J, L) from ``missing_patterns.row_patterns``, ``xtx_inv``
    (G, p, p))."""
    d = jax.device_get(data)
    y, obs = np.asarray(d.y, np.float64), np.asarray(d.obs, bool)
    x, z = np.asarray(d.x, np.float64), np.asarray(d.z, np.float64)
    used = np.asarray(d.used, bool)
    row_pattern = np.asarray(row_pattern)
    miss_index, miss_valid = np.asarray(d.miss_index), np.asarray(d.miss_valid)
    n_groups, r, n_clusters, n_rows = y.shape
    n_slots = miss_index.shape[1]
    per_target = n_clusters * n_rows

    # beta0: least squares on the used rows with missing cells at the observed mean
    mean = np.where(obs, y, 0.0).sum(axis=(2, 3)) / np.maximum(obs.sum(axis=(2, 3)), 1)
    filled = np.where(obs, y, mean[:, :, None, None])
    xu = np.where(used[:, None], x, 0.0)
    beta0 = np.einsum("gpk,gkjl,gtjl->gpt", np.asarray(xtx_inv, np.float64), xu, filled)
    offset = np.einsum("gkjl,gkt->gtjl", x, beta0)
    o = np.where(obs & used[:, None], y - offset, 0.0)
    yy0 = np.einsum("gtjl,gsjl->gts", o, o)
    xy0 = np.einsum("gkjl,gtjl->gkt", x, o)
    zy0 = np.einsum("gkjl,gtjl->gktj", z, o)
    ztx = np.einsum("gkjl,gmjl->gkmj", np.where(used[:, None], z, 0.0), x)

    target_of = np.where(miss_valid, miss_index // per_target, -1)  # (G, M)
    targets = tuple(int(t) for t in range(r) if np.any(target_of == t)) or (0,)
    n_tm = len(targets)
    counts = [[int(np.sum(target_of[g] == t)) for t in targets] for g in range(n_groups)]
    n_cells = max(1, max(max(c) for c in counts))
    slot = np.full((n_groups, n_tm, n_cells), n_slots, np.int64)  # layout slot of every cell
    for g in range(n_groups):  # host, once per run; G and r are small
        for tm, t in enumerate(targets):
            sel = np.flatnonzero(target_of[g] == t)  # layout order: by cluster, then row
            slot[g, tm, : len(sel)] = sel
    valid = slot < n_slots
    padded_index = np.concatenate([miss_index, np.zeros((n_groups, 1), miss_index.dtype)], axis=1)
    cell = np.where(valid, np.take_along_axis(padded_index, slot.reshape(n_groups, -1), 1).reshape(slot.shape), 0)
    row = cell % per_target  # (G, r_m, Mt) row of the cell in the (J, L) grid
    cluster = row // n_rows

    def at_rows(a):  # (G, k, J, L) -> (G, k, r_m, Mt) at the cells' rows, 0 for padding
        flat = a.reshape(a.shape[:2] + (per_target,))
        out = np.take_along_axis(flat, np.broadcast_to(row.reshape(n_groups, 1, -1), a.shape[:2] + (row[0].size,)), 2)
        return np.where(valid[:, None], out.reshape(a.shape[:2] + row.shape[1:]), np.zeros((), a.dtype))

    weight = np.where(valid, np.take_along_axis(used.reshape(n_groups, -1), row.reshape(n_groups, -1), 1).reshape(row.shape), False)
    place = np.full((n_groups, r * per_target), n_tm * n_cells, np.int64)
    g_i, tm_i, i_i = np.nonzero(valid)
    place[g_i, cell[g_i, tm_i, i_i]] = tm_i * n_cells + i_i
    slot_of_cell = np.full((n_groups, r * per_target + 1), n_slots, np.int64)
    for g in range(n_groups):
        slot_of_cell[g, miss_index[g][miss_valid[g]]] = np.flatnonzero(miss_valid[g])
    noise_index = np.full((n_groups, n_tm, n_tm, n_cells), n_slots, np.int64)
    for jm, t in enumerate(targets):
        partner = np.where(valid, t * per_target + row, r * per_target)
        noise_index[:, jm] = np.take_along_axis(slot_of_cell, partner.reshape(n_groups, -1), 1).reshape(row.shape)
    pair_list = pairs(n_tm)
    pair_index = np.full((n_groups, max(len(pair_list), 1), n_cells), n_tm * n_cells, np.int64)
    for k, (tm, um) in enumerate(pair_list):
        partner = np.where(valid[:, tm], targets[um] * per_target + row[:, tm], r * per_target)
        position = np.take_along_axis(np.concatenate([place, np.full((n_groups, 1), n_tm * n_cells)], 1), partner, 1)
        pair_index[:, k] = position
    pattern = np.where(valid, np.take_along_axis(row_pattern.reshape(n_groups, -1), row.reshape(n_groups, -1), 1).reshape(row.shape), 0)
    offset_rows = at_rows(offset)  # (G, r, r_m, Mt)
    offset_own = np.stack([offset_rows[:, t, tm] for tm, t in enumerate(targets)], axis=1)

    dtype = data.y.dtype
    return jax.device_put(CellStats(
        targets=targets,
        beta0=np.asarray(beta0, dtype), yy0=np.asarray(yy0, dtype), xy0=np.asarray(xy0, dtype),
        zy0=np.asarray(zy0, dtype), ztx=np.asarray(ztx, dtype), valid=valid,
        cell=np.asarray(cell, np.int32), place=np.asarray(place, np.int32), cluster=np.asarray(cluster, np.int32),
        weight=np.asarray(weight, dtype), x=np.asarray(at_rows(x), dtype), z=np.asarray(at_rows(z), dtype),
        offset=np.asarray(offset_own, dtype), y_row=np.asarray(at_rows(np.where(obs, y, 0.0)), dtype),
        o_row=np.asarray(at_rows(o) * weight[:, None], dtype), pattern=np.asarray(pattern, np.int32),
        noise_index=np.asarray(noise_index, np.int32), pair_index=np.asarray(pair_index, np.int32),
    ))
