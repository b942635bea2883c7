"""How many normals and uniforms one jomo sweep consumes: ``noise_budget(config, arrays)``.

A sweep draws all its noise as one threefry block (:mod:`.jomo_noise`), so the block size must be
known before the sweep is traced. Counting it by tracing the sweep abstractly with a
:class:`.jomo_noise.CountingStream` doubled the tracing work of a cold start (about 0.4 s of the
Level-2 vignette model's first call, half of its kernel trace; the trace also runs when the
compiled program comes from the persistent cache). Here the count is read off the configuration
and the array shapes, step by step in the order of :func:`.jomo._build_sweep`.

The count cannot drift silently: the sweep's ``NoiseStream.finish()`` raises at trace time when
the sweep uses a different amount, and the tests compare this budget with the traced count
(:func:`.jomo_noise.count_sweep_noise`) for every kind of jomo model.
"""

from __future__ import annotations

import numpy as np

from .jomo_data import JomoArrays, JomoConfig
from .jomo_linalg import wishart_noise_size
from .latent import latent_noise_shapes
from .mh_covariance import free_elements

__all__ = ["noise_budget"]


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def noise_budget(config: JomoConfig, arrays: JomoArrays) -> tuple:
    """``(n_normals, n_uniforms)`` that one sweep of :func:`.jomo.build_kernel` draws for ``config``
    and arrays of these shapes (only shapes are read, so traced arrays work)."""
    n_clusters, max_size = arrays.row_mask.shape
    r, d1, n_tries = config.r, config.d1, config.n_tries
    use_hr = config.random_l1 != "none"
    normals = uniforms = 0
    # 1. latents of observed level-1 categories (per cluster with random_l1)
    for _, k in config.cat_blocks:
        batch, n_rows = ((n_clusters,), max_size) if use_hr else ((), n_clusters * max_size)
        shape_n, shape_u = latent_noise_shapes(n_rows, k, n_tries)
        normals += _size(batch + shape_n)
        uniforms += _size(batch + shape_u)
    # 2. latents of observed level-2 categories
    for _, k in config.cat2_blocks:
        shape_n, shape_u = latent_noise_shapes(n_clusters, k, n_tries)
        normals += _size(shape_n)
        uniforms += _size(shape_u)
    # 3. beta; 4. beta2
    normals += config.p * r + config.p2 * config.r2
    if config.multilevel:
        # 5. level-1 random effects; 6. Psi (Metropolis with level-2 categories, else IW)
        normals += n_clusters * d1
        if config.cat2_blocks:
            n_psi = len(free_elements(config.dim_psi, [(d1 + p, k) for p, k in config.cat2_blocks]))
            normals += n_psi * n_tries
            uniforms += n_psi
        else:
            w_n, w_u = wishart_noise_size(config.dim_psi)
            normals += w_n
            uniforms += w_u
    # 7. Omega: shared (Metropolis with level-1 categories, else IW) or per cluster (random_l1)
    n_omega = len(free_elements(r, config.cat_blocks))
    w_n, w_u = wishart_noise_size(r)
    if use_hr:
        # random_l1.update_cluster_covariances: the scale's Wishart, the df step, then Omega_j
        normals += w_n + 1
        uniforms += w_u + 3
        if config.cat_blocks:
            uniforms += n_clusters * n_omega * 3
        else:
            normals += n_clusters * w_n
            uniforms += n_clusters * w_u
    elif config.cat_blocks:
        normals += n_omega * n_tries
        uniforms += n_omega
    else:
        normals += w_n
        uniforms += w_u
    # 8. missing level-1 cells; 9. missing level-2 cells
    normals += arrays.report_l1.shape[0]
    if config.r2 > 0:
        normals += arrays.report_l2.shape[0]
    return normals, uniforms
