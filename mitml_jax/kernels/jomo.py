"""jomo's Gibbs sweep as a pure JAX kernel: ``init`` and ``build_kernel``.

One sweep follows ``jomo2comC.c`` / ``jomo1ranC.c`` / ``jomo1C.c`` (cran/jomo 2.7-6):

1. latent normals of observed level-1 categories (rejection region incl. the (-3, 4) box,
   see :mod:`.latent`); 2. latent normals of observed level-2 categories (given all other
   random effects, under ``Psi``); 3. ``beta`` by GLS over **all** rows (flat prior);
4. ``beta2`` by GLS with the marginal block ``Psi22`` and ``u2 = y2 - X2 beta2``;
5. level-1 random effects per cluster given ``u2``; 6. ``Psi``:
   ``Psi^-1 ~ W(J + dim, (sum u u' + Dinv)^-1)``, or element-wise Metropolis when level-2 targets
   are categorical; 7. ``Omega``: ``Omega^-1 ~ W(n - 1, (sum e e' + Binv)^-1)`` (n = all rows), or
   element-wise Metropolis when level-1 targets are categorical (:mod:`.mh_covariance`);
   with ``random_l1`` the cluster-specific updates of :mod:`.random_l1` instead;
8. missing level-1 values (and latents of missing categories) from their conditional normal;
9. missing level-2 values given the cluster's random effects.

``JomoConfig.exact_beta2 = True`` replaces step 4 by the full conditional of ``beta2`` given ``u1``
(jomo's marginal GLS is not the full conditional when level-1 and level-2 residuals correlate,
so jomo's chain is not exactly calibrated there); the default keeps jomo's step.

Differences from jomo, all leaving the same posterior: the latent rejection sampler uses a fixed
number of parallel proposals with a Gibbs fallback (K > 2) or exact inversion (K = 2); the
positive-definiteness retries of the Metropolis proposals are parallel (``n_tries``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import linalg as la
from . import random_l1 as hr
from .jomo_data import JomoArrays, JomoConfig
from .jomo_linalg import (chol, chol_and_inverse, chol_solve, conditional_normal_from_noise,
                          cross_product, inverse_wishart_from_noise, set_columns, small_matmul, spd_inverse,
                          sum_over_rows, wishart_noise_size)
from .latent import fixed_block, latent_noise_shapes, update_latent_block_from_noise
from .level2 import (draw_random_effects, draw_regression, draw_regression_from_chol,
                     random_effects_prior)
from .mh_covariance import free_elements, mh_covariance_from_proposals
from .jomo_budget import noise_budget
from .jomo_noise import sweep_noise_stream
from .kernel_call import single_kernel
from .xla_options import WIDE_VECTORS

__all__ = ["JomoState", "JomoPrior", "JomoInfo", "COMPILER_OPTIONS", "init", "build_kernel", "default_prior"]


class JomoPrior(NamedTuple):
    binv: jnp.ndarray  # (r, r)
    dinv: jnp.ndarray  # (dim_psi, dim_psi); 1x1 unused for single-level
    a_start: jnp.ndarray  # scalar: starting df of the cluster covariances (mitml's prior$a)
    a: jnp.ndarray  # scalar: eta, jomo's a.prior (chi-square prior of the df)


class JomoState(NamedTuple):
    y: jnp.ndarray  # (J, L, r) level-1 values incl. latents and imputations
    y2: jnp.ndarray  # (J, r2)
    beta: jnp.ndarray  # (p, r)
    beta2: jnp.ndarray  # (p2, r2)
    u1: jnp.ndarray  # (J, r*q), target outer
    psi: jnp.ndarray  # (dim, dim)
    omega: jnp.ndarray  # (r, r), or (J, r, r) with random_l1
    a: jnp.ndarray  # df of the cluster covariances (random_l1), else unused
    scale: jnp.ndarray  # (r, r) IW scale A of the cluster covariances (random_l1)


class JomoInfo(NamedTuple):
    accepted_omega: jnp.ndarray
    accepted_psi: jnp.ndarray
    accepted_a: jnp.ndarray


def default_prior(config: JomoConfig) -> JomoPrior:
    """mitml's default: ``Binv = I_r``, ``Dinv = I_dim``, ``a = r`` (start and prior df)."""
    dim = max(config.dim_psi, 1)
    a = np.asarray(float(config.r))
    return jax.device_put(JomoPrior(np.eye(config.r), np.eye(dim), a, a))


def _fixed_identity(dim: int, blocks, offset: int = 0) -> np.ndarray:
    out = np.eye(dim)
    for pos, k in blocks:
        out[offset + pos : offset + pos + k, offset + pos : offset + pos + k] = fixed_block(k)
    return out


def init(arrays: JomoArrays, config: JomoConfig, prior: JomoPrior) -> JomoState:
    """jomo's starting values: zero coefficients and random effects, identity covariances (latent
    blocks fixed), missing values at the observed column means, latents at 0.

    Computed on the host in NumPy and moved to the device once (eager ``jnp`` calls would each
    compile a tiny program on a cold start); under ``jit``/``vmap`` (traced inputs, as in the
    calibration code) the same arithmetic runs in ``jax.numpy``."""
    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((arrays, prior)))
    xp = jnp if traced else np
    if not traced:
        arrays, prior = jax.device_get((arrays, prior))
    n_clusters = arrays.row_mask.shape[0]
    miss = arrays.miss
    observed = (~miss) & (arrays.row_mask[..., None] > 0)
    counts = xp.maximum(observed.sum(axis=(0, 1)), 1)
    means = xp.where(observed, arrays.y_obs, 0.0).sum(axis=(0, 1)) / counts
    latent = np.zeros(config.r, dtype=bool)
    latent[config.n_con :] = True
    means = xp.where(np.asarray(latent), 0.0, means)
    y = xp.where(miss, means, arrays.y_obs) * arrays.row_mask[..., None]
    obs2 = ~arrays.miss2
    counts2 = xp.maximum(obs2.sum(axis=0), 1)
    means2 = xp.where(obs2, arrays.y2_obs, 0.0).sum(axis=0) / counts2
    latent2 = np.zeros(config.r2, dtype=bool)
    latent2[config.n_con2 :] = True
    means2 = xp.where(np.asarray(latent2), 0.0, means2)
    y2 = xp.where(arrays.miss2, means2, arrays.y2_obs)
    omega = np.asarray(_fixed_identity(config.r, config.cat_blocks))
    if config.random_l1 != "none":
        omega = xp.broadcast_to(omega, (n_clusters, config.r, config.r))
    psi = np.asarray(_fixed_identity(max(config.dim_psi, 1), config.cat2_blocks, config.d1))
    state = JomoState(
        y=y, y2=y2, beta=xp.zeros((config.p, config.r)), beta2=xp.zeros((config.p2, config.r2)),
        u1=xp.zeros((n_clusters, config.d1)), psi=psi, omega=omega,
        a=xp.asarray(prior.a_start, dtype=float), scale=xp.asarray(prior.binv, dtype=float),
    )
    return state if traced else jax.device_put(state)


def _put_rows(a, rows, index):
    """``a`` (N, d) with row ``i`` replaced by ``rows[index[i]]`` where ``index[i] < len(rows)``:
    the scatter ``a.at[where].set(rows)`` written as a gather (``index`` from
    :func:`.jomo_data.row_index`)."""
    padded = jnp.concatenate([rows, jnp.zeros((1,) + rows.shape[1:], rows.dtype)])
    return jnp.where((index < rows.shape[0])[:, None], padded[index], a)


def _cell_normals(noise, cells, n_cells: int):
    """Normals for the missing cells only, placed at ``cells`` (zeros at observed cells)."""
    z = noise.normals((n_cells,))
    return jnp.concatenate([z, jnp.zeros((1,), z.dtype)])[cells]


#: XLA options the jomo sweep is compiled with. Without XLA's CPU fusion emitters the sweep of the
#: Level-2 vignette model compiles in 4.1-4.6 s instead of 6.7-6.9 s (first call, measured
#: 2026-11-26 in separate processes at load ~1.4) and runs as fast (block of 1,000 sweeps, same
#: compiled program both ways in one process: minimum 104.9 vs 105.3 ms; justice with
#: random_L1 = "full": 594 vs 633 ms). pan keeps the emitters: its sweep ran 13-20% slower
#: without them. No library fusions (the empty lists of YNNPACK and XNNPACK fusion types): the
#: single-kernel emitter of :mod:`.kernel_call` cannot compile them (XLA turned the large
#: cross-products of 20,000 rows into YNNPACK reductions). CPU backend flags, passed only there
#: (:func:`.xla_options.for_backend`: a GPU refuses them). 512-bit vectors as pan
#: (:data:`.xla_options.WIDE_VECTORS`; ``benchmarks/jomo_speed.py``, two rounds alternating,
#: 2026-11-27 00:50 UTC, ms per iteration: Level-2 model one chain 0.038-0.039 against
#: 0.043-0.047, justice one chain 0.239-0.257 against 0.271-0.332, 64 chains 8.5-8.6 against
#: 8.7-9.6; compile times alike).
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_cpu_experimental_ynn_fusion_type": "",
                    "xla_cpu_experimental_xnn_fusion_type": "", **WIDE_VECTORS}


def build_kernel(config: JomoConfig):
    """The sweep ``kernel(key, state, arrays, prior) -> (state, info)`` for a static config.

    All random numbers of a sweep come from one threefry block handed out by a
    ``NoiseStream`` (:func:`.jomo_noise.sweep_noise_stream`) of the size
    :func:`.jomo_budget.noise_budget` gives (checked by the stream's ``finish()``). On CPU the
    sweep is compiled as one kernel where it can be (:func:`.kernel_call.single_kernel`).
    """
    sweep = _build_sweep(config)

    def one_sweep(key, state: JomoState, arrays: JomoArrays, prior: JomoPrior):
        noise = sweep_noise_stream(key, sweep, (state, arrays, prior), state.y.dtype,
                                   budget=noise_budget(config, arrays))
        out = sweep(noise, state, arrays, prior)
        noise.finish()
        return out

    # the key, the state, and the loop-invariant data and prior travel as three vectors
    kernel = single_kernel(one_sweep, groups=((0,), (1,), (2, 3)))

    kernel.compiler_options = dict(COMPILER_OPTIONS)  # read by sampling.run's block function
    return kernel


def _build_sweep(config: JomoConfig):
    r, q, d1, r2 = config.r, config.q, config.d1, config.r2
    n_tries = config.n_tries
    omega_elements = free_elements(r, config.cat_blocks)
    psi_elements = free_elements(config.dim_psi, [(d1 + p, k) for p, k in config.cat2_blocks])
    use_hr = config.random_l1 != "none"

    def sweep(noise, state: JomoState, arrays: JomoArrays, prior: JomoPrior):
        n_clusters, max_size = arrays.row_mask.shape
        mask = arrays.row_mask[..., None]
        y, y2, beta, beta2, u1 = state.y, state.y2, state.beta, state.beta2, state.u1
        psi, omega = state.psi, state.omega
        x, z = arrays.x, arrays.z

        def fixed_part(b):
            return small_matmul(x, b)

        def random_part(u):
            # tiny per-cluster products as broadcast + sum (batched dots of 3 x 1 matrices
            # are dispatched matrix by matrix on CPU)
            return (z[:, :, None, :] * u.reshape(n_clusters, 1, r, q)).sum(-1)

        def latent_noise(batch, n_rows, k):
            shape_n, shape_u = latent_noise_shapes(n_rows, k, n_tries)
            return noise.normals(batch + shape_n), noise.uniforms(batch + shape_u)

        # 1. latents of observed level-1 categories
        if config.cat_blocks:
            mu = fixed_part(beta) + random_part(u1)
            for c, (pos, k) in enumerate(config.cat_blocks):
                codes = arrays.codes[..., c]
                if use_hr:
                    zn, un = latent_noise((n_clusters,), max_size, k)
                    new = jax.vmap(
                        lambda zz, uu, e, m, om, cd: update_latent_block_from_noise(
                            zz, uu, e, m, om, pos, k, cd)
                    )(zn, un, y - mu, mu[..., pos : pos + k], omega, codes)
                else:
                    zn, un = latent_noise((), n_clusters * max_size, k)
                    new = update_latent_block_from_noise(
                        zn, un, (y - mu).reshape(-1, r), mu[..., pos : pos + k].reshape(-1, k),
                        omega, pos, k, codes.reshape(-1),
                    ).reshape(n_clusters, max_size, k)
                y = set_columns(y, pos, new * mask)

        # 2. latents of observed level-2 categories
        if config.cat2_blocks:
            fit2 = small_matmul(arrays.x2, beta2)
            u_all = jnp.concatenate([u1, y2 - fit2], axis=1)
            for c, (pos, k) in enumerate(config.cat2_blocks):
                zn, un = latent_noise((), n_clusters, k)
                new = update_latent_block_from_noise(
                    zn, un, u_all, fit2[:, pos : pos + k], psi, d1 + pos, k, arrays.codes2[:, c])
                y2 = set_columns(y2, pos, new)
                u_all = set_columns(u_all, d1 + pos, new - fit2[:, pos : pos + k])

        # 3. beta (GLS over all rows; flat prior)
        target = (y - (random_part(u1) if config.multilevel else 0.0)) * mask
        if use_hr:
            omega_inv = spd_inverse(omega)
            beta = hr.draw_beta_clusterwise(noise.normals((r * config.p,)), x, target, omega_inv)
        else:
            omega_chol, omega_inv = chol_and_inverse(omega)  # chol also draws beta
            xty = cross_product(x.reshape(-1, config.p), target.reshape(-1, r))
            beta = draw_regression_from_chol(noise.normals((config.p, r)), arrays.xtx_inv,
                                             arrays.xtx_inv_chol, xty, omega_chol)

        # 4. beta2 with the marginal level-2 block, then level-2 residuals
        if r2 > 0:
            cov2, target2 = psi[d1:, d1:], y2
            if config.exact_beta2 and config.multilevel:
                # full conditional given u1: u2 | u1 ~ N(u1 C', Psi22 - C Psi12)
                coef = chol_solve(chol(psi[:d1, :d1]), psi[:d1, d1:]).T  # (r2, d1)
                cov2 = la.symmetrize(psi[d1:, d1:] - small_matmul(coef, psi[:d1, d1:]))
                target2 = y2 - small_matmul(u1, coef.T)
            beta2 = draw_regression(noise.normals((config.p2, r2)), arrays.x2tx2_inv,
                                    arrays.x2tx2_inv_chol, cross_product(arrays.x2, target2), cov2)
        u2 = y2 - small_matmul(arrays.x2, beta2)

        accepted_psi = jnp.zeros((), jnp.int32)
        if config.multilevel:
            # 5. level-1 random effects given u2
            prior_mean, prior_prec = random_effects_prior(psi, u2, d1)
            resid = (y - fixed_part(beta)) * mask
            ztr = (z[..., :, None] * resid[..., None, :]).sum(axis=1)
            u1 = draw_random_effects(noise.normals((n_clusters, d1)), prior_mean, prior_prec,
                                     omega_inv, arrays.ztz, ztr)
            # 6. Psi
            u_all = jnp.concatenate([u1, u2], axis=1)
            scatter_u = cross_product(u_all)
            if config.cat2_blocks:
                psi, _, accepted_psi = mh_covariance_from_proposals(
                    psi, scatter_u, float(n_clusters), psi_elements,
                    noise.normals((len(psi_elements), n_tries)),
                    noise.uniforms((len(psi_elements),)))
            else:
                w_n, w_u = wishart_noise_size(config.dim_psi)
                psi = inverse_wishart_from_noise(n_clusters + config.dim_psi,
                                                 scatter_u + prior.dinv,
                                                 noise.normals((w_n,)), noise.uniforms((w_u,)))

        # 7. Omega (shared or cluster-specific)
        mu = fixed_part(beta) + (random_part(u1) if config.multilevel else 0.0)
        resid = (y - mu) * mask
        accepted_omega = jnp.zeros((), jnp.int32)
        accepted_a = jnp.zeros((), jnp.int32)
        a, scale = state.a, state.scale
        if use_hr:
            omega, a, scale, accepted_omega, accepted_a = hr.update_cluster_covariances(
                noise, omega, a, scale, resid, arrays.cluster_size, prior, config,
                omega_elements, omega_inv=la.symmetrize(omega_inv))
        else:
            scatter = sum_over_rows(resid[..., :, None] * resid[..., None, :]).sum(axis=0)
            if config.cat_blocks:
                omega, omega_inv, accepted_omega = mh_covariance_from_proposals(
                    omega, scatter, arrays.n_rows, omega_elements,
                    noise.normals((len(omega_elements), n_tries)),
                    noise.uniforms((len(omega_elements),)), cov_inv=omega_inv)
            else:
                w_n, w_u = wishart_noise_size(r)
                omega = inverse_wishart_from_noise(arrays.n_rows - 1.0, scatter + prior.binv,
                                                   noise.normals((w_n,)), noise.uniforms((w_u,)))

        # 8. missing level-1 values
        flat_y = y.reshape(-1, r)
        rows = arrays.miss_rows
        z_rows = _cell_normals(noise, arrays.miss_cells, arrays.report_l1.shape[0])
        if use_hr:
            cluster_of_row = rows // max_size
            new_rows = hr.conditional_draw_clusterwise(
                z_rows, flat_y[rows], mu.reshape(-1, r)[rows], omega, cluster_of_row,
                arrays.patterns, arrays.miss_pattern,
                arrays.pattern_cluster if config.jomo_compat else None)
        else:
            new_rows = conditional_normal_from_noise(
                z_rows, flat_y[rows], mu.reshape(-1, r)[rows], omega, arrays.patterns,
                arrays.miss_pattern, prec=omega_inv if config.cat_blocks else None)
        y = _put_rows(flat_y, new_rows, arrays.miss_row_index).reshape(n_clusters, max_size, r)

        # 9. missing level-2 values given the cluster's random effects
        if r2 > 0:
            fit2 = small_matmul(arrays.x2, beta2)
            u_all = jnp.concatenate([u1, u2], axis=1)
            clus = arrays.miss2_clusters
            vals = u_all[clus]
            z_clus = _cell_normals(noise, arrays.miss2_cells, arrays.report_l2.shape[0])
            new_u = conditional_normal_from_noise(z_clus, vals,
                                                  jnp.zeros_like(vals), psi, arrays.patterns2,
                                                  arrays.miss2_pattern)
            y2 = _put_rows(y2, jnp.where(arrays.miss2[clus], fit2[clus] + new_u[:, d1:], y2[clus]),
                           arrays.miss2_cluster_index)

        new_state = JomoState(y=y, y2=y2, beta=beta, beta2=beta2, u1=u1, psi=psi, omega=omega,
                              a=a, scale=scale)
        return new_state, JomoInfo(accepted_omega, accepted_psi, accepted_a)

    return sweep
