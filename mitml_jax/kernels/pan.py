"""pan's Gibbs sweep (``mgibbs``): init, one-sweep kernel, and what to record per iteration.

One sweep (spec Appendix A), separately per group (``vmap`` over the group axis):

1. ``eps = y - X beta``; draw every cluster's random effects ``b_i``;
2. ``Psi ~ IW(c + J, Dinv + sum vec(b_i) vec(b_i)^T)``;
3. ``eps = y - Z b``, ``beta_hat = (X^T X)^{-1} X^T eps``, ``Sigma ~ IW(a + n* - p, Binv + sum delta delta^T)``;
4. ``beta ~ N(beta_hat, Sigma kron (X^T X)^{-1})``;
5. missing targets from their conditional normal given the row's observed targets.

Rows with no observed target are left out of steps 1-4 (pan's n*), and imputed in step 5.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..arrays.build import ModelArrays
from ..errors import MitmlError
from . import conditionals as cond
from . import linalg
from .state import PanInfo, PanPrior, PanState

__all__ = ["PanArrays", "prepare_pan_arrays", "init", "build_kernel", "build_transform", "save_missing"]


class PanArrays(NamedTuple):
    """pan's data: the model arrays plus products that stay fixed across iterations.

    Attributes:
        data: :class:`~mitml_jax.arrays.build.ModelArrays` (leading group axis G).
        ztz: (G, J, q, q) ``Z_i^T Z_i`` over used rows.
        xtx_inv: (G, p, p) ``(X^T X)^{-1}`` over used rows.
        xtx_chol_inv_t: (G, p, p) ``L^{-T}`` where ``X^T X = L L^T``.
    """

    data: ModelArrays
    ztz: jax.Array
    xtx_inv: jax.Array
    xtx_chol_inv_t: jax.Array


def prepare_pan_arrays(arrays: ModelArrays, fixed_names=None) -> PanArrays:
    """Precompute ``X^T X`` (used rows) per group on the host; raise if it is singular."""
    x = np.asarray(arrays.x, np.float64)
    z = np.asarray(arrays.z, np.float64)
    used = np.asarray(arrays.used)
    xu = np.where(used[..., None], x, 0.0)
    zu = np.where(used[..., None], z, 0.0)
    xtx = np.einsum("gjlp,gjlk->gpk", xu, xu)
    ztz = np.einsum("gjlq,gjlk->gjqk", zu, zu)
    p = x.shape[-1]
    eye = np.eye(p)
    chol_inv_t = np.empty_like(xtx)
    inv = np.empty_like(xtx)
    for g in range(xtx.shape[0]):  # host, once per run; G is small
        eig = np.linalg.eigvalsh(xtx[g]) if p else np.ones(1)
        if p and eig.min() <= 1e-10 * max(eig.max(), 1e-300):
            names = f" ({', '.join(fixed_names)})" if fixed_names else ""
            raise MitmlError(
                f"The fixed-effects design{names} is singular in group {g + 1} (among rows with at least "
                "one observed target): remove redundant or constant predictors."
            )
        lchol = np.linalg.cholesky(xtx[g])
        li = np.linalg.solve(lchol, eye)
        chol_inv_t[g] = li.T
        inv[g] = li.T @ li
    dtype = arrays.x.dtype
    return PanArrays(arrays, jnp.asarray(ztz, dtype), jnp.asarray(inv, dtype), jnp.asarray(chol_inv_t, dtype))


def _init_group(pa, prior):
    """pan's starting values for one group (spec Appendix A)."""
    d = pa.data
    yobs_sum = jnp.sum(jnp.where(d.obs, d.y, 0.0), axis=(0, 1))
    yobs_n = jnp.sum(d.obs, axis=(0, 1))
    mean = yobs_sum / jnp.maximum(yobs_n, 1)
    y = jnp.where(d.obs, d.y, jnp.where(d.row_mask[..., None], mean, 0.0))
    used = d.used[..., None]
    xu = jnp.where(used, d.x, 0.0)
    beta = pa.xtx_inv @ jnp.einsum("jlp,jlr->pr", xu, y)
    delta = jnp.where(used, y - jnp.einsum("jlp,pr->jlr", d.x, beta), 0.0)
    sigma = jnp.einsum("jlr,jls->rs", delta, delta) / d.n_used
    r, q = sigma.shape[0], d.z.shape[-1]
    psi_guess_inv = cond.spd_inverse(prior.dinv / prior.c)
    prec = cond.random_effects_precision(cond.spd_inverse(sigma), pa.ztz, psi_guess_inv)
    cov = cond.spd_inverse(prec)
    psi = jnp.sum(jnp.where(d.cluster_mask[:, None, None], cov, 0.0), axis=0) / d.n_clusters
    return PanState(y=y, beta=beta, psi=linalg.symmetrize(psi), sigma=linalg.symmetrize(sigma))


@jax.jit
def init(pan_arrays: PanArrays, prior: PanPrior) -> PanState:
    """Starting state of one chain (all groups): observed-mean imputation, OLS beta,
    Sigma = residual cross-products / n*, Psi = average posterior covariance of b_i with Psi at
    its prior guess ``Dinv / c``."""
    return jax.vmap(_init_group)(pan_arrays, prior)


def _sweep_group(rng_key, state, pa, prior):
    d = pa.data
    key_b, key_psi, key_sigma, key_beta, key_y = jax.random.split(rng_key, 5)
    sigma_inv = cond.spd_inverse(state.sigma)
    psi_inv = cond.spd_inverse(state.psi)
    eps = state.y - jnp.einsum("jlp,pr->jlr", d.x, state.beta)
    b = cond.draw_random_effects(key_b, eps, d.z, d.used, pa.ztz, sigma_inv, psi_inv)
    psi, flag_psi = cond.draw_psi(key_psi, b, d.cluster_mask, d.n_clusters, prior.c, prior.dinv)
    zb = jnp.einsum("jlq,jqr->jlr", d.z, b)
    sigma, beta_hat, flag_sigma = cond.draw_sigma(
        key_sigma, state.y - zb, d.x, d.used, pa.xtx_inv, d.n_used, prior.a, prior.binv
    )
    sigma_chol = linalg.chol(sigma)
    beta = cond.draw_beta(key_beta, beta_hat, pa.xtx_chol_inv_t, sigma_chol)
    li = linalg.inv_lower(sigma_chol)
    sigma_inv_new = linalg.symmetrize(li.T @ li)
    mean = jnp.einsum("jlp,pr->jlr", d.x, beta) + zb
    y = cond.draw_missing(key_y, d.y, d.obs, mean, sigma_inv_new, d.miss_index, d.miss_valid)
    new = PanState(y=y, beta=beta, psi=psi, sigma=sigma)
    finite = jnp.all(jnp.isfinite(beta)) & jnp.all(jnp.isfinite(psi)) & jnp.all(jnp.isfinite(sigma))
    finite = finite & jnp.all(jnp.isfinite(y))
    return new, PanInfo(nonfinite=~finite, gamma_exhausted=flag_psi | flag_sigma)


def _kernel(rng_key, state, pan_arrays, prior):
    n_groups = state.beta.shape[0]
    keys = jax.random.split(rng_key, n_groups)
    new, info = jax.vmap(_sweep_group)(keys, state, pan_arrays, prior)
    return new, PanInfo(nonfinite=jnp.any(info.nonfinite), gamma_exhausted=jnp.any(info.gamma_exhausted))


def build_kernel():
    """The pan kernel ``(rng_key, state, pan_arrays, prior) -> (PanState, PanInfo)`` for one chain.

    Groups are a ``vmap`` axis inside the kernel; every group uses its own key from one split.
    """
    return _kernel


def _transform_full(state):
    return {"beta": state.beta, "psi": state.psi, "sigma": state.sigma}


def _transform_diagonal(state):
    return {
        "beta": state.beta,
        "psi": jnp.diagonal(state.psi, axis1=-2, axis2=-1)[..., None],
        "sigma": jnp.diagonal(state.sigma, axis1=-2, axis2=-1)[..., None],
    }


@functools.lru_cache(maxsize=None)
def build_transform(keep_chains: str = "full"):
    """``state -> {beta, psi, sigma}`` (G, rows, cols); ``"diagonal"`` keeps (G, d, 1) diagonals."""
    return _transform_diagonal if keep_chains == "diagonal" else _transform_full


def save_missing(state, pan_arrays):
    """The imputed values of the missing cells: (G, M) in the layout's slot order."""
    y = state.y
    flat = y.reshape(y.shape[0], -1)
    flat = jnp.concatenate([flat, jnp.zeros((y.shape[0], 1), y.dtype)], axis=1)
    return jnp.take_along_axis(flat, pan_arrays.data.miss_index, axis=1)
