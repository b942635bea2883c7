"""jomo's element-wise random-walk Metropolis update of a covariance matrix.

Used where a covariance has fixed latent blocks (categorical targets): the level-1 covariance
``Omega`` with categorical level-1 targets, ``Psi`` with categorical level-2 targets, and the
cluster-specific ``Omega_j`` of the ``random_L1`` samplers (a batch of matrices at once).

jomo (``jomo1ranC.c``, ``jomo2comC.c``): every free element ``(j, k)``, ``j <= k``, outside the fixed
latent blocks, is visited in order (``j`` outer, ``k`` inner). The proposal is normal around the
current value with sd ``cov[j, j] * sqrt(11.6 / n)`` on the diagonal and
``0.1 * sqrt(cov[j, j] * cov[k, k])`` off it, redrawn (up to 100 times in jomo; ``n_tries`` in
parallel here) until the matrix is positive definite; it is accepted with probability
``exp(newlogLH - logLH)`` on the log target ``-tr(C^-1 S)/2 - nu log|C|/2`` (``nu = n`` for the
residual likelihood; flat prior, no Hastings correction for the scale-dependent proposal sd,
exactly as jomo). A proposal that is never positive definite is rejected.

Changing element ``(j, k)`` by ``delta`` is the symmetric rank-two update ``C' = C + U D U'`` with
``U = [e_j, e_k]``, ``D = s delta [[0, 1], [1, 0]]`` (``s = 1/2`` on the diagonal, else 1). With
``B = C^-1`` and ``K = I + D U'BU``: ``|C'| = |C| det K``, ``C'`` is positive definite iff
``det K > 0`` (given ``C`` is: the update has one positive and one negative eigenvalue, so at most one
eigenvalue of ``C`` can cross zero), and ``C'^-1 = B - BU K^-1 D U'B`` (Woodbury). So each
proposal costs a few scalar operations instead of a Cholesky factorisation, the log target
difference is exact up to rounding, and the draws follow jomo's chain.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .jomo_linalg import chol, chol_solve, logdet_from_chol, spd_inverse

__all__ = ["free_elements", "normal_loglik", "mh_covariance_from_noise", "mh_covariance_update"]

#: Above this many free elements the visits run in a ``lax.scan`` instead of being unrolled.
UNROLL_ELEMENTS = 32


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


def _visit(carry, j, k, z, u, scatter, n, nu):
    """One element's proposal and accept step on a batch of matrices (indices static or traced)."""
    cov, inv, accepted = carry
    d = cov.shape[-1]
    diag = j == k
    cjj, ckk = cov[..., j, j], cov[..., k, k]
    sd = jnp.where(diag, cjj * jnp.sqrt(11.6 / n), 0.1 * jnp.sqrt(cjj * ckk))
    s = jnp.where(diag, 0.5, 1.0)
    bjj, bkk, bjk = inv[..., j, j], inv[..., k, k], inv[..., j, k]
    # det K of every proposal; the first one > 0 is the first positive-definite one
    e_t = (s * sd)[..., None] * z
    g_t = 1.0 + e_t * bjk[..., None]
    pd = g_t * g_t - e_t * e_t * (bjj * bkk)[..., None] > 0.0
    delta = sd * z[..., -1]
    for t in reversed(range(z.shape[-1] - 1)):
        delta = jnp.where(pd[..., t], sd * z[..., t], delta)
    any_pd = jnp.any(pd, axis=-1)
    delta = jnp.where(any_pd, delta, 0.0)
    e = s * delta
    g = 1.0 + e * bjk
    det_k = jnp.where(any_pd, g * g - e * e * bjj * bkk, 1.0)
    # M = K^-1 D (symmetric 2 x 2) and H = U'B S BU
    m_jj, m_jk, m_kk = (-e * e * bkk / det_k, e * g / det_k, -e * e * bjj / det_k)
    b_j, b_k = inv[..., :, j], inv[..., :, k]
    sb_j = jnp.einsum("...ab,...b->...a", scatter, b_j)
    sb_k = jnp.einsum("...ab,...b->...a", scatter, b_k)
    h_jj = jnp.sum(b_j * sb_j, axis=-1)
    h_jk = jnp.sum(b_j * sb_k, axis=-1)
    h_kk = jnp.sum(b_k * sb_k, axis=-1)
    trace_mh = m_jj * h_jj + 2.0 * m_jk * h_jk + m_kk * h_kk
    log_ratio = 0.5 * trace_mh - 0.5 * nu * jnp.log(det_k)
    accept = any_pd & (jnp.log(u) < log_ratio)
    step = jnp.where(accept, delta, 0.0)
    mask = jax.nn.one_hot(j, d, dtype=cov.dtype)[:, None] * jax.nn.one_hot(k, d, dtype=cov.dtype)
    cov = cov + (s * step)[..., None, None] * (mask + mask.T)
    keep = accept.astype(cov.dtype)
    m_jj, m_jk, m_kk = m_jj * keep, m_jk * keep, m_kk * keep
    outer_jk = b_j[..., :, None] * b_k[..., None, :]
    inv = inv - (m_jj[..., None, None] * (b_j[..., :, None] * b_j[..., None, :])
                 + m_jk[..., None, None] * (outer_jk + jnp.swapaxes(outer_jk, -1, -2))
                 + m_kk[..., None, None] * (b_k[..., :, None] * b_k[..., None, :]))
    return cov, inv, accepted + accept.astype(jnp.int32)


def mh_covariance_from_noise(cov, scatter, n, elements: Sequence[tuple], normals, uniforms,
                             nu=None, cov_inv=None):
    """One jomo sweep of element-wise Metropolis updates on a batch of covariance matrices.

    Args:
        cov: (..., d, d) current covariances (positive definite).
        scatter: (..., d, d) ``S`` of the log target (sum of residual outer products, plus a
            prior scale where the target has one).
        n: (...) or scalar: scale of the proposal sd.
        elements: static list of ``(j, k)`` pairs to update (see :func:`free_elements`).
        normals: (..., E, T) standard normals (T proposals per element); uniforms: (..., E).
        nu: (...) or scalar weight of ``log|C|`` in the log target (default ``n``).
        cov_inv: optional (..., d, d) inverse of ``cov`` when the caller already has it.

    Returns:
        ``(cov, n_accepted)`` with ``n_accepted`` (...) int32.
    """
    batch = cov.shape[:-2]
    if not elements:
        return cov, jnp.zeros(batch, jnp.int32)
    n = jnp.asarray(n, cov.dtype)
    nu = n if nu is None else jnp.asarray(nu, cov.dtype)
    inv = spd_inverse(cov) if cov_inv is None else cov_inv
    carry = (cov, inv, jnp.zeros(batch, jnp.int32))
    if len(elements) <= UNROLL_ELEMENTS:
        for e, (j, k) in enumerate(elements):
            carry = _visit(carry, j, k, normals[..., e, :], uniforms[..., e], scatter, n, nu)
    else:
        rows = jnp.asarray([j for j, _ in elements], dtype=jnp.int32)
        cols = jnp.asarray([k for _, k in elements], dtype=jnp.int32)
        z_all = jnp.moveaxis(normals, -2, 0)
        u_all = jnp.moveaxis(uniforms, -1, 0)

        def body(c, xs):
            j, k, z, u = xs
            return _visit(c, j, k, z, u, scatter, n, nu), None

        carry, _ = jax.lax.scan(body, carry, (rows, cols, z_all, u_all))
    cov, _, accepted = carry
    return cov, accepted


def mh_covariance_update(key, cov, scatter, n, elements: Sequence[tuple], n_tries: int = 8,
                         nu=None):
    """:func:`mh_covariance_from_noise` with its noise drawn from ``key`` (one matrix or a batch).

    Returns ``(cov, n_accepted)``.
    """
    key_z, key_u = jax.random.split(key)
    batch = cov.shape[:-2]
    normals = jax.random.normal(key_z, batch + (len(elements), n_tries), dtype=cov.dtype)
    uniforms = jax.random.uniform(key_u, batch + (len(elements),), dtype=cov.dtype,
                                  minval=jnp.finfo(cov.dtype).tiny)
    return mh_covariance_from_noise(cov, scatter, n, elements, normals, uniforms, nu)
