"""Effective sample size of (parameter, chain, draw) arrays: ArviZ's ``_ess``, vectorised.

Autocovariances are averaged over chains; the first lags are summed directly (one ``vecdot`` per
lag over all chains); parameters whose Geyer sequence has not ended by then get twice as many
direct lags, again as needed, and the full FFT autocovariance only from ``_FFT_LAGS`` lags on
(an FFT of every chain costs as much as about a hundred direct lags). Geyer's initial positive and initial monotone sequences are evaluated for all
parameters at once (cumulative minima of the lag pairs) instead of ArviZ's per-parameter ``while``
loops.

Indicator chains (tail ESS) need no dense array: :func:`ess_indicator` takes the positions of the
ones and counts lagged pairs exactly.
"""

from __future__ import annotations

import numpy as np

from .rank_normal import first_draw_shift, scratch

__all__ = [
    "ess_core", "ess_indicator", "ess_from_autocov", "mean_autocov", "lag_sums",
    "centred_lag_sums", "direct_lags", "row_dot",
]

_DIRECT_LAGS = 16  # autocovariance lags summed directly first (more only where needed)
_FFT_LAGS = 128  # from this many lags on, the FFT of whole chains is cheaper than direct sums


_DOT_BLOCK = 8192  # OpenBLAS multithreads dot products above 10,000 elements: keep below
_BLOCK_BYTES = 2**20  # chains centred and multiplied together (a block stays in cache for all lags)


def row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products of the last axes of ``a`` and ``b`` (``np.vecdot``), single-threaded.

    Rows longer than a few thousand elements are summed in blocks: OpenBLAS would otherwise
    start its own threads for every long row, which costs far more than the arithmetic.
    """
    length = a.shape[-1]
    if length <= _DOT_BLOCK:
        return _vecdot(a, b)
    out = _vecdot(a[..., :_DOT_BLOCK], b[..., :_DOT_BLOCK])
    for lo in range(_DOT_BLOCK, length, _DOT_BLOCK):
        out += _vecdot(a[..., lo : lo + _DOT_BLOCK], b[..., lo : lo + _DOT_BLOCK])
    return out


def _vecdot(a, b):
    if hasattr(np, "vecdot"):  # NumPy >= 2.0: BLAS dot per row
        return np.vecdot(a, b)
    return np.einsum("...i,...i->...", a, b)  # pragma: no cover - NumPy 1.x


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(words: np.ndarray) -> int:
    """Number of set bits in a uint64 array."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return int(np.bitwise_count(words).sum(dtype=np.int64))
    return int(_POPCOUNT[words.view(np.uint8)].sum(dtype=np.int64))  # pragma: no cover


def direct_lags(n: int) -> int:
    """Number of autocovariance lags summed directly for chains of n draws."""
    return min(n, max(2, _DIRECT_LAGS))


def mean_autocov(yc: np.ndarray) -> np.ndarray:
    """All autocovariances (divisor n) of centred (K, M, n) chains, mean over chains: (K, n)."""
    import scipy.fft as sfft

    k, m, n = yc.shape
    length = sfft.next_fast_len(2 * n, real=True)
    f = sfft.rfft(yc, n=length, axis=2)
    fv = f.view(np.float64)
    np.square(fv, out=fv)
    power = fv.reshape(k, m, -1, 2).sum(axis=(1, 3)) / m
    return sfft.irfft(power, n=length, axis=1)[:, :n] / n


def lag_sums(yc: np.ndarray, lags: int, first: int = 0) -> np.ndarray:
    """Sums over chains and draws of ``yc[:, :, i] * yc[:, :, i + lag]``, lag 0..lags-1: (K, lags).

    One row-wise dot product per lag over all chains (:func:`row_dot`); lags below ``first`` are
    left unset.
    """
    k, m, n = yc.shape
    rows = yc.reshape(k * m, n)
    out = np.empty((k, lags))
    for lag in range(first, lags):
        out[:, lag] = row_dot(rows[:, : n - lag], rows[:, lag:]).reshape(k, m).sum(axis=1)
    return out


def _tau(rho: np.ndarray, jmax: int):
    """Geyer's initial positive + monotone sequence on available lags: (tau, complete).

    ArviZ's loop visits pairs ``P_j = rho[2j] + rho[2j+1]`` for j = 1..J, where J is the first
    j < jmax with ``P_j <= 0`` (else jmax); ``complete`` is False where the available lags end
    before J is known.
    """
    k, lags = rho.shape
    npairs = lags // 2
    pairs = rho[:, 0 : 2 * npairs : 2] + rho[:, 1 : 2 * npairs : 2]
    limit = min(jmax, npairs)
    nonpos = pairs[:, :limit] <= 0
    found = nonpos.any(axis=1)
    first = np.where(found, np.argmax(nonpos, axis=1), jmax) if limit else np.full(k, jmax)
    complete = found | (jmax <= npairs - 1)
    big_j = np.minimum(first, min(jmax, npairs - 1))
    monotone = np.minimum.accumulate(pairs, axis=1)
    csum = np.concatenate([np.zeros((k, 1)), np.cumsum(monotone, axis=1)], axis=1)
    head = np.take_along_axis(csum, big_j[:, None], axis=1)[:, 0]  # pairs 0..J-1
    rho_even = np.take_along_axis(rho, (2 * big_j)[:, None], axis=1)[:, 0]
    pair_j = np.take_along_axis(pairs, big_j[:, None], axis=1)[:, 0]
    last = np.where((rho_even > 0) | (pair_j >= 0), rho_even, 0.0)
    last = np.where(big_j == 0, 1.0, last)
    return -1.0 + 2.0 * head + last, complete


def _more_lags(lags: int, n: int) -> int:
    """Lags to try after ``lags`` direct ones: twice as many, or all (FFT) from _FFT_LAGS on."""
    more = 2 * lags
    return n if more > min(n, _FFT_LAGS) else more


def ess_from_autocov(acov, chain_mean, n: int, more_autocov, constant, relative=False):
    """ESS from the chain-averaged autocovariances of the first lags (ArviZ ``_ess``).

    Args:
        acov: (K, L) mean over chains of the centred autocovariances (divisor n), lags 0..L-1.
        chain_mean: (K, M) chain means.
        n: draws per chain.
        more_autocov: callable ``(rows, known, lags) -> (len(rows), lags - known)`` giving lags
            ``known .. lags - 1`` for those parameters (``lags == n``: all lags, which may come
            from the FFT); called only where Geyer's sequence has not ended within the known
            lags, with twice as many lags each time, and all lags from ``_FFT_LAGS`` on.
        constant: (K,) bool, parameters whose draws are constant (ESS = number of draws).
        relative: divide by the number of draws.
    """
    k, m = chain_mean.shape
    jmax = int(np.sum(2 * np.arange(1, n) - 1 < n - 3))
    mean_var = acov[:, 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + chain_mean.var(axis=1, ddof=1)

    def rho_of(ac, rows):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = 1.0 - (mean_var[rows, None] - ac) / var_plus[rows, None]
        r[:, 0] = 1.0
        return r

    rho = rho_of(acov, np.arange(k))
    tau, complete = _tau(rho, jmax)
    bad = np.isnan(rho[:, :2]).any(axis=1)
    known = acov.shape[1]
    redo = np.arange(k)
    while known < n and not complete[redo].all():
        keep = ~complete[redo]
        redo, acov = redo[keep], acov[keep]
        lags = _more_lags(known, n)
        acov = np.concatenate([acov, more_autocov(redo, known, lags)], axis=1)
        tau[redo], complete[redo] = _tau(rho_of(acov, redo), jmax)
        known = lags
    total = float(m * n)
    tau = np.maximum(tau, 1.0 / np.log10(total))
    out = (1.0 if relative else total) / tau
    out = np.where(bad, np.nan, out)
    return np.where(constant, total, out)


def centred_lag_sums(y: np.ndarray, lags: int, work=None, shift=None):
    """Chain means (K, M), lag sums of the centred chains (K, lags) and their squares (K, M).

    Chains are centred and multiplied a block of chains at a time, so that each block is read
    from memory once for all lags. ``work``: dict of reusable buffers (see
    :func:`~.rank_normal.scratch`). ``shift``: None or (K,) values subtracted from every draw of
    a parameter before the means are taken (the chain means are then relative to it), so that
    a large mean against a small spread keeps its digits.

    Returns:
        ``(chain_mean, y, sums, squares)``; ``y`` itself is returned for the FFT fallback.
    """
    k, m, n = y.shape
    rows = y.reshape(k * m, n)
    block = max(1, _BLOCK_BYTES // (8 * n))
    buf = scratch(work, "lag_block", (min(block, k * m), n))
    means = np.empty(k * m)
    per_row = np.empty((k * m, lags))
    row_shift = None if shift is None else np.repeat(shift, m)
    for lo in range(0, k * m, block):
        part = rows[lo : lo + block]
        if row_shift is None:
            means[lo : lo + len(part)] = part.mean(axis=1)
            yc = np.subtract(part, means[lo : lo + len(part), None], out=buf[: len(part)])
        else:
            yc = np.subtract(part, row_shift[lo : lo + len(part), None], out=buf[: len(part)])
            means[lo : lo + len(part)] = yc.mean(axis=1)
            yc -= means[lo : lo + len(part), None]
        for lag in range(lags):
            per_row[lo : lo + len(part), lag] = row_dot(yc[:, : n - lag], yc[:, lag:])
    per_row = per_row.reshape(k, m, lags)
    return means.reshape(k, m), y, per_row.sum(axis=1), per_row[:, :, 0]


def ess_core(y: np.ndarray, relative: bool = False, moments=None, work=None,
             spread=None, shifted: bool = False) -> np.ndarray:
    """Effective sample size of (K, M, n) chains (ArviZ ``_ess``, Geyer's monotone sequence).

    The first lags are summed directly; parameters whose sequence has not ended by then get more
    direct lags, then the full FFT autocovariance (:func:`ess_from_autocov`). ``moments``: the result of :func:`centred_lag_sums` if already known;
    ``spread``: max - min of each parameter's draws if already known (constant draws: ESS = size).
    ``shifted``: subtract each parameter's first (finite) draw before taking means (for raw
    draws, whose mean may be large against their spread; see :func:`centred_lag_sums`).
    """
    y = np.asarray(y, dtype=float)
    k, m, n = y.shape
    if spread is None:
        flat = y.reshape(k, -1)
        spread = flat.max(axis=1) - flat.min(axis=1)
    constant = spread < np.finfo(float).resolution
    lags = direct_lags(n)
    shift = None
    if shifted and moments is None:
        shift = first_draw_shift(y[:, 0, 0])
    if moments is None:
        moments = centred_lag_sums(y, lags, work, shift)
    chain_mean, y, sums, _ = moments

    def more(rows, known, lags):
        yr = y[rows] if shift is None else y[rows] - shift[rows, None, None]
        yc = yr - chain_mean[rows, :, None]
        if lags >= n:
            return mean_autocov(yc)[:, known:]
        return lag_sums(yc, lags, first=known)[:, known:] / (m * n)

    return ess_from_autocov(sums / (m * n), chain_mean, n, more, constant, relative)


def _indicator_autocov(pos: np.ndarray, m: int, n: int, lags: int, work=None):
    """Chain means and chain-averaged centred autocovariances (lags 0..lags-1) of 0/1 chains.

    ``pos`` holds the flat positions (chain * n + draw) of the ones. With ``c`` ones in a chain,
    ``p = c / n``, ``R_l`` lagged pairs of ones, ``H_l`` ones among the first ``n - l`` draws and
    ``T_l`` ones among the last ``n - l``: ``n * acov_l = R_l - p (H_l + T_l) + (n - l) p^2``.
    Pairs are counted on the bits of all chains laid end to end (64 draws a word: the stream
    shifted by ``l`` draws, AND, popcount), less the pairs that straddle two chains.
    """
    size = m * n
    ones = scratch(work, "ones", size + lags + 128, bool)
    if work is None or work.get("ones_clear") is not ones:
        ones[:] = False
    ones[pos] = True
    grid = ones[:size].reshape(m, n)
    head = grid[:, :lags].astype(float)  # first / last `lags` draws of every chain
    tail = grid[:, n - lags :][:, ::-1].astype(float)  # tail[:, j]: draw n - 1 - j
    packed = np.packbits(ones, bitorder="little")
    ones[pos] = False  # leave the buffer cleared for the next call
    if work is not None:
        work["ones_clear"] = ones
    words = packed[: len(packed) // 8 * 8].view("<u8")  # draw 64 w + t is bit t of word w
    count = np.bincount(np.asarray(pos) // n, minlength=m).astype(float)
    p = count / n
    nwords = -(-size // 64)
    base = words[:nwords]
    shifted = np.empty(nwords, np.uint64)
    pairs = np.empty(lags)
    for lag in range(lags):
        q, r = divmod(lag, 64)
        if r:  # bits of draws lag .. lag + 64 nwords - 1
            np.right_shift(words[q : q + nwords], np.uint64(r), out=shifted)
            shifted |= words[q + 1 : q + 1 + nwords] << np.uint64(64 - r)
            shifted &= base
        else:
            np.bitwise_and(words[q : q + nwords], base, out=shifted)
        pairs[lag] = _popcount(shifted)
    pairs -= _straddles(tail, head)
    # ones at draws < l (dropped from T_l) and at draws >= n - l (dropped from H_l), weighted
    # by p: sum_c p_c (2 count_c - head_before[c, l] - tail_before[c, l])
    before = np.cumsum(p @ head + p @ tail)
    p_h_plus_t = 2.0 * np.dot(p, count) - np.concatenate([[0.0], before[:-1]])
    lag_n = n - np.arange(lags)
    acov = (pairs - p_h_plus_t + lag_n * np.dot(p, p)) / (m * n)
    return p, acov


def _straddles(tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Pairs of ones at lag l that straddle two chains, for l = 0..lags-1 (exact counts).

    Draw ``n - l + j`` of chain i pairs with draw ``j`` of chain i + 1 (``j < l``); with
    ``tail[:, a]`` = draw ``n - 1 - a`` that is ``a + j = l - 1``: the anti-diagonals of
    ``G = tail[:-1]^T head[1:]`` (summed a block of chains at a time: small products stay on
    one thread in OpenBLAS).
    """
    m, lags = head.shape
    out = np.zeros(lags)
    if m < 2 or lags < 2:
        return out
    gram = np.zeros((lags, lags))
    step = max(1, 2**18 // (lags * lags))
    for lo in range(0, m - 1, step):
        gram += tail[lo : min(lo + step, m - 1)].T @ head[lo + 1 : lo + 1 + step]
    diag = np.add.outer(np.arange(lags), np.arange(lags)).ravel()
    out[1:] = np.bincount(diag, weights=gram.ravel(), minlength=2 * lags)[: lags - 1]
    return out


def ess_indicator(pos_rows, m: int, n: int, relative: bool = False, work=None) -> np.ndarray:
    """ESS of 0/1 chains (K, M, n) given, per parameter, the flat positions of the ones.

    Equal to ``ess_core`` of the dense indicator array, without building it (the FFT fallback
    builds it only for parameters whose Geyer sequence runs past ``_FFT_LAGS`` lags).
    """
    k = len(pos_rows)
    lags = direct_lags(n)
    means = np.empty((k, m))
    acov = np.empty((k, lags))
    constant = np.empty(k, bool)
    for row, pos in enumerate(pos_rows):
        means[row], acov[row] = _indicator_autocov(pos, m, n, lags, work)
        constant[row] = len(pos) in (0, m * n)

    def more(rows, known, lags):
        if lags < n:  # direct pair counts are cheap: all lags again, keep the new ones
            return np.array([_indicator_autocov(pos_rows[row], m, n, lags, work)[1][known:]
                             for row in rows])
        dense = np.zeros((len(rows), m * n))
        for i, row in enumerate(rows):
            dense[i, pos_rows[row]] = 1.0
        dense = dense.reshape(len(rows), m, n)
        return mean_autocov(dense - dense.mean(axis=2, keepdims=True))[:, known:]

    return ess_from_autocov(acov, means, n, more, constant, relative)
