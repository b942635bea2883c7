"""Nested R-hat for many short chains grouped into superchains (Margossian et al. 2024).

With ``K`` superchains of ``M`` chains of ``N`` draws each:

* ``B = var_k(superchain mean)`` (denominator K - 1),
* ``W_k = var_m(chain mean within superchain k)`` (denominator M - 1; 0 when M = 1)
  ``+ mean_m(within-chain variance)`` (denominator N - 1; 0 when N = 1),
* ``nRhat = sqrt(1 + B / mean_k W_k)``.

This is arviz-stats' ``rhat_nested`` without chain splitting. It suits the many-chain design where
each chain contributes only a few imputation-phase draws.
"""

from __future__ import annotations

import numpy as np

from ..errors import MitmlError
from .rank_normal import first_draw_shift

__all__ = ["rhat_nested", "rhat_nested_by_parameter", "rhat_nested_from_moments",
           "default_superchains"]


def default_superchains(n_chains: int, n_superchains: int = 4) -> np.ndarray:
    """Superchain ids for ``n_chains`` chains: ``n_superchains`` blocks of consecutive chains.

    Chains beyond ``n_superchains * (n_chains // n_superchains)`` get id -1 (left out) so that
    every superchain has the same number of chains.
    """
    size = n_chains // n_superchains
    if size < 1:
        raise MitmlError(
            f"{n_chains} chains cannot form {n_superchains} superchains; run more chains."
        )
    ids = np.full(n_chains, -1)
    ids[: size * n_superchains] = np.repeat(np.arange(n_superchains), size)
    return ids


def rhat_nested(draws, superchain_ids) -> np.ndarray:
    """Nested R-hat of ``draws`` (chain, draw, *params).

    Args:
        draws: array (chain, draw, *params).
        superchain_ids: (chain,) integer superchain of each chain (-1 leaves a chain out); every
            superchain must hold the same number of chains, and there must be at least two.

    Returns:
        array of shape ``params`` (float for none).
    """
    x = np.asarray(draws, dtype=float)
    if x.ndim < 2:
        raise MitmlError(f"'draws' must be (chain, draw, ...), got shape {x.shape}.")
    pshape = x.shape[2:]
    k = int(np.prod(pshape, dtype=np.int64))  # (-1 fails for no chains or no draws)
    flat = np.moveaxis(x.reshape(x.shape[:2] + (k,)), 2, 0)
    out = rhat_nested_by_parameter(flat, superchain_ids).reshape(pshape)
    return float(out) if out.ndim == 0 else out


def rhat_nested_by_parameter(x: np.ndarray, superchain_ids) -> np.ndarray:
    """:func:`rhat_nested` for draws laid out (parameter, chain, draw): a (K,) array."""
    ids = np.asarray(superchain_ids)
    if ids.shape != (x.shape[1],):
        raise MitmlError(
            f"'superchain_ids' must have one entry per chain ({x.shape[1]}), got shape "
            f"{ids.shape}."
        )
    keep = ids >= 0
    labels, counts = np.unique(ids[keep], return_counts=True)
    if len(labels) < 2 or np.any(counts != counts[0]):
        raise MitmlError(
            "'superchain_ids' must define at least two superchains of equal size; got sizes "
            f"{counts.tolist()}."
        )
    with np.errstate(all="ignore"):  # infinite draws give NaN, without warnings
        # shifted by each parameter's first (finite) draw: a large mean keeps its digits
        first = x[:, 0, 0] if x.shape[1] and x.shape[2] else np.zeros(x.shape[0])
        x = x - first_draw_shift(first)[:, None, None]
        if x.shape[2] == 0:  # no draws: NaN
            chain_mean = np.full(x.shape[:2], np.nan)
        else:
            chain_mean = x.mean(axis=2)  # (K, C)
        chain_var = x.var(axis=2, ddof=1) if x.shape[2] > 1 else np.zeros_like(chain_mean)
    return rhat_nested_from_moments(chain_mean, chain_var, ids)


def rhat_nested_from_moments(chain_mean, chain_var, superchain_ids) -> np.ndarray:
    """Nested R-hat from per-chain means and variances (K, C) (variances 0 for one draw)."""
    ids = np.asarray(superchain_ids)
    keep = ids >= 0
    labels, counts = np.unique(ids[keep], return_counts=True)
    k, m, n = chain_mean.shape[0], len(labels), int(counts[0])
    order = np.argsort(ids[keep], kind="stable")
    cols = np.flatnonzero(keep)[order]
    chain_mean = chain_mean[:, cols].reshape(k, m, n)  # (K, superchain, chain)
    chain_var = chain_var[:, cols].reshape(k, m, n)
    with np.errstate(all="ignore"):  # infinite chain means give NaN, without warnings
        within_chain = chain_var.mean(axis=2)
        between_chain = chain_mean.var(axis=2, ddof=1) if n > 1 else 0.0
        between = chain_mean.mean(axis=2).var(axis=1, ddof=1)
        within = np.mean(within_chain + between_chain, axis=1)
        return np.sqrt(1.0 + between / within)
