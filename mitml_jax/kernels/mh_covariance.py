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

from .jomo_linalg import chol, chol_solve, logdet_from_chol

__all__ = ["free_elements", "normal_loglik", "mh_covariance_update"]


def free_elements(dim: int, fixed_blocks: Sequence[tuple]) -> list:
    """Elements ``(j, k)``, ``j <= k``, outside the fixed latent blocks, in jomo's visiting order."""
    fixed = np.zeros((dim, dim), dtype=bool)
    for pos, k in fixed_blocks:
        fixed[pos : pos + k, pos : pos + k] = True
    return [(j, k) for j in range(dim) for k in range(j, dim) if not fixed[j, k]]


def normal_loglik(factor, scatter, n):
    """``-tr(C^-1 S)/2 - n log|C|/2`` from the lower Cholesky factor of C."""
    trace = jnp.trace(chol_solve(factor, scatter), axis1=-2, axis2=-1)
    return -0.5 * trace - 0.5 * n * logdet_from_chol(factor)


def mh_covariance_update(key, cov, scatter, n, elements: Sequence[tuple], n_tries: int = 8,
                         log_target=None):
    """One jomo sweep of element-wise Metropolis updates (a ``lax.scan`` over the elements).

    Args:
        key: PRNG key.
        cov: (d, d) current covariance.
        scatter: (d, d) sum of outer products of the residuals (used by the default target).
        n: number of residual vectors (scale of the proposal sd, and of the log-likelihood).
        elements: static list of ``(j, k)`` pairs to update (see :func:`free_elements`).
        n_tries: proposals drawn in parallel per element; the first positive-definite one is used.
        log_target: ``f(cov, chol) -> float``; default :func:`normal_loglik` with ``scatter, n``.

    Returns:
        ``(cov, n_accepted)``.
    """
    if not elements:
        return cov, jnp.zeros((), jnp.int32)
    if log_target is None:
        def log_target(c, factor):  # noqa: ARG001
            return normal_loglik(factor, scatter, n)

    rows = jnp.asarray([j for j, _ in elements], dtype=jnp.int32)
    cols = jnp.asarray([k for _, k in elements], dtype=jnp.int32)
    factor0 = chol(cov)
    noise = jax.random.normal(key, (len(elements), n_tries + 1), dtype=cov.dtype)

    def visit(carry, inputs):
        cov, factor, current, accepted = carry
        j, k, z = inputs
        diag = j == k
        sd = jnp.where(diag, cov[j, j] * jnp.sqrt(11.6 / n),
                       0.1 * jnp.sqrt(cov[j, j] * cov[k, k]))
        vals = cov[j, k] + sd * z[:n_tries]
        cands = jnp.broadcast_to(cov, (n_tries,) + cov.shape)
        cands = cands.at[:, j, k].set(vals).at[:, k, j].set(vals)
        chols = chol(cands)
        pd = jnp.all(jnp.isfinite(chols), axis=(-2, -1)) & jnp.all(
            jnp.diagonal(chols, axis1=-2, axis2=-1) > 0, axis=-1)
        first = jnp.argmax(pd)
        any_pd = jnp.any(pd)
        cand = cands[first]
        cand_factor = jnp.where(any_pd, chols[first], factor)
        proposed = log_target(cand, cand_factor)
        # jomo: unif_rand() < exp(new - old); z[-1] is turned into that uniform
        log_u = jnp.log(jax.scipy.special.ndtr(z[-1]))
        accept = any_pd & (log_u < proposed - current)
        cov = jnp.where(accept, cand, cov)
        factor = jnp.where(accept, cand_factor, factor)
        current = jnp.where(accept, proposed, current)
        return (cov, factor, current, accepted + accept.astype(jnp.int32)), None

    init = (cov, factor0, log_target(cov, factor0), jnp.zeros((), jnp.int32))
    (cov, _, _, accepted), _ = jax.lax.scan(visit, init, (rows, cols, noise))
    return cov, accepted
