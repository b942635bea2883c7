"""Level-2 pieces of the jomo sweeps: fixed effects, random effects given level-2 residuals.

jomo's ``jomo2*`` samplers append the level-2 targets' residuals ``u2 = y2 - X2 beta2`` to the
random effects, so one covariance ``Psi`` (dimension ``q*r + r2``) joins them. Per sweep
(``jomo2comC.c``): ``beta2`` by GLS with the *marginal* level-2 block ``Psi22`` (flat prior), then
``u2``, then each cluster's level-1 random effects from their normal conditional on ``u2``.
"""

from __future__ import annotations

import jax.numpy as jnp
from . import linalg as la
from .jomo_linalg import chol, chol_solve, small_matmul, spd_inverse

__all__ = ["draw_regression", "draw_regression_from_chol", "random_effects_prior",
           "draw_random_effects"]


def draw_regression(normals, xtx_inv, xtx_inv_chol, xty, cov):
    """Multivariate regression coefficients with identical regressors and a flat prior.

    ``vec(B) ~ N(vec((X'X)^-1 X'Y), cov (x) (X'X)^-1)``: ``B = (X'X)^-1 X'Y + C E chol(cov)'`` with
    ``C C' = (X'X)^-1`` and ``E = normals`` standard normal (p, r).
    """
    return draw_regression_from_chol(normals, xtx_inv, xtx_inv_chol, xty, chol(cov))


def draw_regression_from_chol(normals, xtx_inv, xtx_inv_chol, xty, cov_chol):
    """:func:`draw_regression` given the lower Cholesky factor ``cov_chol`` of ``cov``."""
    mean = small_matmul(xtx_inv, xty)
    return mean + small_matmul(small_matmul(xtx_inv_chol, normals), cov_chol.T)


def random_effects_prior(psi, u2, d1: int):
    """Conditional prior of the level-1 random effects given level-2 residuals ``u2`` (J, r2).

    Returns ``(prior_mean (J, d1), prior_precision (d1, d1))`` from the partition of ``psi``.
    """
    if psi.shape[-1] == d1:
        return jnp.zeros((u2.shape[0], d1), psi.dtype), spd_inverse(psi)
    p11 = psi[:d1, :d1]
    p12 = psi[:d1, d1:]
    p22 = psi[d1:, d1:]
    coef = chol_solve(chol(p22), p12.T).T  # (d1, r2)
    cond = p11 - small_matmul(coef, p12.T)
    prec = spd_inverse(la.symmetrize(cond))
    return small_matmul(u2, coef.T), la.symmetrize(prec)


def draw_random_effects(normals, prior_mean, prior_prec, omega_inv, ztz, ztr):
    """Cluster random effects ``vec(b_j)`` (target outer, random effect inner).

    Args:
        normals: (J, d1) standard normals.
        prior_mean: (J, d1) prior means; prior_prec: (d1, d1) prior precision.
        omega_inv: (r, r) shared, or (J, r, r) cluster-specific, level-1 precision.
        ztz: (J, q, q) ``Z_j' Z_j``.
        ztr: (J, q, r) ``Z_j' (Y_j - X_j beta)``.

    Returns:
        (J, d1) draws from ``N(P^-1 (prior_prec m + vec(Z'R Omega^-1)), P^-1)`` with
        ``P = prior_prec + Omega^-1 (x) Z'Z``.
    """
    n_clusters, q, r = ztr.shape
    if omega_inv.ndim == 2:
        kron = omega_inv[None, :, None, :, None] * ztz[:, None, :, None, :]
        rhs = jnp.swapaxes(small_matmul(ztr, omega_inv), -1, -2)
    else:
        kron = omega_inv[:, :, None, :, None] * ztz[:, None, :, None, :]
        rhs = jnp.swapaxes((ztr[..., :, None] * omega_inv[:, None, :, :]).sum(axis=-2), -1, -2)
    d1 = r * q
    prec = prior_prec[None] + kron.reshape(n_clusters, d1, d1)
    b = rhs.reshape(n_clusters, d1) + small_matmul(prior_mean, prior_prec.T)
    factor = chol(prec)
    mean = la.cho_solve(factor, b)
    return mean + la.solve_upper_t(factor, normals)
