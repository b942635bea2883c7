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

__all__ = ["rank_scores", "sort_order", "z_scatter", "z_table", "folded_chain_sums"]

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


@lru_cache(maxsize=4)
def _plain_scores(n: int):
    """Contiguous Blom scores of the integer ranks 1..n and their squares (no ties)."""
    z = np.ascontiguousarray(z_table(n)[0::2])
    return z, z * z


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


def _exact_groups(keys: np.ndarray, bits: int):
    """Start and end (inclusive) of the runs of sorted ``keys`` that agree above the low bits."""
    diff = keys[1:] ^ keys[:-1]
    same = diff < np.uint64(1 << bits)
    if not same.any():
        return None
    c = np.flatnonzero(same)
    first = np.ones(len(c), bool)
    first[1:] = c[1:] != c[:-1] + 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:] - 1, len(c) - 1]
    return c[starts], c[ends] + 1


def folded_chain_sums(v: np.ndarray, s: np.ndarray, order: np.ndarray, n: int, table):
    """Per-chain sum and sum of squares of the folded Blom scores of draws ``v`` (K, M * n).

    The folded draws ``|v - median|`` are ranked without a second full sort: read outwards from
    the median, the sorted draws ``s`` (with argsort ``order``) form two ascending runs of folded
    values, which a stable sort (timsort) merges in linear time. As in :func:`sort_order`, each
    ``uint64`` key keeps the high bits of a folded value and carries the draw's position in its low
    bits, so the merged keys name each draw's chain directly. Keys that agree in the kept bits
    (rare for continuous draws) are put in exact order with their exact folded values, and exact
    ties share their average rank.

    Returns:
        (sums, squares), each (K, M).
    """
    k, size = s.shape
    m = size // n
    h = size // 2
    bits = max(1, int(size - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    z_plain, z_plain_sq = _plain_scores(size)
    sums = np.empty((k, m))
    squares = np.empty((k, m))
    folded = np.empty(size)
    keys = np.empty(size, dtype=np.uint64)
    for row in range(k):
        med = (s[row, h - 1] + s[row, h]) / 2.0 if size % 2 == 0 else s[row, h]
        np.subtract(med, s[row, h - 1 :: -1], out=folded[:h])
        np.subtract(s[row, h:], med, out=folded[h:])
        np.abs(folded, out=folded)  # also turns -0.0 into 0.0
        np.bitwise_and(folded.view(np.uint64), ~mask, out=keys)
        keys[:h] |= order[row, h - 1 :: -1].view(np.uint64)
        keys[h:] |= order[row, h:].view(np.uint64)
        keys.sort(kind="stable")  # two ascending runs: a linear-time merge
        groups = _exact_groups(keys, bits)
        keys &= mask
        draw = keys.view(np.int64)
        chain = draw // n
        sums[row] = np.bincount(chain, weights=z_plain, minlength=m)
        squares[row] = np.bincount(chain, weights=z_plain_sq, minlength=m)
        if groups is not None:
            _exact_within_groups(sums[row], squares[row], v[row], med, draw, n, table, groups)
    return sums, squares


def _exact_within_groups(sums, squares, v, med, draw, n, table, groups):
    """Correct the chain sums where runs of merged keys agree in the kept bits (in place).

    Inside each run the draws are put in the order of their exact folded values, and equal
    exact values share their average rank; only the run's scores are recomputed.
    """
    starts, ends = groups
    length = ends - starts + 1
    offsets = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    cols = np.repeat(starts, length) + offsets  # merged positions inside the runs
    gid = np.repeat(np.arange(len(starts)), length)
    members = draw[cols]
    exact = np.abs(v[members] - med)
    perm = np.lexsort((exact, gid))
    exact, new_members = exact[perm], members[perm]
    index = 2 * cols  # table index 2 * rank - 2 of merged position `cols` (0-based)
    tie = (exact[1:] == exact[:-1]) & (gid[1:] == gid[:-1])
    if tie.any():  # runs of equal exact values share (first + last position) as table index
        t = np.flatnonzero(tie)
        first = np.ones(len(t), bool)
        first[1:] = t[1:] != t[:-1] + 1
        run_start = t[first]
        run_end = np.r_[t[np.flatnonzero(first)[1:] - 1], t[-1]] + 1
        size = run_end - run_start + 1
        inside = np.repeat(run_start, size) + (
            np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size))
        index[inside] = np.repeat(cols[run_start] + cols[run_end], size)
    z_old, z_new = table[2 * cols], table[index]
    m = len(sums)
    sums += np.bincount(new_members // n, weights=z_new, minlength=m)
    sums -= np.bincount(members // n, weights=z_old, minlength=m)
    squares += np.bincount(new_members // n, weights=z_new * z_new, minlength=m)
    squares -= np.bincount(members // n, weights=z_old * z_old, minlength=m)


def rank_scores(xs: np.ndarray):
    """Bulk z-scores of split draws xs (K, M, n), per-chain folded sums, sorted draws and order.

    Returns:
        ``(z_bulk, (fold_sums, fold_squares), s, order)``: the bulk Blom scores (K, M, n), the
        per-chain sum and sum of squares of the folded Blom scores (K, M) each, the sorted draws
        (K, S) and their argsort (K, S) into ``xs.reshape(K, S)``.
    """
    k, m, n = xs.shape
    size = m * n
    flat = xs.reshape(k, size)
    table = z_table(size)
    order, s = sort_order(flat)
    z_bulk = z_scatter(s, order, table)
    fold = folded_chain_sums(flat, s, order, n, table)
    return z_bulk.reshape(k, m, n), fold, s, order
