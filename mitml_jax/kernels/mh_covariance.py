"""jomo's element-wise random-walk Metropolis update of a covariance matrix.

Used where a covariance has fixed latent blocks (categorical targets): the level-1 covariance
``Omega`` with categorical level-1 targets, ``Psi`` with categorical level-2 targets.

jomo (``jomo1ranC.c``, ``jomo2comC.c``): every free element ``(j, k)``, ``j <= k``, outside the fixed
latent blocks, is visited in order (``j`` outer, ``k`` inner). The proposal is normal around the
current value with sd ``cov[j, j] * sqrt(11.6 / n)`` on the diagonal and
``0.1 * sqrt(cov[j, j] * cov[k, k])`` off it, redrawn (up to 100 times in jomo; ``n_tries`` in
parallel here) until the matrix is positive definite; it is accepted with probability
``exp(newlogLH - logLH)`` on the residual log-likelihood ``-tr(C^-1 S)/2 - n log|C|/2`` (flat prior,
no Hastings correction for the scale-dependent proposal sd, exactly as jomo). A proposal that is
never positive definite is rejected.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .jomo_linalg import chol_solve

__all__ = ["free_elements", "normal_loglik", "mh_covariance_update"]


def free_elements(dim: int, fixed_blocks: Sequence[tuple]) -> list:
    """Elements ``(j, k)``, ``j <= k``, outside the fixed latent blocks, in jomo's visiting order."""
    fixed = np.zeros((dim, dim), dtype=bool)
    for pos, k in fixed_blocks:
        fixed[pos : pos + k, pos : pos + k] = True
    return [(j, k) for j in range(dim) for k in range(j, dim) if not fixed[j, k]]


def normal_loglik(chol, scatter, n):
    """``-tr(C^-1 S)/2 - n log|C|/2`` from the Cholesky factor of C."""
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    trace = jnp.trace(chol_solve(chol, scatter), axis1=-2, axis2=-1)
    return -0.5 * trace - 0.5 * n * logdet


def mh_covariance_update(key, cov, scatter, n, elements: Sequence[tuple], n_tries: int = 8,
                         log_target=None):
    """One jomo sweep of element-wise Metropolis updates.

    Args:
        key: PRNG key.
        cov: (d, d) current covariance.
        scatter: (d, d) sum of outer products of the residuals (or another statistic used by
            ``log_target``).
        n: number of residual vectors (scale of the proposal sd, and of the log-likelihood).
        elements: static list of ``(j, k)`` pairs to update (see :func:`free_elements`).
        n_tries: proposals drawn in parallel per element; the first positive-definite one is used.
        log_target: ``f(cov, chol) -> float``; default :func:`normal_loglik` with ``scatter, n``.

    Returns:
        ``(cov, n_accepted)``.
    """
    if log_target is None:
        def log_target(c, chol):  # noqa: ARG001
            return normal_loglik(chol, scatter, n)

    chol = jnp.linalg.cholesky(cov)
    current = log_target(cov, chol)
    accepted = jnp.zeros((), dtype=jnp.int32)
    keys = jax.random.split(key, 2 * max(len(elements), 1))
    for idx, (j, k) in enumerate(elements):
        if j == k:
            sd = cov[j, j] * jnp.sqrt(11.6 / n)
        else:
            sd = 0.1 * jnp.sqrt(cov[j, j] * cov[k, k])
        vals = cov[j, k] + sd * jax.random.normal(keys[2 * idx], (n_tries,), dtype=cov.dtype)
        cands = jnp.broadcast_to(cov, (n_tries,) + cov.shape)
        cands = cands.at[:, j, k].set(vals).at[:, k, j].set(vals)
        chols = jnp.linalg.cholesky(cands)
        pd = jnp.all(jnp.isfinite(chols), axis=(-2, -1)) & jnp.all(
            jnp.diagonal(chols, axis1=-2, axis2=-1) > 0, axis=-1
        )
        first = jnp.argmax(pd)
        any_pd = jnp.any(pd)
        cand = cands[first]
        cand_chol = jnp.where(any_pd, chols[first], chol)
        proposed = log_target(cand, cand_chol)
        log_u = jnp.log(jax.random.uniform(keys[2 * idx + 1], dtype=cov.dtype))
        accept = any_pd & (log_u < proposed - current)
        cov = jnp.where(accept, cand, cov)
        chol = jnp.where(accept, cand_chol, chol)
        current = jnp.where(accept, proposed, current)
        accepted = accepted + accept.astype(jnp.int32)
    return cov, accepted
