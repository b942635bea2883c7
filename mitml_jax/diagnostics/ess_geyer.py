"""Effective sample size of (parameter, chain, draw) arrays: ArviZ's ``_ess``, vectorised.

Autocovariances are averaged over chains; the first lags are summed directly (``einsum``), and
only parameters whose Geyer sequence has not ended by then get the full FFT autocovariance.
Geyer's initial positive and initial monotone sequences are evaluated for all parameters at once
(cumulative minima of the lag pairs) instead of ArviZ's per-parameter ``while`` loops.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ess_core", "mean_autocov"]

_DIRECT_LAGS = 16  # autocovariance lags summed directly before falling back to the FFT


def mean_autocov(yc: np.ndarray) -> np.ndarray:
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


def ess_core(y: np.ndarray, relative: bool = False) -> np.ndarray:
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
        full = mean_autocov(yc[redo])
        tau[redo], _ = _tau(rho_of(full, redo), jmax)
    total = float(m * n)
    tau = np.maximum(tau, 1.0 / np.log10(total))
    out = (1.0 if relative else total) / tau
    out = np.where(bad, np.nan, out)
    return np.where(constant, float(flat.shape[1]), out)


