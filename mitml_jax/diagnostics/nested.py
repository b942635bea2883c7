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

__all__ = ["rhat_nested", "default_superchains"]


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
    ids = np.asarray(superchain_ids)
    if x.ndim < 2 or ids.shape != (x.shape[0],):
        raise MitmlError(
            f"'superchain_ids' must have one entry per chain ({x.shape[0] if x.ndim else 0}), "
            f"got shape {ids.shape}."
        )
    keep = ids >= 0
    labels, counts = np.unique(ids[keep], return_counts=True)
    if len(labels) < 2 or np.any(counts != counts[0]):
        raise MitmlError(
            "'superchain_ids' must define at least two superchains of equal size; got sizes "
            f"{counts.tolist()}."
        )
    x = x[keep]
    order = np.argsort(ids[keep], kind="stable")
    k, m, n = len(labels), int(counts[0]), x.shape[1]
    x = x[order].reshape((k, m, n) + x.shape[2:])
    chain_mean = x.mean(axis=2)  # (K, M, ...)
    within_chain = x.var(axis=2, ddof=1).mean(axis=1) if n > 1 else 0.0
    between_chain = chain_mean.var(axis=1, ddof=1) if m > 1 else 0.0
    super_mean = chain_mean.mean(axis=1)  # (K, ...)
    between = super_mean.var(axis=0, ddof=1)
    within = np.mean(within_chain + between_chain, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(1.0 + between / within)
    return float(out) if np.ndim(out) == 0 else out
