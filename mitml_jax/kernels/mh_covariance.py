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
eigenvalue of ``C`` can cross zero), and ``C'^-1 = B - BU K^-1 D U'B`` (Woodbury). So the
positive-definite proposals form an interval, jomo's redraw loop is a truncated normal (drawn
directly, :func:`first_positive_definite_change`), the log target difference costs a few scalar
operations instead of Cholesky factorisations, and the chain is jomo's.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .jomo_linalg import chol_solve, logdet_from_chol, spd_inverse
from .jomo_noise import normal_cdf, normal_quantile

__all__ = ["free_elements", "normal_loglik", "first_positive_definite_change",
           "mh_covariance_from_noise", "mh_covariance_from_proposals", "mh_covariance_update"]

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


def first_positive_definite_change(uniforms, sd, s, bjj, bkk, bjk, n_tries: int):
    """The change of jomo's proposal loop: the first of ``n_tries`` normal proposals that keeps
    the matrix positive definite, drawn directly from its law.

    The proposals are ``delta = sd z``, ``z ~ N(0, 1)``. ``C + delta``-update is positive definite
    iff ``det K = 1 + 2 e b_jk - e^2 (b_jj b_kk - b_jk^2) > 0`` (``e = s delta``): an interval
    ``(-1 / (s (g + b_jk)), 1 / (s (g - b_jk)))`` with ``g = sqrt(b_jj b_kk)`` (upper end infinite
    on the diagonal) that contains 0. With ``q`` the probability that one proposal falls outside,
    no proposal succeeds with probability ``q^T``; otherwise the first success is a normal
    truncated to the interval. So ``uniforms[..., 0]`` decides success (``u_0 >= q^T``) and
    ``uniforms[..., 1]`` draws the truncated normal by inversion.

    Returns ``(delta, any_positive_definite)``; ``delta`` is 0 where no proposal succeeds.
    """
    g = jnp.sqrt(bjj * bkk)
    lower = -1.0 / (s * (g + bjk)) / sd
    upper = jnp.where(s < 1.0, jnp.inf, 1.0 / (s * (g - bjk)) / sd)
    p_lower, p_upper = normal_cdf(jnp.stack([lower, upper]))  # one expansion of erfc, not two
    outside = p_lower + (1.0 - p_upper)
    success = uniforms[..., 0] >= outside**n_tries
    p = p_lower + uniforms[..., 1] * (p_upper - p_lower)
    z = jnp.clip(normal_quantile(jnp.clip(p, 2.0**-1074, 1.0 - 2.0**-53)), lower, upper)
    return jnp.where(success, sd * z, 0.0), success


def _visit(carry, j, k, u, scatter, n, nu, n_tries):
    """One element's proposal and accept step on a batch of matrices (indices static or traced)."""
    cov, inv, accepted = carry
    d = cov.shape[-1]
    diag = j == k
    cjj, ckk = cov[..., j, j], cov[..., k, k]
    sd = jnp.where(diag, cjj * jnp.sqrt(11.6 / n), 0.1 * jnp.sqrt(cjj * ckk))
    s = jnp.where(diag, 0.5, 1.0)
    bjj, bkk, bjk = inv[..., j, j], inv[..., k, k], inv[..., j, k]
    delta, any_pd = first_positive_definite_change(u, sd, s, bjj, bkk, bjk, n_tries)
    e = s * delta
    g = 1.0 + e * bjk
    det_k = jnp.where(any_pd, g * g - e * e * bjj * bkk, 1.0)
    # M = K^-1 D (symmetric 2 x 2) and H = U'B S BU
    m_jj, m_jk, m_kk = (-e * e * bkk / det_k, e * g / det_k, -e * e * bjj / det_k)
    b_j, b_k = inv[..., :, j], inv[..., :, k]
    sb_j = (scatter * b_j[..., None, :]).sum(axis=-1)
    sb_k = (scatter * b_k[..., None, :]).sum(axis=-1)
    h_jj = jnp.sum(b_j * sb_j, axis=-1)
    h_jk = jnp.sum(b_j * sb_k, axis=-1)
    h_kk = jnp.sum(b_k * sb_k, axis=-1)
    trace_mh = m_jj * h_jj + 2.0 * m_jk * h_jk + m_kk * h_kk
    log_ratio = 0.5 * trace_mh - 0.5 * nu * jnp.log(det_k)
    accept = any_pd & (jnp.log(u[..., 2]) < log_ratio)
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


def mh_covariance_from_noise(cov, scatter, n, elements: Sequence[tuple], uniforms,
                             n_tries: int = 8, nu=None, cov_inv=None):
    """One jomo sweep of element-wise Metropolis updates on a batch of covariance matrices.

    Args:
        cov: (..., d, d) current covariances (positive definite).
        scatter: (..., d, d) ``S`` of the log target (sum of residual outer products, plus a
            prior scale where the target has one).
        n: (...) or scalar: scale of the proposal sd.
        elements: static list of ``(j, k)`` pairs to update (see :func:`free_elements`).
        uniforms: (..., E, 3) uniforms per element: whether one of the ``n_tries`` proposals is
            positive definite, which one (see :func:`first_positive_definite_change`), and the
            acceptance.
        n_tries: proposals per element (static); jomo draws up to 100.
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
            carry = _visit(carry, j, k, uniforms[..., e, :], scatter, n, nu, n_tries)
    else:
        rows = jnp.asarray([j for j, _ in elements], dtype=jnp.int32)
        cols = jnp.asarray([k for _, k in elements], dtype=jnp.int32)
        u_all = jnp.moveaxis(uniforms, -2, 0)

        def body(c, xs):
            j, k, u = xs
            return _visit(c, j, k, u, scatter, n, nu, n_tries), None

        carry, _ = jax.lax.scan(body, carry, (rows, cols, u_all))
    cov, _, accepted = carry
    return cov, accepted


def _visit_proposals(carry, j: int, k: int, z, log_u, scatter, n, nu):
    """One element's step with explicit proposals ``z`` (..., T) (static ``j``, ``k``).

    The change ``e = s delta`` keeps the matrix positive definite iff
    ``det K = 1 + 2 e b_jk - e^2 (b_jj b_kk - b_jk^2) > 0`` (module docstring), so jomo's redraw
    loop is a walk over the proposals' determinants: no Cholesky, no normal CDF.
    """
    cov, inv, accepted = carry
    d = cov.shape[-1]
    cjj, ckk = cov[..., j, j], cov[..., k, k]
    bjj, bkk, bjk = inv[..., j, j], inv[..., k, k], inv[..., j, k]
    if j == k:
        s = 0.5
        sd = cjj * jnp.sqrt(11.6 / n)
        e_all = (s * sd)[..., None] * z
        det_all = 1.0 + 2.0 * e_all * bjk[..., None]  # the quadratic term vanishes exactly
    else:
        s = 1.0
        sd = 0.1 * jnp.sqrt(cjj * ckk)
        e_all = sd[..., None] * z
        det_all = 1.0 + e_all * (2.0 * bjk[..., None]
                                 - e_all * (bjj * bkk - bjk * bjk)[..., None])
    ok_all = det_all > 0.0
    # the first positive-definite proposal: walk back from the last one (static, no argmax)
    e, det_k, any_pd = jnp.zeros_like(cjj), jnp.ones_like(cjj), jnp.zeros(cjj.shape, bool)
    for t in reversed(range(z.shape[-1])):
        ok = ok_all[..., t]
        e = jnp.where(ok, e_all[..., t], e)
        det_k = jnp.where(ok, det_all[..., t], det_k)
        any_pd = any_pd | ok
    g = 1.0 + e * bjk
    r = 1.0 / det_k
    m_jj, m_jk, m_kk = (-e * e * bkk * r, e * g * r, -e * e * bjj * r)
    # H = U'B S BU, sums unrolled over the (static, small) dimension: elementwise, no reductions
    b_j = [inv[..., i, j] for i in range(d)]
    b_k = [inv[..., i, k] for i in range(d)]
    sb_j = [sum(scatter[..., i, m] * b_j[m] for m in range(d)) for i in range(d)]
    sb_k = [sum(scatter[..., i, m] * b_k[m] for m in range(d)) for i in range(d)]
    h_jj = sum(b_j[i] * sb_j[i] for i in range(d))
    h_jk = sum(b_j[i] * sb_k[i] for i in range(d))
    h_kk = sum(b_k[i] * sb_k[i] for i in range(d))
    trace_mh = m_jj * h_jj + 2.0 * m_jk * h_jk + m_kk * h_kk
    log_ratio = 0.5 * trace_mh - 0.5 * nu * jnp.log(det_k)
    accept = any_pd & (log_u < log_ratio)
    keep = accept.astype(cov.dtype)
    change = np.zeros((d, d))  # C' = C + e (e_j e_k' + e_k e_j'): 2e on the diagonal
    change[j, k] += 1.0
    change[k, j] += 1.0
    cov = cov + (e * keep)[..., None, None] * jnp.asarray(change, cov.dtype)
    m_jj, m_jk, m_kk = m_jj * keep, m_jk * keep, m_kk * keep
    col_j, col_k = inv[..., :, j], inv[..., :, k]
    outer_jk = col_j[..., :, None] * col_k[..., None, :]
    inv = inv - (m_jj[..., None, None] * (col_j[..., :, None] * col_j[..., None, :])
                 + m_jk[..., None, None] * (outer_jk + jnp.swapaxes(outer_jk, -1, -2))
                 + m_kk[..., None, None] * (col_k[..., :, None] * col_k[..., None, :]))
    return cov, inv, accepted + accept.astype(jnp.int32)


def mh_covariance_from_proposals(cov, scatter, n, elements: Sequence[tuple], normals, uniforms,
                                 nu=None, cov_inv=None):
    """:func:`mh_covariance_from_noise` with jomo's proposals drawn explicitly.

    Each element tries the ``T`` standard normals ``normals[..., e, :]`` in turn (jomo's redraw
    loop with ``T`` tries instead of 100) and takes the first that keeps the matrix positive
    definite; ``uniforms[..., e]`` decides acceptance. The same chain as
    :func:`mh_covariance_from_noise` with ``n_tries = T``, without normal CDFs and quantiles
    (cheaper for a single matrix; the batched cluster updates keep the three uniforms per
    element). Elements are unrolled (static indices).

    Returns ``(cov, cov_inv, n_accepted)``: ``cov_inv`` is the inverse of the new ``cov``
    (Woodbury updates of the given or computed inverse).
    """
    batch = cov.shape[:-2]
    inv = spd_inverse(cov) if cov_inv is None else cov_inv
    if not elements:
        return cov, inv, jnp.zeros(batch, jnp.int32)
    n = jnp.asarray(n, cov.dtype)
    nu = n if nu is None else jnp.asarray(nu, cov.dtype)
    log_u = jnp.log(uniforms)
    carry = (cov, inv, jnp.zeros(batch, jnp.int32))
    for e, (j, k) in enumerate(elements):
        carry = _visit_proposals(carry, j, k, normals[..., e, :], log_u[..., e], scatter, n, nu)
    return carry


def mh_covariance_update(key, cov, scatter, n, elements: Sequence[tuple], n_tries: int = 8,
                         nu=None):
    """:func:`mh_covariance_from_noise` with its noise drawn from ``key`` (one matrix or a batch).

    Returns ``(cov, n_accepted)``.
    """
    uniforms = jax.random.uniform(key, cov.shape[:-2] + (len(elements), 3), dtype=cov.dtype,
                                  minval=jnp.finfo(cov.dtype).tiny)
    return mh_covariance_from_noise(cov, scatter, n, elements, uniforms, n_tries, nu)
