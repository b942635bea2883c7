"""Rank-normalised split R-hat, bulk/tail ESS and MCSE across chains (Vehtari et al. 2021).

The definitions follow ArviZ's legacy implementation (``arviz.stats.diagnostics``, arviz 0.x:
``rhat(method="rank")``, ``ess(method="bulk"|"tail"|"mean"|"sd")``, ``mcse(method="mean"|"sd")``)
line by line, so that the values agree with ArviZ's to rounding error; the computation is
vectorised over parameters instead of looping in Python:

* every parameter's draws are sorted once and ranked with ties averaged; the folded draws
  ``|x - median|`` are ranked by merging the two halves of that sort, and only their per-chain
  sums are kept (all folded R-hat needs); the Blom scores come from a table. With many draws,
  one float sort of tagged keys does it and the sorted values are never gathered
  (:mod:`mitml_jax.diagnostics.rank_row`; chains of odd length: the middle draws, left out of
  the split chains, join the tail quantiles by a binary search); other inputs (few draws,
  infinite values) take the general path (:mod:`mitml_jax.diagnostics.rank_normal`);
* autocovariances are averaged over chains, summed directly for the first lags (more lags, and
  the FFT, only where Geyer's sequence needs them), and Geyer's sequences run for all parameters
  at once; the tail indicators' pair counts come from the positions of their ones
  (:mod:`mitml_jax.diagnostics.ess_geyer`);
* parameters are copied out of the ``(chain, draw, K)`` input a cache line at a time and
  processed one L2-sized chunk at a time, on several threads, each reusing its own buffers
  (fresh memory costs a page fault per page: more than the arithmetic done in it).

Input arrays are ``(chain, draw, *params)``; results have shape ``params`` (a float for none).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import numpy as np

from ..errors import MitmlError, MitmlTypeError
from ..sampling.threads import thread_limit
from .ess_geyer import centred_lag_sums, direct_lags, ess_core, ess_indicator, row_dot
from .entries import gather_draws
from .numpy_sort import hint_slow_sort
from .rank_normal import first_draw_shift, rank_scores, scratch, sort_order
from .rank_row import rank_rows

__all__ = [
    "rhat", "ess", "mcse", "rank_diagnostics", "rank_diagnostics_by_parameter", "diagnose_chunk",
]

_CHUNK_ELEMENTS = 2**17  # parameters are processed in chunks of about this many draws (L2-sized)
_GATHER = 8  # parameters copied out of (chain, draw, K) draws together (one cache line)
# draws per parameter from which the per-parameter tagged-key path (rank_row) beats the general
# path, whose sort is vectorised over parameters (measured crossover ~1.6e4 on 2 AMD EPYC cores)
_ROW_MIN_DRAWS = 2**14


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _checked(draws, name: str = "draws") -> np.ndarray:
    """Draws as a float array with at least two dimensions (chain, draw, ...), or an error."""
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
    return np.asarray(x, dtype=float)


def _as_draws(draws, name: str = "draws") -> tuple[np.ndarray, tuple]:
    """(chain, draw, *params) -> float array (K, chain, draw) plus the params shape."""
    x = _checked(draws, name)
    return np.ascontiguousarray(np.moveaxis(_flat_params(x), 2, 0)), x.shape[2:]


def _as_chain_draw(draws) -> tuple[np.ndarray, tuple]:
    """(chain, draw, *params) -> float array (chain, draw, K) (no transposed copy), params shape."""
    x = _checked(draws)
    return _flat_params(x), x.shape[2:]


def _flat_params(x: np.ndarray) -> np.ndarray:
    """(chain, draw, *params) -> (chain, draw, K), also for zero chains or draws."""
    return x.reshape(x.shape[:2] + (int(np.prod(x.shape[2:], dtype=np.int64)),))


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


def _rhat_classic(y: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat of (K, M, n) chains (ArviZ ``_rhat``)."""
    n = y.shape[2]
    chain_mean = y.mean(axis=2)
    chain_var = y.var(axis=2, ddof=1)
    between = n * chain_mean.var(axis=1, ddof=1)
    within = chain_var.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _quantile_type7(s: np.ndarray, prob: float) -> np.ndarray:
    """R type-7 quantile of sorted rows, with scipy ``mquantiles(alphap=1, betap=1)`` arithmetic."""
    n = s.shape[1]
    aleph = n * prob + (1.0 - prob)
    kk = int(np.clip(np.floor(aleph), 1, n - 1))
    gamma = float(np.clip(aleph - kk, 0, 1))
    return (1.0 - gamma) * s[:, kk - 1] + gamma * s[:, kk]


def _valid(x: np.ndarray, min_chains: int) -> np.ndarray:
    if x.shape[1] < max(min_chains, 1) or x.shape[2] < 4:  # also no chains or no draws
        return np.zeros(x.shape[0], bool)
    return ~np.isnan(x.min(axis=(1, 2)))  # NaN iff any draw is NaN (no full-size temporary)


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
    x, pshape = _as_chain_draw(draws)
    c, d, k = x.shape
    step = max(1, _CHUNK_ELEMENTS // max(1, c * d))
    group = step * -(-_GATHER // step)  # parameters gathered together, a multiple of step

    def chunk(lo: int, work: dict) -> dict:
        hi = min(lo + group, k)
        buf = scratch(work, "gather", (group, c, d))[: hi - lo]
        xk = gather_draws(x, np.arange(lo, hi), buf)
        parts = [diagnose_chunk(xk[i : i + step], which, work) for i in range(0, hi - lo, step)]
        return {w: np.concatenate([p[w] for p in parts]) for w in which}

    out = _map_chunks(chunk, list(range(0, k, group)), k, which, c * d * k)
    return {w: _finish(v, pshape) for w, v in out.items()}


def diagnostic_threads(tasks: int) -> int:
    """Threads for the diagnostics of ``tasks`` independent chunks of draws.

    At most 4 by default (NumPy's sort, take and dot release the GIL, the rest of each step does
    not); ``MITML_JAX_DIAGNOSTIC_THREADS=n`` in the environment sets the cap, e.g. on machines with
    many cores. Never more than the cores this process may run on, nor than ``tasks``.
    """
    cap = thread_limit("MITML_JAX_DIAGNOSTIC_THREADS", 4, "for summary() and the rank diagnostics")
    return max(1, min(tasks, cap))


def _map_chunks(fn, starts, k: int, which, size: int) -> dict:
    """``fn(start, work)`` for every chunk, on several threads for large inputs: (K,) arrays.

    Every thread keeps its own dict of reusable buffers for the duration of the call.
    """
    hint_slow_sort(size, stacklevel=4)  # the caller of rank_diagnostics(_by_parameter)
    out = {w: np.full(k, np.nan) for w in which}
    local = threading.local()

    def run(lo):
        work = getattr(local, "work", None)
        if work is None:
            work = local.work = {}
        return fn(lo, work)

    workers = diagnostic_threads(len(starts))
    if workers > 1 and size >= 2**20:  # NumPy's sort, take and dot release the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, starts))
    else:
        parts = [run(lo) for lo in starts]
    for lo, part in zip(starts, parts):
        for w in which:
            out[w][lo : lo + len(part[w])] = part[w]
    return out


def rank_diagnostics_by_parameter(x: np.ndarray, which) -> dict:
    """:func:`rank_diagnostics` for float draws laid out (parameter, chain, draw): (K,) arrays."""
    k, c, d = x.shape
    step = max(1, _CHUNK_ELEMENTS // max(1, c * d))
    return _map_chunks(lambda lo, work: diagnose_chunk(x[lo : lo + step], which, work),
                       list(range(0, k, step)), k, which, x.size)


def _rhat_from_moments(chain_mean, chain_var, n: int) -> np.ndarray:
    """Gelman-Rubin R-hat from (K, M) chain means and variances (ArviZ ``_rhat``)."""
    between = n * chain_mean.var(axis=1, ddof=1)
    within = chain_var.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def diagnose_chunk(x: np.ndarray, which, work=None) -> dict:
    """:func:`rank_diagnostics_by_parameter` of one chunk (K, C, D), on the calling thread.

    ``work``: dict of reusable buffers, kept between calls on the same thread. NumPy's floating
    point warnings are off: infinite draws, constant draws and overflowing moments give NaN or
    infinite results (as in ArviZ), not a warning per chunk (the error state is per thread).
    """
    with np.errstate(all="ignore"):
        return _diagnose_chunk(x, which, work)


def _diagnose_chunk(x: np.ndarray, which, work) -> dict:
    k, c, d = x.shape
    res = {w: np.full(k, np.nan) for w in which}
    ok = _valid(x, 1)
    if not ok.any():
        return res
    idx = np.flatnonzero(ok)
    if len(idx) < k:
        x = x[idx]
    xs = _split(x)
    kk, m, n = xs.shape
    s = order = spread = None
    bulk_needed = bool({"rhat", "ess_bulk"} & set(which))
    fast = None
    if c * d >= _ROW_MIN_DRAWS and (bulk_needed or "ess_tail" in which):
        middles = x[:, :, d // 2] if d % 2 else None  # left out of the split, not of the quantiles
        fast = rank_rows(xs, bulk_needed, bulk_needed, "ess_tail" in which, work, middles)
    if fast is not None:
        spread = fast["spread"]
    if bulk_needed:
        if fast is not None:
            z_bulk, (fold_sums, fold_squares) = fast["z"], fast["fold"]
        else:
            z_bulk, (fold_sums, fold_squares), s, order = rank_scores(xs, work)
            spread = s[:, -1] - s[:, 0]
        moments = centred_lag_sums(z_bulk, direct_lags(n), work)
        if "rhat" in which and c >= 2:
            bulk = _rhat_from_moments(moments[0], moments[3] / (n - 1), n)
            fold_mean = fold_sums / n  # mean within-chain variance from the total sum of squares
            within = (fold_squares - n * (fold_mean**2).sum(axis=1)) / (m * (n - 1))
            # that difference cancels to rounding noise where every chain's folded draws are
            # constant: below zero it is zero (between-chain variance > 0: R-hat is infinite)
            fold = _rhat_from_moments(fold_mean, np.maximum(within, 0.0)[:, None], n)
            # ArviZ's Python max(bulk, folded) keeps the bulk R-hat where the folded one is NaN
            # (all folded draws equal, e.g. two values balanced around the median)
            res["rhat"][idx] = np.where(np.isnan(fold), bulk, np.maximum(bulk, fold))
        if "ess_bulk" in which:  # scores are constant only where the draws are
            res["ess_bulk"][idx] = ess_core(z_bulk, moments=moments,
                                            spread=np.where(spread > 0, np.inf, 0.0))
        del z_bulk, moments
    if "ess_tail" in which:
        if fast is not None:
            res["ess_tail"][idx] = np.minimum(ess_indicator(fast["tail"][0], m, n, work=work),
                                              ess_indicator(fast["tail"][1], m, n, work=work))
        else:
            res["ess_tail"][idx] = _ess_tail(x, xs, s, order, work)
    if "ess_mean" in which or "mcse_mean" in which:
        e_mean = ess_core(xs, work=work, spread=spread, shifted=True)
        if "ess_mean" in which:
            res["ess_mean"][idx] = e_mean
        if "mcse_mean" in which:
            flat = x.reshape(len(idx), -1)
            dev = np.subtract(flat, first_draw_shift(flat[:, 0])[:, None],
                              out=scratch(work, "centred_all", flat.shape))
            dev -= dev.mean(axis=1)[:, None]  # shifted first: a large mean keeps its digits
            sd = np.sqrt(row_dot(dev, dev) / (flat.shape[1] - 1))  # np.std(ddof=1)
            res["mcse_mean"][idx] = sd / np.sqrt(e_mean)
    if "ess_sd" in which or "mcse_sd" in which:
        c2 = x - first_draw_shift(x[:, 0, 0])[:, None, None]
        c2 = (c2 - c2.mean(axis=(1, 2), keepdims=True)) ** 2
        e_sd = ess_core(_split(c2))
        if "ess_sd" in which:
            res["ess_sd"][idx] = e_sd
        if "mcse_sd" in which:
            evar = c2.mean(axis=(1, 2))
            varvar = ((c2**2).mean(axis=(1, 2)) - evar**2) / e_sd
            # constant draws: 0 (ArviZ's 0 / 0 gives NaN or, from rounding noise, 0)
            flat = x.reshape(len(idx), -1)
            constant = flat.max(axis=1) == flat.min(axis=1)
            res["mcse_sd"][idx] = np.where(constant, 0.0, np.sqrt(varvar / evar / 4))
    return res


def _ess_tail(x, xs, s, order, work=None) -> np.ndarray:
    """Tail ESS: minimum ESS of the indicators ``x <= q05`` and ``x <= q95`` (split chains).

    The quantiles come from all draws; the indicators' ones are read off the sorted split draws
    (``x > q95`` is used for the upper one: the same ESS, fewer ones).
    """
    k, m, n = xs.shape
    if s is None or xs.shape[1] * xs.shape[2] != x.shape[1] * x.shape[2]:
        full = np.sort(x.reshape(k, -1), axis=1)  # odd draws: the quantiles need the middle draw
    else:
        full = s
    low = _quantile_type7(full, 0.05)
    high = _quantile_type7(full, 0.95)
    if s is None:
        order, s = sort_order(xs.reshape(k, -1), work=work)
    pos_low, pos_high = [], []
    for row in range(k):
        pos_low.append(order[row, : np.searchsorted(s[row], low[row], side="right")])
        pos_high.append(order[row, np.searchsorted(s[row], high[row], side="right") :])
    return np.minimum(ess_indicator(pos_low, m, n, work=work),
                      ess_indicator(pos_high, m, n, work=work))


# --------------------------------------------------------------------------------------------
# public one-diagnostic functions
# --------------------------------------------------------------------------------------------
def rhat(draws, method: str = "rank"):
    """Potential scale reduction across chains.

    Args:
        draws: array (chain, draw, *params); at least 2 chains and 4 draws
            (fewer give NaN, as ArviZ).
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
    ok = _valid(x, 2)
    out = np.full(x.shape[0], np.nan)
    if ok.any():
        y = x if ok.all() else x[ok]
        with np.errstate(all="ignore"):  # infinite draws: NaN, without warnings
            out[ok] = _rhat_classic(_split(y) if method == "split" else y)
    return _finish(out, pshape)


def ess(draws, method: str = "bulk", relative: bool = False):
    """Effective sample size (ArviZ's ``az.ess``).

    Args:
        draws: array (chain, draw, *params); at least 4 draws (fewer give
            NaN, as ArviZ).
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
        size = shape[0] * (shape[1] // 2) * 2
        if size:  # no draws: already NaN
            out = out / size
    return out


def mcse(draws, method: str = "mean"):
    """Monte Carlo standard error of the posterior mean or sd (ArviZ's ``az.mcse``).

    Args:
        draws: array (chain, draw, *params); at least 4 draws (fewer give
            NaN, as ArviZ).
        method: ``"mean"`` or ``"sd"``.

    Returns:
        float or array of shape ``params``.
    """
    if method not in ("mean", "sd"):
        raise MitmlError(f"'method' must be 'mean' or 'sd', got {method!r}.")
    name = f"mcse_{method}"
    return rank_diagnostics(draws, which=(name,))[name]
