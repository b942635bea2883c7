"""Full conditionals of pan's Gibbs sampler (``mgibbs`` in pan.f, spec Appendix A), one group.

Arrays are those of ONE group (the kernel vmaps over groups): ``y (J, L, r)``, ``x (J, L, p)``,
``z (J, L, q)``, ``used (J, L)`` (rows with at least one observed target), ``obs (J, L, r)``.
Random effects ``b`` are (J, q, r); ``vec(b_i)`` stacks the columns of the q x r matrix, so its
index is ``target * q + random effect`` (mitml's Psi ordering).

Each ``draw_*`` takes ``rng_key`` first and returns the draw (and a flag where a Wishart is drawn).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import linalg

__all__ = [
    "spd_inverse",
    "random_effects_precision",
    "draw_random_effects",
    "draw_psi",
    "draw_sigma",
    "draw_beta",
    "draw_missing",
]


def spd_inverse(a):
    """Inverse of SPD matrices (..., d, d) via the Cholesky factor: ``L^{-T} L^{-1}``."""
    li = linalg.inv_lower(linalg.chol(a))
    return linalg.symmetrize(jnp.swapaxes(li, -1, -2) @ li)


def random_effects_precision(sigma_inv, ztz, psi_inv):
    """``Sigma^{-1} kron Z_i^T Z_i + Psi^{-1}`` for every cluster: (J, r q, r q)."""
    r, q = sigma_inv.shape[0], ztz.shape[-1]
    kron = jnp.einsum("ts,jkl->jtksl", sigma_inv, ztz).reshape(ztz.shape[0], r * q, r * q)
    return kron + psi_inv


def draw_random_effects(rng_key, eps, z, used, ztz, sigma_inv, psi_inv):
    """``vec(b_i) ~ N(Sb_i vec(Z_i^T eps_i Sigma^{-1}), Sb_i)``, ``Sb_i = (Sigma^-1 kron Z_i^T Z_i + Psi^-1)^-1``.

    Args:
        eps: (J, L, r) residuals ``y - X beta``; rows not ``used`` are ignored.
        ztz: (J, q, q) ``Z_i^T Z_i`` over used rows.

    Returns:
        b: (J, q, r).
    """
    n_clusters, _, r = eps.shape
    q = z.shape[-1]
    zu = jnp.where(used[..., None], z, 0.0)
    zte = jnp.einsum("jlq,jlr->jqr", zu, eps)
    h = jnp.einsum("jqr,rs->jsq", zte, sigma_inv).reshape(n_clusters, r * q)
    chol = linalg.chol(random_effects_precision(sigma_inv, ztz, psi_inv))
    noise = jax.random.normal(rng_key, (n_clusters, r * q), dtype=eps.dtype)
    b = linalg.solve_upper_t(chol, linalg.solve_lower(chol, h) + noise)
    return jnp.swapaxes(b.reshape(n_clusters, r, q), -1, -2)


def draw_psi(rng_key, b, cluster_mask, n_clusters, c, dinv):
    """``Psi ~ IW(c + J, Dinv + sum_i vec(b_i) vec(b_i)^T)`` over real clusters.

    Returns:
        (psi (r q, r q), gamma_exhausted flag).
    """
    n_cl, q, r = b.shape
    vb = jnp.swapaxes(b, -1, -2).reshape(n_cl, r * q)
    vb = jnp.where(cluster_mask[:, None], vb, 0.0)
    scale = dinv + vb.T @ vb
    return linalg.draw_inverse_wishart(rng_key, c + n_clusters, scale)


def draw_sigma(rng_key, eps, x, used, xtx_inv, n_used, a, binv):
    """``Sigma ~ IW(a + n* - p, Binv + sum delta delta^T)`` with beta integrated out.

    Args:
        eps: (J, L, r) ``y - Z b``.

    Returns:
        (sigma (r, r), beta_hat (p, r), gamma flag).
    """
    p = x.shape[-1]
    xu = jnp.where(used[..., None], x, 0.0)
    beta_hat = xtx_inv @ jnp.einsum("jlp,jlr->pr", xu, eps)
    delta = jnp.where(used[..., None], eps - jnp.einsum("jlp,pr->jlr", x, beta_hat), 0.0)
    scale = binv + jnp.einsum("jlr,jls->rs", delta, delta)
    sigma, exhausted = linalg.draw_inverse_wishart(rng_key, a + n_used - p, scale)
    return sigma, beta_hat, exhausted


def draw_beta(rng_key, beta_hat, xtx_chol_inv_t, sigma_chol):
    """``vec(beta) ~ N(vec(beta_hat), Sigma kron (X^T X)^{-1})``."""
    return linalg.draw_matrix_normal(rng_key, beta_hat, xtx_chol_inv_t, sigma_chol)


def draw_missing(rng_key, y_obs, obs, mean, sigma_inv, miss_index, miss_valid):
    """Missing targets from their normal distribution given the observed targets of the row.

    For each row, residuals ``e = y - mean`` follow N(0, Sigma); with precision ``Lambda`` the
    missing part has precision ``Lambda_mm`` and mean ``-Lambda_mm^{-1} Lambda_mo e_o``. Every row
    solves the r x r system ``A e = h`` with ``A = Lambda`` on the missing block and the identity
    elsewhere (the Cholesky factor keeps that block structure), and normals are drawn only for
    the missing cells (scattered through ``miss_index``).

    Args:
        y_obs: (J, L, r) observed data (anything in missing cells).
        obs: (J, L, r) bool.
        mean: (J, L, r) ``X beta + Z b``.
        sigma_inv: (r, r).
        miss_index: (M,) flat indices into (J * L * r), padded with ``J * L * r``.
        miss_valid: (M,) bool.

    Returns:
        y: (J, L, r) with observed cells equal to ``y_obs`` bit for bit.
    """
    n_cl, n_row, r = y_obs.shape
    miss = (~obs).astype(y_obs.dtype)
    e_obs = jnp.where(obs, y_obs - mean, 0.0)
    eye = jnp.eye(r, dtype=y_obs.dtype)
    a = sigma_inv * miss[..., :, None] * miss[..., None, :] + eye * (1.0 - miss[..., None, :])
    h = -miss * jnp.einsum("rs,jls->jlr", sigma_inv, e_obs)
    normals = jax.random.normal(rng_key, miss_index.shape, dtype=y_obs.dtype)
    normals = jnp.where(miss_valid, normals, 0.0)
    noise = jnp.zeros(n_cl * n_row * r + 1, y_obs.dtype).at[miss_index].set(normals)
    noise = noise[:-1].reshape(n_cl, n_row, r)
    chol = linalg.chol(a)
    e_mis = linalg.solve_upper_t(chol, linalg.solve_lower(chol, h) + noise)
    return jnp.where(obs, y_obs, mean + e_mis)
