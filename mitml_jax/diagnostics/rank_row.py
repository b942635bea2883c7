"""One parameter's ranks, folded-rank chain sums and tail counts from one sort of tagged floats.

The draws of one parameter (a row of ``S = M * n`` split-chain draws) are sorted once as float64
*tagged keys*: ``v - c`` (``c`` a central draw) with the low mantissa bits replaced by the draw's
position. A float sort is faster than an integer or arg sort on AVX2, and the sorted keys carry
both the argsort (low bits) and the sorted values to about ``2^-32`` relative (high bits), so the
sorted values themselves are never gathered (a random gather of every draw costs more than the
sort's integer bookkeeping):

* keys that agree above the low bits are put in exact order with their values (short runs);
* the folded draws ``|v - median|`` are merged from the two halves of the sorted keys and ranked
  by their approximations; only neighbours whose approximations are too close to be told apart
  (a proven error bound) are put in exact order with exact folded values, ties averaged;
* counts of draws at or below a quantile are read off the keys, with exact comparisons only in a
  window around the quantile.

Everything equals the definitions on exact values (scipy ``rankdata(method="average")``, ArviZ's
``_z_scale`` / ``_z_fold``); :func:`row_ranks` returns None where the shortcut does not apply
(infinite draws, or a range that overflows), and the caller uses the general path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .numpy_sort import sort_floats
from .rank_normal import (_exact_groups, _exact_within_groups, _expand, _plain_scores, _positions,
                          _runs, _tie_runs, scratch, z_table)

__all__ = ["RowRanks", "row_ranks", "bulk_scores", "folded_sums", "count_at_most", "rank_rows"]

_MAX_BITS = 24  # position bits kept in the keys (S <= 2^24 draws); larger rows use the old path


def _rel(bits: int) -> float:
    """Relative error bound (with margin) of values recovered from keys with ``bits`` low bits.

    A key and the value it approximates share all but the low ``bits`` of the mantissa (error
    below ``|key| 2^(bits-52)``), plus a few roundings of ``2^-53`` each.
    """
    return 2.0 ** (max(bits, 4) - 50)


@dataclass
class RowRanks:
    """Ranks of one parameter's draws ``v`` (S,) from :func:`row_ranks`.

    Attributes:
        order: (S,) int64, exact argsort of ``v`` (ties in any order).
        keys: (S,) sorted approximations of ``v[order] - centre`` (error below
            ``|key| 2^(bits - 52)`` with ``bits`` position bits).
        centre: the value subtracted before tagging.
        ties: None or (first, last) sorted positions of the runs of exactly equal draws.
        low, high: exact minimum and maximum draw.
    """

    order: np.ndarray
    keys: np.ndarray
    centre: float
    ties: object
    low: float
    high: float

    def sorted_value(self, v: np.ndarray, p) -> np.ndarray:
        """Exact sorted values at positions ``p``."""
        return v[self.order[p]]


def _centre(v: np.ndarray) -> float:
    """A nonzero value near the middle of ``v`` (median of at most 1025 evenly spaced draws)."""
    sample = v[:: max(1, len(v) // 1024)]
    c = float(np.median(sample))
    return c if c != 0.0 else float(np.max(np.abs(sample))) or 1.0


def row_ranks(v: np.ndarray, work=None):
    """Exact argsort of the finite draws ``v`` (S,) through one float sort; None if inapplicable.

    The centre ``c`` is nonzero, so ``v - c`` is never ``-0.0``: equal draws (``-0.0`` and
    ``0.0`` included) get equal keys above the low bits and land in one exactly ordered run.
    """
    size = len(v)
    bits = max(1, int(size - 1).bit_length())
    if bits > _MAX_BITS:
        return None
    mask = np.uint64((1 << bits) - 1)
    c = _centre(v)
    keys = scratch(work, "row_keys", size)
    with np.errstate(over="ignore", invalid="ignore"):
        np.subtract(v, c, out=keys)
    ku = keys.view(np.uint64)
    ku &= ~mask
    ku |= _positions(size)
    sort_floats(keys, work)  # an infinite difference became NaN (sorted last) or stayed -inf (first)
    if not (np.isfinite(keys[0]) and np.isfinite(keys[-1])):
        return None
    order = scratch(work, "row_order", size, np.int64)
    np.bitwise_and(ku, mask, out=order.view(np.uint64))
    groups = _exact_groups(ku, bits, work)
    ties = None
    if groups is not None:
        cols, gid = _expand(*groups)
        exact = v[order[cols]]
        perm = np.lexsort((exact, gid))
        order[cols] = order[cols[perm]]
        ties = _tie_runs(exact[perm], gid, cols)
    low, high = float(v[order[0]]), float(v[order[-1]])
    with np.errstate(over="ignore"):
        if not np.isfinite(high - low):  # folded differences could overflow
            return None
    return RowRanks(order, keys, c, ties, low, high)


def bulk_scores(rr: RowRanks, out: np.ndarray) -> np.ndarray:
    """Blom scores of the draws (average ranks for ties), written in draw order into ``out``."""
    size = len(out)
    z_sorted = _plain_scores(size)[0]
    if rr.ties is not None:
        z_sorted = z_sorted.copy()
        lo, hi = rr.ties
        cols, gid = _expand(lo, hi)
        z_sorted[cols] = z_table(size)[(lo + hi)[gid]]  # table index 2 * average rank - 2
    out[rr.order] = z_sorted  # a 1-D scatter: NumPy's fastest random access
    return out


def folded_sums(v: np.ndarray, rr: RowRanks, n: int, work=None):
    """Per-chain sums (M,) and the total sum of squares of the folded Blom scores of ``v``.

    The folded draws ``|v - median|`` read outwards from the median are two ascending runs of
    the sorted keys; their approximations, packed with the draw positions into ``uint64`` keys
    (the same low ``bits``), are merged by a stable sort. If draw a precedes b in the merge but
    ``F_a >= F_b`` (exact folded values), then ``hi_b - hi_a <= (hi_b + |median - c|) R`` with
    ``hi`` the keys' high parts and ``R = _rel(bits)`` (truncation of ``hi_a`` plus the errors of
    both approximations). All such neighbours lie in runs of consecutive merged draws that are
    within ``2^(bits+5)`` units in the last place of each other (case ``hi_b >= |median - c|``)
    or, below ``|median - c|``, closer than ``2 |median - c| R``; those runs are put in exact
    order with exact folded values, equal values sharing their average rank.
    """
    size = len(v)
    m = size // n
    h = size // 2
    bits = max(1, int(size - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    keys, order = rr.keys, rr.order
    if size % 2 == 0:
        med = (v[order[h - 1]] + v[order[h]]) / 2.0
    else:
        med = v[order[h]]
    mc = med - rr.centre
    f = scratch(work, "row_folded", size)
    np.subtract(mc, keys[h - 1 :: -1], out=f[:h])
    np.subtract(keys[h:], mc, out=f[h:])
    # approximations on the wrong side of the median (keys within their error of mc) are the
    # only negative ones: the first of each run
    neg_low = h - int(np.searchsorted(keys[:h], mc, side="right"))
    neg_high = int(np.searchsorted(keys[h:], mc, side="left"))
    np.abs(f[:neg_low], out=f[:neg_low])
    np.abs(f[h : h + neg_high], out=f[h : h + neg_high])
    fk = f.view(np.uint64)
    fk &= ~mask
    fk[:h] |= order[h - 1 :: -1].view(np.uint64)
    fk[h:] |= order[h:].view(np.uint64)
    fk.sort(kind="stable")  # two nearly ascending runs: timsort merges them in linear time
    spare = scratch(work, "row_diff", size, np.uint64)  # differences, then chain numbers
    diff = np.subtract(fk[1:], fk[:-1], out=spare[: size - 1])
    limit = np.uint64(2 ** (max(bits, 4) + 5))
    flags = np.less_equal(diff, limit, out=scratch(work, "row_flags", size - 1, bool))
    small = abs(mc)
    if small > 0.0:  # merged draws with hi <= |median - c| (a prefix): absolute criterion
        edge = int(np.searchsorted(fk, np.array(small).view(np.uint64) | mask, side="right"))
        if edge > 1:
            head = (fk[:edge] & ~mask).view(np.float64)
            flags[: edge - 1] |= np.diff(head) <= 2.0 * small * _rel(bits) + 1e-300
    z_plain, z_plain_sq = _plain_scores(size)
    fk &= mask  # the merged keys become the draws' positions (fewer buffers: less cache traffic)
    draw = fk.view(np.int64)
    chain = np.floor_divide(draw, n, out=spare.view(np.int64))
    sums = np.bincount(chain, weights=z_plain, minlength=m)
    squares = float(z_plain_sq.sum())
    runs = _runs(flags)
    if runs is not None:
        squares += _exact_within_groups(sums, v, med, draw, n, z_table(size),
                                        (runs[0], runs[1] + 1))
    return sums, squares


def count_at_most(v: np.ndarray, rr: RowRanks, q: float) -> int:
    """Number of draws ``<= q``: from the approximate sorted keys, exact near ``q``."""
    keys = rr.keys
    qc = q - rr.centre
    bits = max(1, int(len(keys) - 1).bit_length())
    margin = (abs(qc) + max(abs(keys[0]), abs(keys[-1]))) * _rel(bits) + 1e-300
    lo = int(np.searchsorted(keys, qc - margin, side="left"))
    hi = int(np.searchsorted(keys, qc + margin, side="right"))
    return lo + int(np.count_nonzero(v[rr.order[lo:hi]] <= q))


def rank_rows(xs: np.ndarray, bulk: bool, folded: bool, tail: bool, work=None, middles=None):
    """Bulk scores, folded chain sums, spreads and tail positions of split draws ``xs`` (K, M, n).

    Returns None if :func:`row_ranks` does not apply to some parameter, else a dict with
    ``z`` ((K, M, n) bulk Blom scores, if ``bulk``), ``fold`` ((K, M) chain sums and (K,) total
    squares of the folded scores, if ``folded``), ``spread`` ((K,) max - min) and ``tail``
    (per parameter, the flat positions of the draws ``<= q05`` and ``> q95``, if ``tail``). The
    tail quantiles are R's type 7 of all draws: ``middles`` (K, C) are the draws the split left
    out (the middle draw of each chain of odd length; None when there are none).
    """
    k, m, n = xs.shape
    size = m * n
    flat = xs.reshape(k, size)
    out = {"spread": np.empty(k)}
    if bulk:
        out["z"] = scratch(work, "row_z", (k, m, n))
    if folded:
        out["fold"] = (np.empty((k, m)), np.empty(k))
    if tail:
        out["tail"] = ([], [])
    for row in range(k):
        v = flat[row]
        rr = row_ranks(v, work)
        if rr is None:
            return None
        out["spread"][row] = rr.high - rr.low
        if bulk:
            bulk_scores(rr, out["z"][row].reshape(size))
        if folded:
            out["fold"][0][row], out["fold"][1][row] = folded_sums(v, rr, n, work)
        if tail:
            extra = None if middles is None else np.sort(middles[row])
            for prob, side in ((0.05, 0), (0.95, 1)):
                count = count_at_most(v, rr, _quantile_type7(v, rr, prob, extra))
                out["tail"][side].append(
                    rr.order[:count].copy() if side == 0 else rr.order[count:].copy())
    return out


def _quantile_type7(v: np.ndarray, rr: RowRanks, prob: float, extra=None) -> float:
    """R type-7 quantile of ``v`` and the sorted values ``extra`` together (scipy
    ``mquantiles(alphap=1, betap=1)`` arithmetic); ``extra`` None: of ``v`` alone."""
    size = len(v) + (0 if extra is None else len(extra))
    aleph = size * prob + (1.0 - prob)
    kk = int(np.clip(np.floor(aleph), 1, size - 1))
    gamma = float(np.clip(aleph - kk, 0, 1))
    if extra is None:
        below, above = rr.sorted_value(v, [kk - 1, kk])
    else:
        below, above = _kth_of_union(v, rr, extra, kk - 1), _kth_of_union(v, rr, extra, kk)
    return (1.0 - gamma) * below + gamma * above


def _kth_of_union(v: np.ndarray, rr: RowRanks, extra: np.ndarray, t: int) -> float:
    """The ``t``-th smallest (0-based) of ``v`` (sorted through ``rr``) and sorted ``extra``:
    a binary search for the number ``i`` of values taken from ``v``, the smallest with
    ``extra[t - i] <= v_(i)`` (log steps, exact values only at the probed positions)."""
    k, size, count = t + 1, len(v), len(extra)

    def a(i):  # the i-th smallest of v
        return float(v[rr.order[i]])

    lo, hi = max(0, k - count), min(k, size)
    while lo < hi:
        i = (lo + hi) // 2
        j = k - i
        if j > 0 and i < size and extra[j - 1] > a(i):
            lo = i + 1
        else:
            hi = i
    i, j = lo, k - lo
    return max(a(i - 1) if i > 0 else -np.inf, float(extra[j - 1]) if j > 0 else -np.inf)
