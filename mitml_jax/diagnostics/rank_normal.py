"""Rank normalisation (Vehtari et al. 2021): Blom scores of pooled draws, ties averaged.

Every parameter's draws are sorted once through an order-preserving ``uint64`` image that carries
each draw's position in its low bits (an integer sort is much faster than a float argsort);
only draws whose images agree in the kept bits can be misordered or tied, and those short runs,
found on the sorted keys, are put in exact order with their values. The folded draws
``|x - median|`` are ranked by a linear-time merge of the two halves of the sorted draws.
``Phi^-1((r - 3/8)/(S + 1/4))`` is read from a table indexed by the (half-integer) rank, so
``ndtri`` runs once per sample size, not once per draw. Matches scipy's
``rankdata(method="average")`` and ArviZ's ``_z_scale`` exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "rank_scores", "sort_order", "z_scatter", "z_table", "folded_chain_sums", "scratch",
    "first_draw_shift",
]

_SIGN = np.uint64(1 << 63)


def scratch(work, name: str, shape, dtype=np.float64) -> np.ndarray:
    """A reusable uninitialised buffer from the dict ``work`` (a new array when ``work`` is None).

    Large temporaries are reused between parameters: fresh memory costs a page fault per page,
    which on some machines costs more than the arithmetic done in it.
    """
    shape = tuple(np.atleast_1d(shape))
    if work is None:
        return np.empty(shape, dtype)
    buf = work.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = work[name] = np.empty(shape, dtype)
    return buf


def first_draw_shift(first):
    """The shift the diagnostics subtract from draws before means and variances: the first draw(s)
    ``first``, 0 where not finite. A mean large against the spread (``1e12`` plus noise of
    ``1e-3``) then keeps its digits; see :func:`.mitml_stats.segment_moments`."""
    return np.where(np.isfinite(first), first, 0.0)


def _runs(flags: np.ndarray):
    """(first, last) indices of the runs of True in a 1-D bool array, or None if there are none."""
    c = np.flatnonzero(flags)
    if not len(c):
        return None
    first = np.ones(len(c), bool)
    first[1:] = c[1:] != c[:-1] + 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:] - 1, len(c) - 1]
    return c[starts], c[ends]


def _expand(starts: np.ndarray, ends: np.ndarray):
    """Positions covered by the inclusive ranges [starts, ends] and the index of their range."""
    length = ends - starts + 1
    offsets = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    return np.repeat(starts, length) + offsets, np.repeat(np.arange(len(starts)), length)


def _exact_groups(keys: np.ndarray, bits: int, work=None):
    """First and last positions of the runs of sorted ``keys`` that agree above the low bits."""
    diff = np.bitwise_xor(keys[1:], keys[:-1], out=scratch(work, "xor", len(keys) - 1, np.uint64))
    flags = np.less(diff, np.uint64(1 << bits), out=scratch(work, "flags", len(diff), bool))
    runs = _runs(flags)
    return None if runs is None else (runs[0], runs[1] + 1)


def _tie_runs(values: np.ndarray, gid: np.ndarray, cols: np.ndarray):
    """First and last sorted positions of runs of equal ``values`` (sorted within groups)."""
    runs = _runs((values[1:] == values[:-1]) & (gid[1:] == gid[:-1]))
    return None if runs is None else (cols[runs[0]], cols[runs[1] + 1])


def sort_order(v: np.ndarray, return_ties: bool = False, work=None):
    """Argsort and sorted values of the rows of ``v`` (K, S), finite float64.

    One ``uint64`` sort replaces the (slower) float argsort: the order-preserving integer image of
    each value keeps its high bits and carries the draw's position in its low bits. Only draws
    whose images agree in the kept bits can come out of order or be tied; those short runs are
    found on the sorted keys and put in exact order with their values.

    With ``return_ties``, also returns per row None or the (first, last) sorted positions of the
    runs of exactly equal values (``-0.0`` equals ``0.0``). ``work``: dict of reusable buffers.
    """
    k, n = v.shape
    bits = max(1, int(n - 1).bit_length())
    if bits > 40:  # pragma: no cover - more than 10^12 draws
        order = np.argsort(v, axis=1, kind="stable")
        s = np.take_along_axis(v, order, axis=1)
        ties = [_tie_runs(r, np.zeros(n, int), np.arange(n)) for r in s]
        return (order, s, ties) if return_ties else (order, s)
    b = np.ascontiguousarray(v, dtype=np.float64).view(np.uint64)
    keys = scratch(work, "keys", (k, n), np.uint64)
    # order-preserving image: negative -> ~b, positive -> b | sign (arithmetic shift: 0 or -1)
    np.right_shift(b.view(np.int64), 63, out=keys.view(np.int64))
    keys |= _SIGN
    keys ^= b
    mask = np.uint64((1 << bits) - 1)
    keys &= ~mask
    keys |= _positions(n)
    keys.sort(axis=1)
    groups = [_exact_groups(keys[row], bits, work) for row in range(k)]
    keys &= mask
    order = keys.view(np.int64)  # positions < 2**40: the same numbers, no copy
    s = scratch(work, "sorted", (k, n))
    ties = []
    for row in range(k):  # 1-D takes are NumPy's fastest gather
        np.take(v[row], order[row], out=s[row], mode="clip")  # "raise" copies through a buffer
        runs = None
        if groups[row] is not None:
            cols, gid = _expand(*groups[row])
            exact = s[row, cols]
            perm = np.lexsort((exact, gid))
            order[row, cols] = order[row, cols[perm]]
            s[row, cols] = exact = exact[perm]
            runs = _tie_runs(exact, gid, cols)
        ties.append(_with_signed_zeros(s[row], runs))
    return (order, s, ties) if return_ties else (order, s)


def _with_signed_zeros(s: np.ndarray, runs):
    """Tie runs plus the run of zeros when both -0.0 and 0.0 occur (their images differ)."""
    lo, hi = np.searchsorted(s, 0.0, side="left"), np.searchsorted(s, 0.0, side="right") - 1
    if hi <= lo or not (np.signbit(s[lo : hi + 1]).any() and not np.signbit(s[lo : hi + 1]).all()):
        return runs
    if runs is None:
        return np.array([lo]), np.array([hi])
    keep = (runs[1] < lo) | (runs[0] > hi)
    starts, ends = np.r_[runs[0][keep], lo], np.r_[runs[1][keep], hi]
    order = np.argsort(starts)
    return starts[order], ends[order]


@lru_cache(maxsize=4)
def _positions(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint64)


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


def z_scatter(s: np.ndarray, order: np.ndarray, table: np.ndarray, ties=None,
              work=None) -> np.ndarray:
    """Blom-normal scores of the draws whose sorted rows are ``s`` with argsort ``order``.

    Ties share their average rank (scipy ``rankdata(method="average")``), fixed sparsely;
    ``ties``: the tie runs from :func:`sort_order` (found from ``s`` when None).
    """
    k, n = s.shape
    if ties is None:
        ties = [_tie_runs(row, np.zeros(n, np.int8), np.arange(n)) for row in s]
    z_plain = _plain_scores(n)[0]
    z = scratch(work, "z", (k, n))
    for row in range(k):  # 1-D scatter per row (cheaper than put_along_axis's index grids)
        z_sorted = z_plain
        if ties[row] is not None:
            z_sorted = z_plain.copy()
            lo, hi = ties[row]
            cols, gid = _expand(lo, hi)
            z_sorted[cols] = table[(lo + hi)[gid]]  # table index 2 * average rank - 2
        z[row, order[row]] = z_sorted
    return z


def folded_chain_sums(v: np.ndarray, s: np.ndarray, order: np.ndarray, n: int, table,
                      work=None):
    """Per-chain sum and sum of squares of the folded Blom scores of draws ``v`` (K, M * n).

    The folded draws ``|v - median|`` are ranked without a second full sort: read outwards from
    the median, the sorted draws ``s`` (with argsort ``order``) form two ascending runs of folded
    values, which a stable sort (timsort) merges in linear time. As in :func:`sort_order`, each
    ``uint64`` key keeps the high bits of a folded value and carries the draw's position in its low
    bits, so the merged keys name each draw's chain directly. Keys that agree in the kept bits
    (rare for continuous draws) are put in exact order with their exact folded values, and exact
    ties share their average rank.

    Returns:
        ``(sums, squares)``: per-chain sums (K, M) and the total sum of squares (K,) of the
        scores (R-hat needs no per-chain squares: the within-chain variances only enter through
        their mean).
    """
    k, size = s.shape
    m = size // n
    h = size // 2
    bits = max(1, int(size - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    z_plain, z_plain_sq = _plain_scores(size)
    sums = np.empty((k, m))
    squares = np.full(k, float(z_plain_sq.sum()))
    folded = scratch(work, "folded", size)
    keys = scratch(work, "folded_keys", size, np.uint64)
    chain = scratch(work, "chain", size, np.int64)
    for row in range(k):
        med = (s[row, h - 1] + s[row, h]) / 2.0 if size % 2 == 0 else s[row, h]
        np.subtract(med, s[row, h - 1 :: -1], out=folded[:h])
        np.subtract(s[row, h:], med, out=folded[h:])
        np.abs(folded, out=folded)  # also turns -0.0 into 0.0
        np.bitwise_and(folded.view(np.uint64), ~mask, out=keys)
        keys[:h] |= order[row, h - 1 :: -1].view(np.uint64)
        keys[h:] |= order[row, h:].view(np.uint64)
        keys.sort(kind="stable")  # two ascending runs: a linear-time merge
        groups = _exact_groups(keys, bits, work)
        keys &= mask
        draw = keys.view(np.int64)
        np.floor_divide(draw, n, out=chain)
        sums[row] = np.bincount(chain, weights=z_plain, minlength=m)
        if groups is not None:
            squares[row] += _exact_within_groups(sums[row], v[row], med, draw, n, table, groups)
    return sums, squares


def _exact_within_groups(sums, v, med, draw, n, table, groups) -> float:
    """Correct the chain sums where runs of merged keys agree in the kept bits (in place).

    Inside each run the draws are put in the order of their exact folded values, and equal
    exact values share their average rank; only the run's scores are recomputed. Returns the
    change of the total sum of squares.
    """
    cols, gid = _expand(*groups)  # merged positions inside the runs
    members = draw[cols]
    exact = np.abs(v[members] - med)
    perm = np.lexsort((exact, gid))
    exact, new_members = exact[perm], members[perm]
    index = 2 * cols  # table index 2 * rank - 2 of merged position `cols` (0-based)
    runs = _tie_runs(exact, gid, np.arange(len(cols)))
    if runs is not None:  # equal exact values share (first + last position) as table index
        inside, run = _expand(*runs)
        index[inside] = (cols[runs[0]] + cols[runs[1]])[run]
    z_old, z_new = table[2 * cols], table[index]
    m = len(sums)
    sums += np.bincount(new_members // n, weights=z_new, minlength=m)
    sums -= np.bincount(members // n, weights=z_old, minlength=m)
    return float(np.dot(z_new, z_new) - np.dot(z_old, z_old))


def rank_scores(xs: np.ndarray, work=None):
    """Bulk z-scores of split draws xs (K, M, n), per-chain folded sums, sorted draws and order.

    Returns:
        ``(z_bulk, (fold_sums, fold_squares), s, order)``: the bulk Blom scores (K, M, n), the
        per-chain sums (K, M) and total sum of squares (K,) of the folded Blom scores, the sorted
        draws (K, S) and their argsort (K, S) into ``xs.reshape(K, S)``.
    """
    k, m, n = xs.shape
    size = m * n
    flat = xs.reshape(k, size)
    table = z_table(size)
    order, s, ties = sort_order(flat, return_ties=True, work=work)
    z_bulk = z_scatter(s, order, table, ties, work)
    fold = folded_chain_sums(flat, s, order, n, table, work)
    return z_bulk.reshape(k, m, n), fold, s, order
