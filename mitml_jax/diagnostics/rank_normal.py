"""Rank normalisation (Vehtari et al. 2021): Blom scores of pooled draws, ties averaged.

Every parameter's draws are sorted once through an order-preserving ``uint64`` image that carries
each draw's position in its low bits (an integer sort is much faster than a float argsort);
draws that differ only in the dropped bits are put back in order by odd-even transposition.
The folded draws ``|x - median|`` are ranked from the sorted draws, and
``Phi^-1((r - 3/8)/(S + 1/4))`` is read from a table indexed by the (half-integer) rank, so
``ndtri`` runs once per sample size, not once per draw. Matches scipy's
``rankdata(method="average")`` and ArviZ's ``_z_scale`` exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["rank_scores", "sort_order", "z_scatter", "z_table"]

_SIGN = np.uint64(1 << 63)
_REPAIR_SWEEPS = 8  # odd-even passes before a row falls back to a full argsort


def sort_order(v: np.ndarray):
    """Argsort and sorted values of the rows of ``v`` (K, S), finite float64.

    One ``uint64`` sort replaces the (slower) float argsort: the order-preserving integer image of
    each value keeps its high bits and carries the draw's position in its low bits. Values that
    differ only in the dropped low bits can come out swapped; adjacent inversions are repaired
    by odd-even transposition passes (they only occur inside such tiny runs).
    """
    k, n = v.shape
    bits = max(1, int(n - 1).bit_length())
    if bits > 40:  # pragma: no cover - more than 10^12 draws
        order = np.argsort(v, axis=1)
        return order, np.take_along_axis(v, order, axis=1)
    b = np.ascontiguousarray(v, dtype=np.float64).view(np.uint64)
    keys = b >> np.uint64(63)  # order-preserving image: negative -> ~b, positive -> b | sign
    np.negative(keys, out=keys)
    keys |= _SIGN
    keys ^= b
    mask = np.uint64((1 << bits) - 1)
    keys &= ~mask
    keys |= np.arange(n, dtype=np.uint64)
    keys.sort(axis=1)
    keys &= mask
    order = keys.view(np.int64)  # positions < 2**40: the same numbers, no copy
    s = np.empty_like(v)
    for row in range(k):  # 1-D takes are NumPy's fastest gather
        np.take(v[row], order[row], out=s[row])
    for sweep in range(_REPAIR_SWEEPS + 1):
        bad = s[:, 1:] < s[:, :-1]
        if not bad.any():
            return order, s
        if sweep == _REPAIR_SWEEPS:  # long runs of near-equal draws: argsort those rows
            for row in np.flatnonzero(bad.any(axis=1)):
                order[row] = np.argsort(v[row], kind="stable")
                s[row] = v[row, order[row]]
            return order, s
        r, c = np.nonzero(bad)
        keep = (c % 2) == (sweep % 2)
        r, c = r[keep], c[keep]
        s[r, c], s[r, c + 1] = s[r, c + 1], s[r, c].copy()
        order[r, c], order[r, c + 1] = order[r, c + 1], order[r, c].copy()
    return order, s


@lru_cache(maxsize=4)
def z_table(n: int) -> np.ndarray:
    """Blom scores Phi^-1((r - 3/8)/(n + 1/4)) for half-integer ranks r = 1, 1.5, ..., n."""
    from scipy.special import ndtri

    return ndtri((np.arange(2, 2 * n + 1) / 2.0 - 3.0 / 8.0) / (n - 2 * (3.0 / 8.0) + 1))


def z_scatter(s: np.ndarray, order: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Blom-normal scores of the draws whose sorted rows are ``s`` with argsort ``order``.

    Ties share their average rank (scipy ``rankdata(method="average")``), fixed sparsely.
    """
    k, n = s.shape
    z_sorted = np.broadcast_to(table[0::2], (k, n))
    tie = s[:, 1:] == s[:, :-1]
    if tie.any():
        z_sorted = np.array(z_sorted)
        r, c = np.nonzero(tie)
        first = np.ones(len(c), bool)
        first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1] + 1)
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:] - 1, len(c) - 1]
        run_r, start_c, end_c = r[starts], c[starts], c[ends]
        length = end_c + 2 - start_c  # a run of t tie flags covers t + 1 draws
        avg_index = (start_c + end_c + 1)  # 2 * average rank - 2, 0-based positions
        offsets = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
        rows = np.repeat(run_r, length)
        cols = np.repeat(start_c, length) + offsets
        z_sorted[rows, cols] = table[np.repeat(avg_index, length)]
    z = np.empty((k, n))
    for row in range(k):  # 1-D scatter per row (cheaper than put_along_axis's index grids)
        z[row, order[row]] = z_sorted[row]
    return z


def rank_scores(xs: np.ndarray):
    """Bulk and folded z-scores of split draws xs (K, M, n); also their sorted values (K, S)."""
    k, m, n = xs.shape
    size = m * n
    flat = xs.reshape(k, size)
    table = z_table(size)
    order, s = sort_order(flat)
    z_bulk = z_scatter(s, order, table)
    if size % 2 == 0:
        med = (s[:, size // 2 - 1] + s[:, size // 2]) / 2.0
    else:
        med = s[:, size // 2]
    folded = np.abs(s - med[:, None])  # in sorted order of the draws
    order_f, f_sorted = sort_order(folded)
    del folded
    for row in range(k):  # positions in sorted order -> positions among the draws
        np.take(order[row], order_f[row], out=order_f[row])
    z_fold = z_scatter(f_sorted, order_f, table)
    return z_bulk.reshape(k, m, n), z_fold.reshape(k, m, n), s


