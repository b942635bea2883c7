"""mitml's single-chain convergence statistics (spec 3.4), vectorised over leading axes.

* :func:`segment_rhat` = ``.GelmanRubin(x, n.Rhat)``: Gelman & Rubin (1992) potential scale
  reduction with the degrees-of-freedom correction, computed on ``n_segments`` consecutive
  segments of one chain.
* :func:`sd_prop` = ``.SDprop(x)``: Hoff's (2009) goodness of approximation
  ``sqrt((sp0 / N) / var(x))`` with the spectral density at zero from a Yule-Walker AR fit whose
  order is chosen by AIC (R's ``ar(x, aic = TRUE)``).
* :func:`autocorrelation` (lag-``ell`` ACF) and :func:`reduced_acf` (``.reducedACF``: lag 1 and the
  smoothed lags ``k`` and ``2k``). Lags the chain is too short for give NaN (mitml errors or
  drops the row: bug B7).

All functions take draws with the chain's draws on the **last** axis and return arrays of the
leading shape.
"""

from __future__ import annotations

import numpy as np

from ..errors import MitmlError
from .ess_geyer import _BLOCK_BYTES, row_dot
from .rank_normal import first_draw_shift, scratch

__all__ = [
    "segment_rhat", "segment_moments", "segment_rhat_from_moments", "sd_prop", "autocorrelation",
    "reduced_acf", "smoothed_acf",
]


def segment_rhat(x, n_segments: int = 3, work=None) -> np.ndarray:
    """mitml's R-hat of one chain cut into ``n_segments`` segments (``.GelmanRubin``).

    Args:
        x: draws (..., N); the last ``N mod n_segments`` draws are dropped.
        n_segments: number of segments M >= 2.
        work: optional dict of reusable buffers (see :func:`~.rank_normal.scratch`).

    Returns:
        array of the leading shape: ``sqrt((V / W) * df / (df - 2))``; 1 where every segment is
        constant and all segment means agree.
    """
    xbar, s2, n, _ = segment_moments(x, n_segments, work, shifted=True)
    return segment_rhat_from_moments(xbar, s2, n)


def segment_moments(x, n_segments: int, work=None, shifted: bool = False):
    """Means and variances (ddof 1) of ``n_segments`` consecutive segments: (..., M) each, and n.

    The last ``N mod n_segments`` draws belong to no segment. Every chain is first shifted by its
    first draw (exact for draws within a factor of two of it), so that means and variances keep
    their digits when a chain's mean is large against its spread (``1e12`` plus noise of
    ``1e-3``, draws that differ in the last bits). With ``shifted``, the means are returned
    relative to that shift, and the shift (the first draws, shape ``...``) as a fourth item.
    """
    x = np.asarray(x, dtype=float)
    m = int(n_segments)
    if m < 2:
        raise MitmlError(f"'n_rhat' must be at least 2 (got {n_segments}); use None to disable.")
    total = x.shape[-1]
    n = total // m
    if n < 2:
        raise MitmlError(
            f"'n_rhat' = {m} segments need at least {2 * m} draws; the chain has {total}."
        )
    lead = x.shape[:-1]
    count = int(np.prod(lead))
    xbar = np.empty((count, m))
    s2 = np.empty((count, m))
    shift = np.empty(count)
    # a block of chains at a time, centred into a cache-sized buffer: no full-size temporaries,
    # and no full-size copy of a non-contiguous input (e.g. a moveaxis view)
    block = max(1, _BLOCK_BYTES // (8 * total))
    buf = scratch(work, "segments", (min(block, count), m, n))
    for lo, rows in _row_blocks(x, count, block):
        seg = rows[:, : n * m].reshape(-1, m, n)
        first = first_draw_shift(rows[:, 0])  # an infinite first draw: no shift
        shift[lo : lo + len(seg)] = first
        dev = np.subtract(seg, first[:, None, None], out=buf[: len(seg)])
        mean = dev.mean(axis=-1)
        xbar[lo : lo + len(seg)] = mean
        dev -= mean[..., None]
        s2[lo : lo + len(seg)] = row_dot(dev, dev)
    s2 = (s2 / (n - 1)).reshape(lead + (m,))
    if shifted:
        return xbar.reshape(lead + (m,)), s2, n, shift.reshape(lead)
    return (xbar + shift[:, None]).reshape(lead + (m,)), s2, n


def _row_blocks(x: np.ndarray, count: int, block: int):
    """``(start, rows)`` for blocks of ``block`` rows of ``x`` viewed as (count, x.shape[-1]).

    Views where the leading axes merge without a copy, else a copy of each block only.
    """
    try:
        flat = np.reshape(x, (count, x.shape[-1]), copy=False)
    except ValueError:  # the leading axes do not merge without a copy
        flat = None
    except TypeError:  # pragma: no cover - NumPy < 2.1 has no copy argument
        flat = x.reshape(count, x.shape[-1]) if x.flags.c_contiguous else None
    for lo in range(0, count, block):
        hi = min(lo + block, count)
        if flat is not None:
            yield lo, flat[lo:hi]
        else:
            yield lo, x[np.unravel_index(np.arange(lo, hi), x.shape[:-1])]


def segment_rhat_from_moments(xbar: np.ndarray, s2: np.ndarray, n: int) -> np.ndarray:
    """:func:`segment_rhat` from the segment means and variances (..., M) of n draws each."""
    m = xbar.shape[-1]
    b_n = xbar.var(axis=-1, ddof=1)
    w = s2.mean(axis=-1)
    mu = xbar.mean(axis=-1)
    sigma2 = (n - 1) / n * w + b_n
    v = sigma2 + b_n / m
    b = n * b_n

    def cov(a, c):
        return ((a - a.mean(-1, keepdims=True)) * (c - c.mean(-1, keepdims=True))).sum(-1) / (m - 1)

    var_v = (
        ((n - 1) / n) ** 2 * s2.var(axis=-1, ddof=1) / m
        + ((m + 1) / (m * n)) ** 2 * 2 / (m - 1) * b**2
        # mitml writes cov(s2, xbar^2) - 2 mu cov(s2, xbar), which equals cov(s2, (xbar - mu)^2);
        # the centred form keeps its digits when |mu| is large against the spread of the draws
        + 2 * (m + 1) * (n - 1) / (m * n**2) * (n / m) * cov(s2, (xbar - mu[..., None]) ** 2)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2 * v**2 / var_v
        out = np.sqrt((v / w) * df / (df - 2))
    flat = (b_n == 0) & np.all(s2 == 0, axis=-1)
    return np.where(flat, 1.0, out)


def autocorrelation(x, max_lag: int) -> np.ndarray:
    """ACF ``rho(0..max_lag)`` of demeaned chains (divisor N, as R's ``acf``): (..., max_lag+1).

    Lags >= N are NaN; a constant chain has ACF 0 at every lag >= 1 (1 at lag 0); a chain with
    a NaN or infinite draw has ACF NaN (mitml stops with an error).
    """
    import scipy.fft as sfft

    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    with np.errstate(all="ignore"):  # a NaN or infinite draw makes that chain's ACF NaN
        y = x - x[..., :1]  # shifted by the first draw first: see segment_moments
        y -= y.mean(axis=-1, keepdims=True)
    length = sfft.next_fast_len(2 * n, real=True)
    f = sfft.rfft(y, n=length, axis=-1, workers=-1)
    acov = sfft.irfft(f.real**2 + f.imag**2, n=length, axis=-1, workers=-1)
    lags = min(max_lag, n - 1) + 1
    acov = acov[..., :lags]
    denom = acov[..., :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(denom > 0, acov / np.where(denom > 0, denom, 1.0), 0.0)
    rho[..., 0] = 1.0
    rho = np.where(np.isnan(denom), np.nan, rho)  # not 0 (as for a constant chain)
    if max_lag + 1 > lags:
        pad = np.full(x.shape[:-1] + (max_lag + 1 - lags,), np.nan)
        rho = np.concatenate([rho, pad], axis=-1)
    return rho


_WEIGHTS = np.exp(-0.5 * (np.arange(-2, 3) / 0.5) ** 2)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def smoothed_acf(rho: np.ndarray, lag: int) -> np.ndarray:
    """mitml's smoothed ACF at ``lag``: ``sum_{d=-2..2} w_d rho(lag + d)``, w ~ dnorm(d, 0, .5)."""
    rho = np.asarray(rho, dtype=float)
    if lag - 2 < 0 or lag + 2 >= rho.shape[-1]:
        return np.full(rho.shape[:-1], np.nan)
    return rho[..., lag - 2 : lag + 3] @ _WEIGHTS


def reduced_acf(x, k: int) -> np.ndarray:
    """``.reducedACF``: (..., 3) with ACF at lag 1 and smoothed ACF at lags ``k`` and ``2k``.

    A smoothed lag needs ``lag + 2 <= N - 1``; otherwise that entry is NaN (fixes B7).
    """
    k = int(k)
    rho = autocorrelation(x, 2 * k + 2)
    return np.stack([rho[..., 1], smoothed_acf(rho, k), smoothed_acf(rho, 2 * k)], axis=-1)


def _levinson(acov: np.ndarray, order_max: int):
    """Yule-Walker by Levinson-Durbin (R's ``eureka``) for rows of autocovariances (K, p+1).

    Returns coefficients (K, p, p) (row ``l-1`` holds the order-``l`` fit) and innovation
    variances (K, p+1) for orders 0..p.
    """
    k = acov.shape[0]
    coefs = np.zeros((k, order_max, order_max))
    var = np.empty((k, order_max + 1))
    var[:, 0] = acov[:, 0]
    phi = np.zeros((k, 0))
    for lag in range(1, order_max + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            num = acov[:, lag] - (phi * acov[:, lag - 1 : 0 : -1][:, : lag - 1]).sum(axis=1)
            kappa = num / var[:, lag - 1]
        phi = np.concatenate([phi - kappa[:, None] * phi[:, ::-1], kappa[:, None]], axis=1)
        coefs[:, lag - 1, :lag] = phi
        var[:, lag] = var[:, lag - 1] * (1 - kappa**2)
    return coefs, var


def sd_prop(x, return_n_eff: bool = False):
    """mitml's goodness of approximation ``.SDprop`` for chains on the last axis.

    Args:
        x: draws (..., N).
        return_n_eff: also return ``n.eff = var(x) / (sp0 / N)`` (N for a constant chain).

    Returns:
        SDprop array of the leading shape (0 for constant chains, NaN for chains with a NaN or
        infinite draw), and n.eff if asked.
    """
    with np.errstate(all="ignore"):  # NaN or infinite draws: NaN, without warnings
        return _sd_prop(x, return_n_eff)


def _sd_prop(x, return_n_eff: bool):
    x = np.asarray(x, dtype=float)
    lead = x.shape[:-1]
    n = x.shape[-1]
    flat = x.reshape(-1, n)
    flat = flat - flat[:, :1]  # shifted by the first draw: see segment_moments
    order_max = int(min(n - 1, np.floor(10 * np.log10(n))))
    y = flat - flat.mean(axis=1, keepdims=True)
    acov = autocorrelation(flat, order_max)  # correlations; rescale to covariances
    c0 = (y**2).sum(axis=1) / n
    acov = acov * c0[:, None]
    coefs, var = _levinson(acov, order_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        aic = n * np.log(var) + 2 * np.arange(order_max + 1)
    aic = np.where(np.isnan(aic), np.inf, aic)
    order = np.argmin(aic, axis=1)
    var_pred = np.take_along_axis(var, order[:, None], axis=1)[:, 0] * n / (n - (order + 1))
    phi_sum = np.zeros(len(order))
    pos = order > 0
    phi_sum[pos] = coefs[pos, order[pos] - 1, :].sum(axis=1)
    sp0 = var_pred / (1 - phi_sum) ** 2
    vx = flat.var(axis=1, ddof=1)
    constant = vx == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        sdp = np.where(constant, 0.0, np.sqrt((sp0 / n) / np.where(constant, 1.0, vx)))
        n_eff = np.where(constant, float(n), vx / (sp0 / n))  # R: n for a constant chain
    if return_n_eff:
        return sdp.reshape(lead), n_eff.reshape(lead)
    return sdp.reshape(lead)
