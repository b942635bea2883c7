"""Device arrays and static configuration of one jomo problem (one group).

Rows are sorted by cluster and padded to ``(J, L)`` (``L`` = largest cluster); a single-level model
is one cluster of all rows. Level-1 columns are laid out as jomo's: continuous targets first,
then the ``K_c - 1`` latent columns of each categorical target. Level-2 targets live at cluster
level ``(J, r2)``.

This is a private arrays layer for the jomo kernels (pan's ``arrays/`` layer had not landed
when it was written); it takes plain NumPy inputs so it is independent of the spec module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["JomoConfig", "JomoArrays", "JomoLayout", "build_jomo_arrays", "row_index"]


@dataclass(frozen=True)
class JomoConfig:
    """Static shape information closed over by the kernel (hashable)."""

    r: int  # level-1 columns (continuous + latent)
    n_con: int
    cat_blocks: tuple  # ((pos, k), ...) per level-1 categorical target
    r2: int  # level-2 columns
    n_con2: int
    cat2_blocks: tuple  # ((pos within level-2 columns, k), ...)
    p: int
    q: int
    p2: int
    multilevel: bool
    random_l1: str = "none"
    n_tries: int = 8
    jomo_compat: bool = True
    exact_beta2: bool = False  # True: full-conditional beta2 step instead of jomo's marginal GLS

    @property
    def d1(self) -> int:
        return self.r * self.q

    @property
    def dim_psi(self) -> int:
        return self.r * self.q + self.r2


class JomoArrays(NamedTuple):
    y_obs: jnp.ndarray  # (J, L, r) observed values (continuous), 0 elsewhere
    miss: jnp.ndarray  # (J, L, r) bool, True where imputed (padding False)
    row_mask: jnp.ndarray  # (J, L)
    x: jnp.ndarray  # (J, L, p)
    z: jnp.ndarray  # (J, L, q)
    codes: jnp.ndarray  # (J, L, ncat) int category codes, -1 = missing/padding
    xtx_inv: jnp.ndarray  # (p, p)
    xtx_inv_chol: jnp.ndarray  # (p, p)
    ztz: jnp.ndarray  # (J, q, q)
    n_rows: jnp.ndarray  # scalar, rows of this group
    cluster_size: jnp.ndarray  # (J,)
    miss_rows: jnp.ndarray  # (M,) flat indices into J*L of rows with a missing cell, ascending
    miss_pattern: jnp.ndarray  # (M,) pattern ids
    miss_cells: jnp.ndarray  # (M, r) position of each missing cell among all K1 of them, K1 if observed
    patterns: jnp.ndarray  # (P, r) bool
    pattern_cluster: jnp.ndarray  # (P,) cluster of the first row with each pattern (jomo hr)
    x2: jnp.ndarray  # (J, p2)
    y2_obs: jnp.ndarray  # (J, r2)
    miss2: jnp.ndarray  # (J, r2) bool
    codes2: jnp.ndarray  # (J, ncat2)
    x2tx2_inv: jnp.ndarray
    x2tx2_inv_chol: jnp.ndarray
    miss2_clusters: jnp.ndarray  # (M2,)
    miss2_pattern: jnp.ndarray  # (M2,)
    patterns2: jnp.ndarray  # (P2, dim_psi) bool
    miss2_cells: jnp.ndarray  # (M2, dim_psi) as miss_cells, over the K2 missing level-2 cells
    report_l1: jnp.ndarray  # (K1,) flat indices into y (J*L*r) of all missing level-1 cells
    report_l2: jnp.ndarray  # (K2,) flat indices into y2 (J*r2) of all missing level-2 cells
    miss_row_index: jnp.ndarray  # (J*L,) position of each flat row in miss_rows, M if absent
    miss2_cluster_index: jnp.ndarray  # (J,) position of each cluster in miss2_clusters, M2 if absent


@dataclass(frozen=True)
class JomoLayout:
    """Host bookkeeping to map padded positions back to the group's rows."""

    row_cluster: np.ndarray  # (n,) cluster of each input row
    row_slot: np.ndarray  # (n,) position within the padded cluster
    n_clusters: int
    max_size: int
    report_l1: np.ndarray  # (K1, 2) (input row, level-1 column) of each reported value
    report_l2: np.ndarray  # (K2, 2) (cluster, level-2 column) of each reported value


def _patterns(miss: np.ndarray):
    """Unique missingness patterns (always at least one) and each row's pattern id."""
    if miss.shape[0] == 0:
        return np.zeros((1, miss.shape[1]), dtype=bool), np.zeros(0, dtype=np.int32)
    pats, ids = np.unique(miss, axis=0, return_inverse=True)
    return pats.astype(bool), ids.reshape(-1).astype(np.int32)


def _cell_positions(miss: np.ndarray) -> np.ndarray:
    """Row-major position of each True cell among all True cells; their count where False."""
    pos = np.cumsum(miss.ravel()).reshape(miss.shape) - 1
    return np.where(miss, pos, int(miss.sum())).astype(np.int32)


def row_index(rows: np.ndarray, n: int) -> np.ndarray:
    """(n,) int32: the position of each of ``n`` rows in the list ``rows`` (distinct), ``len(rows)``
    for rows not in it (the sweep's gather form of a row scatter)."""
    out = np.full(n, len(rows), dtype=np.int32)
    out[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows), dtype=np.int32)
    return out


def _inv_and_chol(a: np.ndarray):
    inv = np.linalg.inv(a)
    inv = 0.5 * (inv + inv.T)
    return inv, np.linalg.cholesky(inv)


def build_jomo_arrays(y_con, y_cat, n_cats, x, z=None, cluster=None, y2_con=None, y2_cat=None,
                      n_cats2=(), x2=None, random_l1="none", n_tries=8, jomo_compat=True):
    """Build :class:`JomoArrays`, :class:`JomoConfig` and :class:`JomoLayout` for one group.

    Args:
        y_con: (n, rc) continuous level-1 targets with NaN.
        y_cat: (n, ncat) integer codes 0..K_c-1 of the *observed* categories, -1 = missing.
        n_cats: K_c per categorical target (each >= 2).
        x, z: (n, p), (n, q) design matrices (``z`` None for single-level).
        cluster: (n,) codes 0..J-1, None for single-level.
        y2_con, y2_cat, n_cats2, x2: level-2 targets and predictors at level-1 rows.
    """
    n = x.shape[0]
    y_con = np.asarray(y_con, float).reshape(n, -1)
    y_cat = np.asarray(y_cat, np.int64).reshape(n, -1)
    multilevel = cluster is not None
    if not multilevel:
        cluster = np.zeros(n, dtype=np.int64)
        z = np.zeros((n, 0))
    cluster = np.asarray(cluster, np.int64)
    n_clusters = int(cluster.max()) + 1
    sizes = np.bincount(cluster, minlength=n_clusters)
    max_size = int(sizes.max())
    order = np.argsort(cluster, kind="stable")
    slot = np.empty(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    slot[order] = np.arange(n) - starts[cluster[order]]

    n_con = y_con.shape[1]
    cat_blocks, pos = [], n_con
    for k in n_cats:
        cat_blocks.append((pos, int(k) - 1))
        pos += int(k) - 1
    r = pos
    y_full = np.zeros((n, r))
    miss = np.zeros((n, r), dtype=bool)
    y_full[:, :n_con] = np.nan_to_num(y_con)
    miss[:, :n_con] = np.isnan(y_con)
    for c, (p0, k) in enumerate(cat_blocks):
        miss[:, p0 : p0 + k] = (y_cat[:, c] < 0)[:, None]

    def pad(a, fill=0.0):
        out = np.full((n_clusters, max_size) + a.shape[1:], fill, dtype=a.dtype)
        out[cluster, slot] = a
        return out

    row_mask = pad(np.ones(n))
    xp, zp = pad(np.asarray(x, float)), pad(np.asarray(z, float))
    xtx_inv, xtx_inv_chol = _inv_and_chol(x.T @ x)
    ztz = np.einsum("jlq,jlk->jqk", zp, zp)
    rows = np.nonzero(miss.any(axis=1))[0]
    rows = rows[np.argsort(cluster[rows] * max_size + slot[rows], kind="stable")]  # sorted scatter
    pats, pat_id = _patterns(miss[rows])
    flat = cluster[rows] * max_size + slot[rows]
    pattern_cluster = np.zeros(pats.shape[0], dtype=np.int32)
    for k in range(pats.shape[0]):
        hit = cluster[rows][pat_id == k]
        pattern_cluster[k] = hit.min() if hit.size else 0

    # level 2: one row per cluster (values are constant within clusters)
    if y2_con is None:
        y2_con = np.zeros((n, 0))
    if y2_cat is None:
        y2_cat = np.zeros((n, 0), dtype=np.int64)
    if x2 is None:
        x2 = np.ones((n, 1))
    y2_con = np.asarray(y2_con, float).reshape(n, -1)
    y2_cat = np.asarray(y2_cat, np.int64).reshape(n, -1)
    first = order[starts]
    n_con2 = y2_con.shape[1]
    cat2_blocks, pos2 = [], n_con2
    for k in n_cats2:
        cat2_blocks.append((pos2, int(k) - 1))
        pos2 += int(k) - 1
    r2 = pos2
    y2c = np.full((n_clusters, n_con2), np.nan)
    codes2 = np.full((n_clusters, y2_cat.shape[1]), -1, dtype=np.int64)
    for col in range(n_con2):  # observed value of the cluster = any non-missing row
        vals = y2_con[:, col]
        ok = ~np.isnan(vals)
        y2c[cluster[ok], col] = vals[ok]
    for col in range(y2_cat.shape[1]):
        vals = y2_cat[:, col]
        ok = vals >= 0
        codes2[cluster[ok], col] = vals[ok]
    y2_full = np.zeros((n_clusters, r2))
    miss2 = np.zeros((n_clusters, r2), dtype=bool)
    y2_full[:, :n_con2] = np.nan_to_num(y2c)
    miss2[:, :n_con2] = np.isnan(y2c)
    for c, (p0, k) in enumerate(cat2_blocks):
        miss2[:, p0 : p0 + k] = (codes2[:, c] < 0)[:, None]
    x2c = np.asarray(x2, float)[first]
    p2 = x2c.shape[1]
    q = zp.shape[2]
    if r2 > 0:
        x2tx2_inv, x2tx2_inv_chol = _inv_and_chol(x2c.T @ x2c)
    else:
        x2tx2_inv = x2tx2_inv_chol = np.eye(p2)
    clusters2 = np.nonzero(miss2.any(axis=1))[0]
    miss2_full = np.concatenate([np.zeros((n_clusters, r * q), bool), miss2], axis=1)
    pats2, pat2_id = _patterns(miss2_full[clusters2])

    config = JomoConfig(
        r=r, n_con=n_con, cat_blocks=tuple(cat_blocks), r2=r2, n_con2=n_con2,
        cat2_blocks=tuple(cat2_blocks), p=xp.shape[2], q=q, p2=p2, multilevel=multilevel,
        random_l1=random_l1, n_tries=n_tries, jomo_compat=jomo_compat,
    )
    # NumPy here, one device_put below: jnp.asarray compiles a small program per array shape
    arrays = JomoArrays(
        y_obs=np.asarray(pad(y_full)), miss=np.asarray(pad(miss, False)),
        row_mask=np.asarray(row_mask), x=np.asarray(xp), z=np.asarray(zp),
        codes=np.asarray(pad(y_cat, -1).astype(np.int32)),
        xtx_inv=np.asarray(xtx_inv), xtx_inv_chol=np.asarray(xtx_inv_chol),
        ztz=np.asarray(ztz), n_rows=np.asarray(float(n)),
        cluster_size=np.asarray(sizes.astype(float)),
        miss_rows=np.asarray(flat.astype(np.int32)), miss_pattern=np.asarray(pat_id),
        miss_cells=np.asarray(_cell_positions(miss[rows])),
        patterns=np.asarray(pats), pattern_cluster=np.asarray(pattern_cluster), x2=np.asarray(x2c), y2_obs=np.asarray(y2_full),
        miss2=np.asarray(miss2), codes2=np.asarray(codes2.astype(np.int32)),
        x2tx2_inv=np.asarray(x2tx2_inv), x2tx2_inv_chol=np.asarray(x2tx2_inv_chol),
        miss2_clusters=np.asarray(clusters2.astype(np.int32)),
        miss2_pattern=np.asarray(pat2_id), patterns2=np.asarray(pats2),
        miss2_cells=np.asarray(_cell_positions(miss2_full[clusters2])),
        report_l1=np.zeros(0, np.int32), report_l2=np.zeros(0, np.int32),
        miss_row_index=row_index(flat, n_clusters * max_size),
        miss2_cluster_index=row_index(clusters2, n_clusters),
    )
    rep_rows, rep_cols = np.nonzero(miss)
    rep_flat = ((cluster[rep_rows] * max_size + slot[rep_rows]) * r + rep_cols).astype(np.int32)
    rep2_cl, rep2_cols = np.nonzero(miss2)
    rep2_flat = (rep2_cl * r2 + rep2_cols).astype(np.int32)
    arrays = jax.device_put(arrays._replace(report_l1=np.asarray(rep_flat), report_l2=np.asarray(rep2_flat)))
    layout = JomoLayout(row_cluster=cluster, row_slot=slot, n_clusters=n_clusters,
                        max_size=max_size, report_l1=np.column_stack([rep_rows, rep_cols]),
                        report_l2=np.column_stack([rep2_cl, rep2_cols]))
    return arrays, config, layout
