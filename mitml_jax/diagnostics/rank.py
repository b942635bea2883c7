"""Rank-normalised split R-hat, bulk/tail ESS and MCSE across chains (Vehtari et al. 2021).

The definitions follow ArviZ's legacy implementation (``arviz.stats.diagnostics``, arviz 0.x:
``rhat(method="rank")``, ``ess(method="bulk"|"tail"|"mean"|"sd")``, ``mcse(method="mean"|"sd")``)
line by line, so that the values agree with ArviZ's to rounding error; the computation is
vectorised over parameters instead of looping in Python:

* every parameter's draws are sorted once; ranks (ties averaged) come from that sort, the folded
  draws ``|x - median|`` are ranked by merging the two monotone halves of the sorted draws (a
  linear-time stable merge) instead of a second full sort, and ``Phi^-1((r - 3/8)/(S + 1/4))`` is
  read from a table indexed by the (half-integer) rank;
* autocovariances come from one FFT over the draw axis, averaged over chains in the frequency
  domain;
* Geyer's initial positive and initial monotone sequences are evaluated for all parameters at
  once (cumulative minima of the lag pairs) instead of ArviZ's per-parameter ``while`` loops.

Input arrays are ``(chain, draw, *params)``; results have shape ``params`` (a float for none).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..errors import MitmlError, MitmlTypeError

__all__ = ["rhat", "ess", "mcse", "rank_diagnostics", "rank_diagnostics_by_parameter"]

_CHUNK_ELEMENTS = 2**22  # parameters are processed in chunks of about this many draws


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _as_draws(draws, name: str = "draws") -> tuple[np.ndarray, tuple]:
    """(chain, draw, *params) -> float array (K, chain, draw) plus the params shape."""
    if isinstance(draws, Mapping) or hasattr(draws, "imputation"):
        raise MitmlTypeError(
            f"'{name}' must be an array (chain, draw, ...); for an Imputations object use "
            "imp.summary() or pass imp.imputation['beta'] etc."
        )
    x = np.asarray(draws)
    if x.dtype == bool:
        x = x.astype(float)
    if not np.issubdtype(x.dtype, np.number):
        raise MitmlTypeError(f"'{name}' must be numeric, got dtype {x.dtype}.")
    if x.ndim < 2:
        raise MitmlError(
            f"'{name}' must have at least two dimensions (chain, draw, ...), got shape {x.shape}."
        )
    pshape = x.shape[2:]
    c, d = x.shape[:2]
    x = np.asarray(x, dtype=float).reshape(c, d, -1)
    return np.ascontiguousarray(np.moveaxis(x, 2, 0)), pshape


def _finish(values: np.ndarray, pshape: tuple):
    out = np.asarray(values, dtype=float).reshape(pshape)
    return float(out) if out.ndim == 0 else out


def _split(x: np.ndarray) -> np.ndarray:
    """(K, C, D) -> (K, 2C, D//2): first and last halves of every chain (middle draw dropped)."""
    k, c, d = x.shape
    half = d // 2
    if d % 2 == 0:  # a view; chain order differs from ArviZ's, which no statistic depends on
        return x.reshape(k, 2 * c, half)
    return np.concatenate([x[:, :, :half], x[:, :, d - half :]], axis=1)


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
_SIGN = np.uint64(1 << 63)


def _sort_order(v: np.ndarray):
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
    for sweep in range(n):
        bad = s[:, 1:] < s[:, :-1]
        if not bad.any():
            break
        r, c = np.nonzero(bad)
        keep = (c % 2) == (sweep % 2)
        r, c = r[keep], c[keep]
        s[r, c], s[r, c + 1] = s[r, c + 1], s[r, c].copy()
        order[r, c], order[r, c + 1] = order[r, c + 1], order[r, c].copy()
    return order, s


@lru_cache(maxsize=4)
def _z_table(n: int) -> np.ndarray:
    """Blom scores Phi^-1((r - 3/8)/(n + 1/4)) for half-integer ranks r = 1, 1.5, ..., n."""
    from scipy.special import ndtri

    return ndtri((np.arange(2, 2 * n + 1) / 2.0 - 3.0 / 8.0) / (n - 2 * (3.0 / 8.0) + 1))


def _z_scatter(s: np.ndarray, order: np.ndarray, table: np.ndarray) -> np.ndarray:
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


def _rank_scores(xs: np.ndarray):
    """Bulk and folded z-scores of split draws xs (K, M, n); also their sorted values (K, S)."""
    k, m, n = xs.shape
    size = m * n
    flat = xs.reshape(k, size)
    table = _z_table(size)
    order, s = _sort_order(flat)
    z_bulk = _z_scatter(s, order, table)
    if size % 2 == 0:
        med = (s[:, size // 2 - 1] + s[:, size // 2]) / 2.0
    else:
        med = s[:, size // 2]
    folded = np.abs(s - med[:, None])  # in sorted order of the draws
    order_f, f_sorted = _sort_order(folded)
    del folded
    for row in range(k):  # positions in sorted order -> positions among the draws
        np.take(order[row], order_f[row], out=order_f[row])
    z_fold = _z_scatter(f_sorted, order_f, table)
    return z_bulk.reshape(k, m, n), z_fold.reshape(k, m, n), s


def _rhat_classic(y: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat of (K, M, n) chains (ArviZ ``_rhat``)."""
    n = y.shape[2]
    chain_mean = y.mean(axis=2)
    chain_var = y.var(axis=2, ddof=1)
    between = n * chain_mean.var(axis=1, ddof=1)
    within = chain_var.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


_DIRECT_LAGS = 16  # autocovariance lags summed directly before falling back to the FFT


def _mean_autocov(yc: np.ndarray) -> np.ndarray:
    """All autocovariances (divisor n) of centred (K, M, n) chains, mean over chains: (K, n)."""
    import scipy.fft as sfft

    k, m, n = yc.shape
    length = sfft.next_fast_len(2 * n, real=True)
    f = sfft.rfft(yc, n=length, axis=2, workers=-1)
    fv = f.view(np.float64)
    np.square(fv, out=fv)
    power = fv.reshape(k, m, -1, 2).sum(axis=(1, 3)) / m
    return sfft.irfft(power, n=length, axis=1, workers=-1)[:, :n] / n


def _mean_autocov_direct(yc: np.ndarray, lags: int) -> np.ndarray:
    """Autocovariances at lags 0..lags-1 by direct sums (cheaper than an FFT for few lags)."""
    k, m, n = yc.shape
    out = np.empty((k, lags))
    for lag in range(lags):
        out[:, lag] = np.einsum("kmi,kmi->k", yc[:, :, : n - lag], yc[:, :, lag:])
    return out / (m * n)


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


def _ess_core(y: np.ndarray, relative: bool = False) -> np.ndarray:
    """Effective sample size of (K, M, n) chains (ArviZ ``_ess``, Geyer's monotone sequence).

    The first lags are summed directly; parameters whose sequence has not ended by then get the
    full FFT autocovariance.
    """
    y = np.asarray(y, dtype=float)
    k, m, n = y.shape
    flat = y.reshape(k, -1)
    constant = (flat.max(axis=1) - flat.min(axis=1)) < np.finfo(float).resolution
    chain_mean = y.mean(axis=2)
    yc = y - chain_mean[:, :, None]
    jmax = int(np.sum(2 * np.arange(1, n) - 1 < n - 3))
    lags = min(n, max(2, _DIRECT_LAGS))
    acov = _mean_autocov_direct(yc, lags)
    mean_var = acov[:, 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + chain_mean.var(axis=1, ddof=1)

    def rho_of(ac, rows):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = 1.0 - (mean_var[rows, None] - ac) / var_plus[rows, None]
        r[:, 0] = 1.0
        return r

    rows = np.arange(k)
    rho = rho_of(acov, rows)
    tau, complete = _tau(rho, jmax)
    bad = np.isnan(rho[:, :2]).any(axis=1)
    if not complete.all():
        redo = np.flatnonzero(~complete)
        full = _mean_autocov(yc[redo])
        tau[redo], _ = _tau(rho_of(full, redo), jmax)
    total = float(m * n)
    tau = np.maximum(tau, 1.0 / np.log10(total))
    out = (1.0 if relative else total) / tau
    out = np.where(bad, np.nan, out)
    return np.where(constant, float(flat.shape[1]), out)


def _quantile_type7(s: np.ndarray, prob: float) -> np.ndarray:
    """R type-7 quantile of sorted rows, with scipy ``mquantiles(alphap=1, betap=1)`` arithmetic."""
    n = s.shape[1]
    aleph = n * prob + (1.0 - prob)
    kk = int(np.clip(np.floor(aleph), 1, n - 1))
    gamma = float(np.clip(aleph - kk, 0, 1))
    return (1.0 - gamma) * s[:, kk - 1] + gamma * s[:, kk]


def _valid(x: np.ndarray, min_chains: int) -> np.ndarray:
    ok = ~np.isnan(x).any(axis=(1, 2))
    if x.shape[1] < min_chains or x.shape[2] < 4:
        ok[:] = False
    return ok


# --------------------------------------------------------------------------------------------
# the work, chunked over parameters
# --------------------------------------------------------------------------------------------
def rank_diagnostics(draws, which=("rhat", "ess_bulk", "ess_tail", "mcse_mean")) -> dict:
    """Several diagnostics of ``(chain, draw, *params)`` draws from one pass over the data.

    Args:
        draws: array (chain, draw, *params).
        which: any of ``"rhat"``, ``"ess_bulk"``, ``"ess_tail"``, ``"ess_mean"``, ``"ess_sd"``,
            ``"mcse_mean"``, ``"mcse_sd"``.

    Returns:
        dict name -> array of shape ``params`` (NaN where a parameter has NaN draws, fewer than
        4 draws, or, for R-hat, fewer than 2 chains).
    """
    known = {"rhat", "ess_bulk", "ess_tail", "ess_mean", "ess_sd", "mcse_mean", "mcse_sd"}
    bad = [w for w in which if w not in known]
    if bad:
        raise MitmlError(f"Unknown diagnostic(s) {bad} in 'which'; choose from {sorted(known)}.")
    x, pshape = _as_draws(draws)
    out = rank_diagnostics_by_parameter(x, which)
    return {w: _finish(v, pshape) for w, v in out.items()}


def rank_diagnostics_by_parameter(x: np.ndarray, which) -> dict:
    """:func:`rank_diagnostics` for float draws laid out (parameter, chain, draw): (K,) arrays."""
    k, c, d = x.shape
    out = {w: np.full(k, np.nan) for w in which}
    step = max(1, _CHUNK_ELEMENTS // max(1, c * d))
    starts = list(range(0, k, step))
    workers = min(len(starts), os.cpu_count() or 1, 4)
    if workers > 1:  # NumPy's sort, einsum and FFT release the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(lambda lo: _diagnose_chunk(x[lo : lo + step], which), starts))
    else:
        parts = [_diagnose_chunk(x[lo : lo + step], which) for lo in starts]
    for lo, part in zip(starts, parts):
        for w in which:
            out[w][lo : lo + step] = part[w]
    return out


def _diagnose_chunk(x: np.ndarray, which) -> dict:
    k, c, d = x.shape
    res = {w: np.full(k, np.nan) for w in which}
    ok = _valid(x, 1)
    if not ok.any():
        return res
    idx = np.flatnonzero(ok)
    if len(idx) < k:
        x = x[idx]
    xs = _split(x)
    need_ranks = {"rhat", "ess_bulk"} & set(which)
    s = None
    if need_ranks:
        z_bulk, z_fold, s = _rank_scores(xs)
        if "rhat" in which and c >= 2:
            res["rhat"][idx] = np.maximum(_rhat_classic(z_bulk), _rhat_classic(z_fold))
        if "ess_bulk" in which:
            res["ess_bulk"][idx] = _ess_core(z_bulk)
        del z_bulk, z_fold
    if "ess_tail" in which:
        if s is None or d % 2 == 1:
            s = np.sort(x.reshape(len(idx), -1), axis=1)
        low = _quantile_type7(s, 0.05)
        high = _quantile_type7(s, 0.95)
        e_low = _ess_core(xs <= low[:, None, None])
        e_high = _ess_core(xs <= high[:, None, None])
        res["ess_tail"][idx] = np.minimum(e_low, e_high)
    if "ess_mean" in which or "mcse_mean" in which:
        e_mean = _ess_core(xs)
        if "ess_mean" in which:
            res["ess_mean"][idx] = e_mean
        if "mcse_mean" in which:
            sd = x.reshape(len(idx), -1).std(axis=1, ddof=1)
            res["mcse_mean"][idx] = sd / np.sqrt(e_mean)
    if "ess_sd" in which or "mcse_sd" in which:
        c2 = (x - x.mean(axis=(1, 2), keepdims=True)) ** 2
        e_sd = _ess_core(_split(c2))
        if "ess_sd" in which:
            res["ess_sd"][idx] = e_sd
        if "mcse_sd" in which:
            evar = c2.mean(axis=(1, 2))
            varvar = ((c2**2).mean(axis=(1, 2)) - evar**2) / e_sd
            res["mcse_sd"][idx] = np.sqrt(varvar / evar / 4)
    return res


# --------------------------------------------------------------------------------------------
# public one-diagnostic functions
# --------------------------------------------------------------------------------------------
def rhat(draws, method: str = "rank"):
    """Potential scale reduction across chains.

    Args:
        draws: array (chain, draw, *params); at least 2 chains and 4 draws.
        method: ``"rank"`` (default: max of rank-normalised bulk and folded split R-hat,
            ArviZ's ``az.rhat(method="rank")``), ``"split"`` (classic split R-hat) or
            ``"identity"`` (classic Gelman-Rubin R-hat on whole chains).

    Returns:
        float or array of shape ``params``.
    """
    if method == "rank":
        return rank_diagnostics(draws, which=("rhat",))["rhat"]
    if method not in ("split", "identity"):
        raise MitmlError(f"'method' must be 'rank', 'split' or 'identity', got {method!r}.")
    x, pshape = _as_draws(draws)
    y = _split(x) if method == "split" else x
    out = np.where(_valid(x, 2), _rhat_classic(y), np.nan)
    return _finish(out, pshape)


def ess(draws, method: str = "bulk", relative: bool = False):
    """Effective sample size (ArviZ's ``az.ess``).

    Args:
        draws: array (chain, draw, *params); at least 4 draws.
        method: ``"bulk"`` (rank-normalised split chains), ``"tail"`` (minimum over the 5% and
            95% quantile indicators), ``"mean"`` (split chains) or ``"sd"``.
        relative: divide by the number of draws.

    Returns:
        float or array of shape ``params``.
    """
    if method not in ("bulk", "tail", "mean", "sd"):
        raise MitmlError(f"'method' must be 'bulk', 'tail', 'mean' or 'sd', got {method!r}.")
    name = f"ess_{method}"
    out = rank_diagnostics(draws, which=(name,))[name]
    if relative:
        shape = np.shape(draws)
        out = out / (shape[0] * (shape[1] // 2) * 2)
    return out


def mcse(draws, method: str = "mean"):
    """Monte Carlo standard error of the posterior mean or sd (ArviZ's ``az.mcse``).

    Args:
        draws: array (chain, draw, *params); at least 4 draws.
        method: ``"mean"`` or ``"sd"``.

    Returns:
        float or array of shape ``params``.
    """
    if method not in ("mean", "sd"):
        raise MitmlError(f"'method' must be 'mean' or 'sd', got {method!r}.")
    name = f"mcse_{method}"
    return rank_diagnostics(draws, which=(name,))[name]
