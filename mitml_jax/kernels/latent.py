"""Latent normals of categorical targets (jomo's representation of a factor).

A categorical target with ``K`` (observed) categories is ``K - 1`` latent normal columns whose
covariance block is fixed (variance 1, covariance 0.5). Category ``k < K`` (0-based ``k < K - 1``)
means latent ``k`` is the largest and positive; category ``K`` means all latents are negative.
jomo also truncates every latent to the box ``(-3, 4)`` (part of its stationary law).

jomo draws the block of an observed category jointly from its conditional normal by rejection
(up to 10,000 proposals). Here, with static shapes:

* ``K = 2`` (one latent): an exact draw from the truncated normal by inversion (the same law as
  jomo's rejection sampler);
* ``K > 2``: ``n_proposals`` joint proposals drawn in parallel, the first one that lands in the
  region is taken (exactly jomo's law, given acceptance); when none does, one coordinate-wise
  truncated-normal Gibbs pass over the same region is made instead. Both leave the same
  conditional invariant, so the chain targets jomo's posterior.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .jomo_halves import in_halves
from .jomo_linalg import chol, chol_solve, set_columns, small_matmul, spd_inverse
from .jomo_noise import normal_cdf, normal_quantile

__all__ = [
    "LATENT_LOWER",
    "LATENT_UPPER",
    "fixed_block",
    "truncated_normal",
    "truncated_normal_from_uniform",
    "block_conditional",
    "in_region",
    "latent_noise_shapes",
    "update_latent_block",
    "update_latent_block_from_noise",
    "latent_to_category",
]

LATENT_LOWER = -3.0
LATENT_UPPER = 4.0


def fixed_block(k: int, dtype=float) -> np.ndarray:
    """jomo's fixed latent covariance block: 1 on the diagonal, 0.5 off it."""
    return np.full((k, k), 0.5, dtype=dtype) + 0.5 * np.eye(k, dtype=dtype)


def truncated_normal(key, mean, sd, lower, upper):
    """Exact draws from N(mean, sd^2) truncated to (lower, upper), elementwise, by inversion."""
    u = jax.random.uniform(key, jnp.shape(mean), dtype=jnp.result_type(mean),
                           minval=jnp.finfo(jnp.result_type(mean)).tiny)
    return truncated_normal_from_uniform(u, mean, sd, lower, upper)


def truncated_normal_from_uniform(u, mean, sd, lower, upper):
    """:func:`truncated_normal` given uniforms ``u`` on (0, 1) of the shape of ``mean``.

    Works in the lower tail (flipping the sign when the interval lies above the mean) so that
    intervals far in a tail keep their relative precision.
    """
    a = (lower - mean) / sd
    b = (upper - mean) / sd
    flip = a > 0
    lo = jnp.where(flip, -b, a)
    hi = jnp.where(flip, -a, b)
    # two CDF loops of N values, not one of 2N: a stacked loop over the 750 rows of the Level-2
    # vignette model passed XLA's cost threshold and was split over two threads
    # (see jomo_halves.in_halves, which runs this function on half the rows)
    p_lo, p_hi = normal_cdf(lo), normal_cdf(hi)
    x = normal_quantile(p_lo + u * (p_hi - p_lo))
    x = jnp.clip(x, lo, hi)
    x = jnp.where(flip, -x, x)
    return mean + sd * x


def block_conditional(cov, pos: int, k: int):
    """Coefficients and covariance of a block given the other coordinates.

    Returns ``(others, coef, cond_cov)``: ``others`` the static indices of the other coordinates,
    ``coef`` (k, d-k) with block mean shift ``coef @ dev_others``, and ``cond_cov`` (k, k) equal to
    the fixed block minus ``coef @ cov[others, block]``.
    """
    d = cov.shape[-1]
    block = np.arange(pos, pos + k)
    others = np.array([i for i in range(d) if i < pos or i >= pos + k], dtype=int)
    fixed = jnp.asarray(fixed_block(k), dtype=cov.dtype)
    if others.size == 0:
        return others, jnp.zeros((k, 0), cov.dtype), fixed
    c_oo = cov[np.ix_(others, others)]
    c_ob = cov[np.ix_(others, block)]
    coef = chol_solve(chol(c_oo), c_ob).T
    cond = fixed - small_matmul(coef, c_ob)
    return others, coef, 0.5 * (cond + cond.T)


def in_region(x, codes, k: int):
    """Whether latent rows ``x`` (N, k) lie in the box and agree with category codes (N,)."""
    top = jnp.max(x, axis=-1)
    bottom = jnp.min(x, axis=-1)
    box = (bottom > LATENT_LOWER) & (top < LATENT_UPPER)
    last = codes == k
    agree = jnp.where(last, top < 0, (jnp.argmax(x, axis=-1) == codes) & (top > 0))
    return box & agree


def _bounds(x, codes, i: int, k: int):
    """Interval of coordinate ``i`` given the others, for the region of each row's category."""
    last = codes == k
    others = jnp.concatenate([x[:, :i], x[:, i + 1 :]], axis=1)
    max_others = jnp.max(others, axis=1)
    is_top = codes == i
    lower = jnp.where(is_top & ~last, jnp.maximum(0.0, max_others), LATENT_LOWER)
    upper_other = jnp.minimum(_take_rows(x, codes, k), LATENT_UPPER)
    upper = jnp.where(last, 0.0, jnp.where(is_top, LATENT_UPPER, upper_other))
    return lower, upper


def _take_rows(x, codes, k: int):
    """x[row, codes[row]] (codes clipped into range)."""
    idx = jnp.clip(codes, 0, k - 1)
    return jnp.take_along_axis(x, idx[:, None], axis=1)[:, 0]


def _gibbs_pass(uniforms, current, mean, cond_cov, codes, k: int):
    """One coordinate-wise truncated-normal Gibbs pass over the latent region (uniforms (k, N))."""
    prec = spd_inverse(cond_cov)
    x = current
    for i in range(k):
        q_ii = prec[i, i]
        dev = x - mean
        shift = small_matmul(dev, prec[i][:, None])[:, 0] - q_ii * dev[:, i]
        m_i = mean[:, i] - shift / q_ii
        sd_i = jnp.sqrt(1.0 / q_ii)
        lower, upper = _bounds(x, codes, i, k)
        xi = truncated_normal_from_uniform(uniforms[i], m_i, sd_i, lower, upper)
        x = set_columns(x, i, xi[:, None])
    return x


def latent_noise_shapes(n_rows: int, k: int, n_proposals: int) -> tuple:
    """Shapes ``(normals, uniforms)`` that :func:`update_latent_block_from_noise` consumes."""
    if k == 1:
        return (0, n_rows, 1), (n_rows,)
    return (n_proposals, n_rows, k), (k, n_rows)


def update_latent_block(key, resid, block_mean, cov, pos: int, k: int, codes, n_proposals: int = 4):
    """:func:`update_latent_block_from_noise` with its noise drawn from ``key``."""
    shape_n, shape_u = latent_noise_shapes(resid.shape[0], k, n_proposals)
    key_n, key_u = jax.random.split(key)
    dtype = resid.dtype
    normals = jax.random.normal(key_n, shape_n, dtype=dtype)
    uniforms = jax.random.uniform(key_u, shape_u, dtype=dtype, minval=jnp.finfo(dtype).tiny)
    return update_latent_block_from_noise(normals, uniforms, resid, block_mean, cov, pos, k, codes)


def update_latent_block_from_noise(normals, uniforms, resid, block_mean, cov, pos: int, k: int,
                                   codes):
    """New latent values of one categorical target for the rows whose category is observed.

    Args:
        normals, uniforms: noise of the shapes :func:`latent_noise_shapes` gives (the number of
            joint proposals tried before the Gibbs fallback, ``k > 1`` only, is ``normals.shape[0]``).
        resid: (N, d) current residuals (values minus means) of all columns of the joint normal.
        block_mean: (N, k) means of the block's latent values.
        cov: (d, d) covariance of the joint normal (its block at ``pos`` is the fixed block).
        pos, k: first column and size of the block (static).
        codes: (N,) int, observed category 0..k (k = last category), -1 = not observed.

    Returns:
        (N, k) latent values: redrawn where ``codes >= 0``, unchanged elsewhere.
    """
    others, coef, cond_cov = block_conditional(cov, pos, k)
    current = block_mean + resid[:, pos : pos + k]
    mean = block_mean + (small_matmul(resid[:, others], coef.T) if others.size else 0.0)
    observed = codes >= 0
    if k == 1:
        sd = jnp.sqrt(cond_cov[0, 0])
        last = codes == 1
        lower = jnp.where(last, LATENT_LOWER, 0.0)
        upper = jnp.where(last, 0.0, LATENT_UPPER)
        new = in_halves(lambda u, m, lo, hi: truncated_normal_from_uniform(u, m, sd, lo, hi),
                        uniforms, mean[:, 0], lower, upper)[:, None]
        return jnp.where(observed[:, None], new, current)
    factor = chol(cond_cov)
    props = mean[None] + small_matmul(normals, factor.T)
    ok = jax.vmap(lambda p: in_region(p, codes, k))(props)  # (T, N)
    first = jnp.argmax(ok, axis=0)
    any_ok = jnp.any(ok, axis=0)
    chosen = jnp.take_along_axis(props, first[None, :, None], axis=0)[0]
    # the Gibbs pass needs a start inside the region (true after the first sweep; at the start
    # the latents are 0): otherwise start from a canonical interior point of the region
    inside = in_region(current, codes, k)
    canonical = jnp.where(jax.nn.one_hot(codes, k, dtype=current.dtype) > 0, 1.0, -1.0)
    start = jnp.where(inside[:, None], current, canonical)
    fallback = _gibbs_pass(uniforms, start, mean, cond_cov, codes, k)
    new = jnp.where(any_ok[:, None], chosen, fallback)
    return jnp.where(observed[:, None], new, current)


def latent_to_category(x):
    """jomo's category of latent rows (..., k): argmax if the maximum is positive, else k (0-based)."""
    k = x.shape[-1]
    top = np.max(x, axis=-1)
    return np.where(top > 0, np.argmax(x, axis=-1), k)
