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
from . import cell_stats, linalg, missing_patterns, param_linalg
from .lean_vmap import lean_vmap
from .noise import NoiseStream, computed_once, draw_sweep_noise
from .state import PanInfo, PanPrior, PanState
from .xla_options import WIDE_VECTORS

__all__ = ["PanArrays", "prepare_pan_arrays", "init", "noise_sizes", "sweep_noise", "build_kernel", "transform",
           "build_transform", "diagonal_records", "save_missing"]


class PanArrays(NamedTuple):
    """pan's data: the model arrays plus products that stay fixed across iterations.

    Attributes:
        data: :class:`~mitml_jax.arrays.build.ModelArrays` (leading group axis G).
        ztz: (G, q, q, J) ``Z_i^T Z_i`` over used rows.
        xtx_inv: (G, p, p) ``(X^T X)^{-1}`` over used rows.
        xtx_chol_inv_t: (G, p, p) ``L^{-T}`` where ``X^T X = L L^T``.
        pattern_miss: (G, K, r) bool missingness patterns, or None (see
            :func:`missing_patterns.row_patterns`; None draws the missing cells row by row).
        row_pattern: (G, J, L) int32 pattern number of every row, or None.
        cells: :class:`~mitml_jax.kernels.cell_stats.CellStats` for the chains-innermost sweep, or
            None where it does not apply (:func:`cell_stats.available`).
    """

    data: ModelArrays
    ztz: jax.Array
    xtx_inv: jax.Array
    xtx_chol_inv_t: jax.Array
    pattern_miss: jax.Array = None
    row_pattern: jax.Array = None
    cells: cell_stats.CellStats = None


def prepare_pan_arrays(arrays: ModelArrays, fixed_names=None) -> PanArrays:
    """Precompute ``X^T X`` (used rows) per group on the host; raise if it is singular."""
    x = np.asarray(arrays.x, np.float64)
    z = np.asarray(arrays.z, np.float64)
    used = np.asarray(arrays.used)[:, None]
    xu = np.where(used, x, 0.0)
    zu = np.where(used, z, 0.0)
    xtx = np.einsum("gpjl,gkjl->gpk", xu, xu)
    ztz = np.einsum("gpjl,gkjl->gpkj", zu, zu)
    p = x.shape[1]
    eye = np.eye(p)
    chol_inv_t = np.empty_like(xtx)
    inv = np.empty_like(xtx)
    for g in range(xtx.shape[0]):  # host, once per run; G is small
        # scale-free: the eigenvalues of X^T X with unit diagonal (a year or an income in dollars
        # is a predictor like any other; the raw matrix's condition grows with its scale)
        scale = np.sqrt(np.diag(xtx[g]))
        scale[scale == 0.0] = 1.0
        eig = np.linalg.eigvalsh(xtx[g] / np.outer(scale, scale))
        if eig.min() <= 1e-10 * max(eig.max(), 1e-300):
            names = f" ({', '.join(fixed_names)})" if fixed_names else ""
            raise MitmlError(
                f"The fixed-effects design{names} is singular in group {g + 1} (among rows with at least "
                "one observed target): remove redundant or constant predictors."
            )
        li = np.linalg.solve(np.linalg.cholesky(xtx[g]), eye)
        chol_inv_t[g] = li.T
        inv[g] = li.T @ li
    dtype = arrays.x.dtype
    pattern_miss, row_pattern = missing_patterns.row_patterns(arrays.obs)
    if pattern_miss is not None:
        pattern_miss, row_pattern = jax.device_put((np.asarray(pattern_miss), np.asarray(row_pattern)))
    # device_put of NumPy arrays: jnp.asarray compiles a small program per array shape on first use
    cells = cell_stats.prepare(arrays, row_pattern, inv) if cell_stats.available(arrays, row_pattern) else None
    ztz, inv, chol_inv_t = jax.device_put((np.asarray(ztz, dtype), np.asarray(inv, dtype), np.asarray(chol_inv_t, dtype)))
    return PanArrays(arrays, ztz, inv, chol_inv_t, pattern_miss, row_pattern, cells)


def _init_group(y, obs, row_mask, used, x, ztz, cluster_mask, xtx_inv, dinv, c):
    """pan's starting values for one group (NumPy, float64; spec Appendix A)."""
    r, q = y.shape[0], ztz.shape[0]
    mean = np.where(obs, y, 0.0).sum(axis=(1, 2)) / np.maximum(obs.sum(axis=(1, 2)), 1)
    y0 = np.where(obs, y, np.where(row_mask, mean[:, None, None], 0.0))
    xu = np.where(used, x, 0.0)
    beta = xtx_inv @ np.einsum("kjl,tjl->kt", xu, y0)
    delta = np.where(used, y0 - np.einsum("kjl,kt->tjl", x, beta), 0.0).reshape(r, -1)
    sigma = delta @ delta.T / used.sum()
    prec = np.einsum("ts,klj->jtksl", np.linalg.inv(sigma), ztz).reshape(-1, r * q, r * q)
    prec = prec + np.linalg.inv(dinv / c)
    cov = np.linalg.inv(prec[cluster_mask])
    psi = cov.mean(axis=0)
    return y0, beta, 0.5 * (psi + psi.T), 0.5 * (sigma + sigma.T)


def init(pan_arrays: PanArrays, prior: PanPrior) -> PanState:
    """Starting state of one chain (all groups), computed on the host: observed-mean imputation,
    OLS beta, Sigma = residual cross-products / n*, Psi = average posterior covariance of the
    b_i with Psi at its prior guess ``Dinv / c`` (pan's defaults without ``start``)."""
    d = jax.device_get(pan_arrays.data)
    host = jax.device_get((pan_arrays.ztz, pan_arrays.xtx_inv, prior.dinv, prior.c))
    parts = [
        _init_group(
            np.asarray(d.y, np.float64)[g], d.obs[g], d.row_mask[g], d.used[g], np.asarray(d.x, np.float64)[g],
            np.asarray(host[0], np.float64)[g], d.cluster_mask[g], np.asarray(host[1], np.float64)[g],
            np.asarray(host[2], np.float64)[g], float(host[3][g]),
        )
        for g in range(d.y.shape[0])  # host, once per run; G is small
    ]
    dtype = pan_arrays.data.y.dtype
    stacked = [jax.device_put(np.asarray(np.stack([part[i] for part in parts]), dtype)) for i in range(4)]
    return PanState(y=stacked[0], beta=stacked[1], psi=stacked[2], sigma=stacked[3])


def noise_sizes(r: int, q: int, p: int, n_clusters: int, n_miss: int) -> tuple:
    """(normals, uniforms) one group's sweep consumes (see :func:`_sweep_group`)."""
    psi_n, psi_u = linalg.bartlett_noise_size(r * q)
    sig_n, sig_u = linalg.bartlett_noise_size(r)
    return r * q * n_clusters + psi_n + sig_n + p * r + n_miss, psi_u + sig_u


def _inverses(sigma, psi):
    """``(Sigma^{-1}, Psi^{-1})`` as one batched factorisation: Sigma (r x r) enters the batch as
    ``diag(I, Sigma)`` when Psi is larger (q > 1; :func:`param_linalg.embed`)."""
    r, d = sigma.shape[-1], psi.shape[-1]
    inv = cond.spd_inverse(jnp.stack([param_linalg.embed(sigma, d), psi]))
    return inv[0, d - r :, d - r :], inv[1]


def _inverse_wisharts(df_psi, scale_psi, noise_psi, df_sigma, scale_sigma, noise_sigma, always=None):
    """Psi's and Sigma's inverse-Wishart draws: ``(psi, sigma, sigma_root, sigma_inv, exhausted)``.

    Both conditionals are known once the random effects are drawn, so they are drawn as one batch
    of two (each separate small operation is an XLA kernel to compile), their Bartlett factors'
    diagonals from one gamma draw (:func:`param_linalg.bartlett_diagonals`). The diagonals are
    written to a buffer (:func:`.noise.computed_once`, given its predicate ``always``, data):
    fused into the gather that assembles the factors, the gamma draw's rejection steps made one
    loop of 20 KB of LLVM IR that LLVM's optimiser grew to 750 KB, a quarter of the iteration
    block's code. Benchmark model (b), block compile (wall / CPU s, alternating processes,
    2026-11-27 07:10 UTC): one chain 1.95-2.11 / 3.35-3.45 against 2.13-2.74 / 3.71-4.68, eight
    chains 2.31-2.88 / 3.75-4.61 against 2.36-3.37 / 3.96-5.38; the same draws.
    """
    d, r = scale_psi.shape[-1], scale_sigma.shape[-1]

    def diagonals(noises):
        return param_linalg.bartlett_diagonals((df_psi, df_sigma), (d, r), noises)

    noises = (noise_psi, noise_sigma)
    diagonal, exhausted = diagonals(noises) if always is None else computed_once(diagonals, noises, always)
    return _inverse_wisharts_from_diagonals(diagonal, scale_psi, noise_psi[0], scale_sigma, noise_sigma[0]) + (exhausted,)


def _inverse_wisharts_from_diagonals(diagonal, scale_psi, normals_psi, scale_sigma, normals_sigma):
    """:func:`_inverse_wisharts` given the Bartlett factors' diagonals: ``(psi, sigma, sigma_root,
    sigma_inv)``. When Psi is larger than Sigma (q > 1), Sigma's scale and Bartlett factor enter
    as ``diag(I, .)`` (:func:`param_linalg.embed`), which gives Sigma's draw from Sigma's own noise.
    """
    d, r = scale_psi.shape[-1], scale_sigma.shape[-1]
    a_psi, a_sigma = param_linalg.bartletts_from_diagonals(diagonal, (d, r), (normals_psi, normals_sigma))
    bartletts = jnp.stack([a_psi, param_linalg.embed(a_sigma, d)])
    scales = jnp.stack([scale_psi, param_linalg.embed(scale_sigma, d)])
    x, root, x_inv = jax.vmap(param_linalg.inverse_wishart_from_bartlett)(bartletts, scales)
    block = slice(d - r, d)
    return x[0], x[1, block, block], root[1, block, block], x_inv[1, block, block]


def _sweep_group(normals, uniforms, state, pa, prior, always):
    d = pa.data
    r, q, p = d.y.shape[0], d.z.shape[0], d.x.shape[0]
    n_clusters = d.y.shape[1]
    noise = NoiseStream(normals, uniforms)
    sigma_inv, psi_inv = _inverses(state.sigma, state.psi)
    eps = state.y - cond.linear_predictor(d.x, state.beta)
    b = cond.draw_random_effects(
        noise.normals((r * q, n_clusters)), eps, d.z, d.used, pa.ztz, sigma_inv, psi_inv
    )
    psi_n, psi_u = linalg.bartlett_noise_size(r * q)
    noise_psi = (noise.normals((psi_n,)), noise.uniforms((psi_u,)))
    zb = cond.cluster_effects(d.z, b)
    sig_n, sig_u = linalg.bartlett_noise_size(r)
    noise_sigma = (noise.normals((sig_n,)), noise.uniforms((sig_u,)))
    scale_sigma, beta_hat = cond.sigma_scale(state.y - zb, d.x, d.used, pa.xtx_inv, prior.binv)
    psi, sigma, sigma_root, sigma_inv_new, exhausted = _inverse_wisharts(
        prior.c + d.n_clusters, cond.psi_scale(b, d.cluster_mask, prior.dinv), noise_psi,
        prior.a + d.n_used - p, scale_sigma, noise_sigma, always,
    )
    beta = cond.draw_beta(noise.normals((p, r)), beta_hat, pa.xtx_chol_inv_t, sigma_root)
    mean = cond.linear_predictor(d.x, beta) + zb
    miss_normals = noise.normals(d.miss_index.shape)
    if pa.row_pattern is None:
        y = cond.draw_missing(miss_normals, d.y, d.obs, mean, sigma_inv_new, d.miss_index, d.miss_valid)
        y_finite = jnp.all(jnp.isfinite(y))
    else:
        y, y_finite = missing_patterns.draw_missing(
            miss_normals, d.y, d.obs, mean, sigma_inv_new, d.miss_index, d.miss_valid, pa.pattern_miss,
            pa.row_pattern,
        )
    noise.finish()
    new = PanState(y=y, beta=beta, psi=psi, sigma=sigma)
    finite = jnp.all(jnp.isfinite(beta)) & jnp.all(jnp.isfinite(psi)) & jnp.all(jnp.isfinite(sigma))
    finite = finite & jnp.all(jnp.isfinite(b)) & y_finite
    return new, PanInfo(nonfinite=~finite, gamma_exhausted=exhausted)


def sweep_noise(rng_key, pan_arrays):
    """(normals (G, n), uniforms (G, n_u)) of one sweep of every group, from ``rng_key`` (a key
    array (K,): (K, G, ...), key k's numbers as for that key alone).

    The predicate of the noise's conditional (:func:`.noise.computed_once`) comes from the data
    (every group has a cluster), not the key: chains vmapped over the kernel batch the key, and a
    batched predicate would turn the conditional into a select (the hash then fused into each of
    its consumers); sharded runs replicate the data."""
    d = pan_arrays.data
    n_groups, r, n_clusters = d.y.shape[:3]
    q, p, n_miss = d.z.shape[1], d.x.shape[1], d.miss_index.shape[1]
    n_norm, n_unif = noise_sizes(r, q, p, n_clusters, n_miss)
    return draw_sweep_noise(rng_key, (n_groups,), n_norm, n_unif, d.y.dtype, _always_true(pan_arrays))


def _always_true(pan_arrays):
    """A True scalar the compiler cannot see through, from the data (every group has a cluster):
    the predicate of the sweep's CPU conditionals (:func:`.noise.computed_once`), unbatched by
    the chain ``vmap`` and replicated when chains are sharded."""
    return jnp.all(pan_arrays.data.n_clusters > 0)


def _kernel(rng_key, state, pan_arrays, prior):
    normals, uniforms = sweep_noise(rng_key, pan_arrays)
    sweep = functools.partial(_sweep_group, always=_always_true(pan_arrays))
    new, info = lean_vmap(sweep)(normals, uniforms, state, pan_arrays, prior)
    return new, PanInfo(nonfinite=jnp.any(info.nonfinite), gamma_exhausted=jnp.any(info.gamma_exhausted))


def build_kernel():
    """The pan kernel ``(rng_key, state, pan_arrays, prior) -> (PanState, PanInfo)`` for one chain.

    Groups are a ``vmap`` axis inside the kernel; every group uses its own key from one split.
    Its ``chain_batch`` attribute (:func:`.pan_chains.chain_batch`) runs many chains with the
    chain axis innermost (``run_chains`` uses it instead of ``vmap``); its ``compiler_options``
    (:data:`.xla_options.WIDE_VECTORS`) are the XLA CPU options of every block that runs it.
    """
    if not hasattr(_kernel, "chain_batch"):
        from .pan_chains import chain_batch  # pan_chains builds on this module

        _kernel.chain_batch = chain_batch(_kernel)
        _kernel.compiler_options = dict(WIDE_VECTORS)
    return _kernel


def transform(state):
    """What every iteration records: ``{beta, psi, sigma}``, each (G, rows, cols)."""
    return {"beta": state.beta, "psi": state.psi, "sigma": state.sigma}


def _transform_diagonal(state):
    return {
        "beta": state.beta,
        "psi": jnp.diagonal(state.psi, axis1=-2, axis2=-1)[..., None],
        "sigma": jnp.diagonal(state.sigma, axis1=-2, axis2=-1)[..., None],
    }


def build_transform(keep_chains: str = "full"):
    """Device-side record function: :func:`transform`, or diagonals of Psi and Sigma on the device
    for ``"diagonal"`` (``pan_impute`` instead reduces on the host, see :func:`diagonal_records`,
    so both settings share one compiled program)."""
    return _transform_diagonal if keep_chains == "diagonal" else transform


def diagonal_records(records: dict) -> dict:
    """Host-side ``keep_chains="diagonal"``: Psi and Sigma reduced to (..., d, 1) diagonals."""
    out = dict(records)
    for name in ("psi", "sigma"):
        out[name] = np.ascontiguousarray(np.diagonal(records[name], axis1=-2, axis2=-1)[..., None])
    return out


def save_missing(state, pan_arrays):
    """The imputed values of the missing cells: (G, M) in the layout's slot order."""
    y = state.y
    flat = y.reshape(y.shape[0], -1)
    flat = jnp.concatenate([flat, jnp.zeros((y.shape[0], 1), y.dtype)], axis=1)
    return jnp.take_along_axis(flat, pan_arrays.data.miss_index, axis=1)
