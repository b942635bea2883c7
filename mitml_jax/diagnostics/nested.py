"""Nested R-hat for many short chains grouped into superchains (Margossian et al. 2024).

With ``K`` superchains of ``M`` chains of ``N`` draws each:

* ``B = var_k(superchain mean)`` (denominator K - 1),
* ``W_k = var_m(chain mean within superchain k)`` (denominator M - 1; 0 when M = 1)
  ``+ mean_m(within-chain variance)`` (denominator N - 1; 0 when N = 1),
* ``nRhat = sqrt(1 + B / mean_k W_k)``.

This is arviz-stats' ``rhat_nested`` without chain splitting. It suits the many-chain design where
each chain contributes only a few imputation-phase draws. Superchains may hold different numbers of
chains ``M_k`` (chains not a multiple of ``K``): superchain k's mean and ``W_k`` use its own ``M_k``
chains.
"""

from __future__ import annotations

import numpy as np

from ..errors import MitmlError
from .rank_normal import first_draw_shift

__all__ = ["rhat_nested", "rhat_nested_by_parameter", "rhat_nested_from_moments",
           "default_superchains"]


def default_superchains(n_chains: int, n_superchains: int = 4) -> np.ndarray:
    """Superchain ids for ``n_chains`` chains: ``n_superchains`` blocks of consecutive chains,
    every chain in one (block sizes differ by at most one where ``n_chains`` is not a multiple)."""
    if n_superchains < 2:
        raise MitmlError(f"Nested R-hat needs at least 2 superchains, got {n_superchains}.")
    if n_chains < n_superchains:
        raise MitmlError(
            f"{n_chains} chains cannot form {n_superchains} superchains; run more chains."
        )
    return np.arange(n_chains) * n_superchains // n_chains


def rhat_nested(draws, superchain_ids) -> np.ndarray:
    """Nested R-hat of ``draws`` (chain, draw, *params).

    Args:
        draws: array (chain, draw, *params).
        superchain_ids: (chain,) integer superchain of each chain (-1 leaves a chain out); at
            least two superchains. Superchains of different sizes are allowed: each one's
            within-superchain variance uses its own chains (the definition below per superchain).

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
    if len(labels) < 2:
        raise MitmlError(
            "'superchain_ids' must define at least two superchains (ids >= 0); got sizes "
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
    """Nested R-hat from per-chain means and variances (K, C) (variances 0 for one draw).

    Superchains may differ in size: superchain k's mean and between-chain variance (0 for one
    chain) come from its own chains; with equal sizes this is Margossian et al.'s statistic."""
    ids = np.asarray(superchain_ids)
    keep = ids >= 0
    labels, inverse, counts = np.unique(ids[keep], return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    cols = np.flatnonzero(keep)[order]
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    mean = chain_mean[:, cols]  # (K, chains kept), grouped by superchain
    var = chain_var[:, cols]
    with np.errstate(all="ignore"):  # infinite chain means give NaN, without warnings
        super_mean = np.add.reduceat(mean, starts, axis=1) / counts  # (K, superchains)
        within_chain = np.add.reduceat(var, starts, axis=1) / counts
        dev = mean - np.repeat(super_mean, counts, axis=1)
        squares = np.add.reduceat(dev * dev, starts, axis=1)
        between_chain = np.where(counts > 1, squares / np.maximum(counts - 1, 1), 0.0)
        between = super_mean.var(axis=1, ddof=1)
        within = np.mean(within_chain + between_chain, axis=1)
        return np.sqrt(1.0 + between / within)
