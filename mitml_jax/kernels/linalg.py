"""Small dense linear algebra and matrix-variate draws for the Gibbs kernels (pure JAX).

Everything works on a batch of tiny matrices: arrays shaped ``(..., d, d)`` (and vectors
``(..., d)``). For ``d <= UNROLL_MAX`` the Cholesky factorisation and the triangular solves are
unrolled into elementwise operations over the batch, which XLA fuses; on CPU this is about ten
times faster than LAPACK's one-call-per-matrix batched Cholesky for 3 x 3 matrices (see
``performance-notes.md``). Larger matrices use ``jnp.linalg`` / ``jax.scipy.linalg``.

Conventions: ``chol`` returns the lower factor ``L`` with ``A = L L^T``. The inverse Wishart
``IW(nu, S)`` is read as in pan and Schafer (1997): ``X^{-1} ~ Wishart(nu, S^{-1})``, so
``E[X] = S / (nu - d - 1)``. Gamma variates come from Marsaglia and Tsang's method with a fixed
number of proposals (no rejection loop, so shapes stay static and ``vmap`` stays cheap).

Public functions:
    chol, solve_lower, solve_upper_t, cho_solve, inv_lower, symmetrize,
    draw_gamma, draw_bartlett, draw_wishart, draw_inverse_wishart, draw_matrix_normal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from .noise import log_positive

__all__ = [
    "UNROLL_MAX",
    "chol_list",
    "inv_lower_list",
    "solve_lower_list",
    "solve_upper_t_list",
    "chol",
    "solve_lower",
    "solve_upper_t",
    "cho_solve",
    "inv_lower",
    "symmetrize",
    "gamma_from_noise",
    "bartlett_noise_size",
    "bartlett_from_noise",
    "inverse_wishart_from_noise",
    "draw_gamma",
    "draw_bartlett",
    "draw_wishart",
    "draw_inverse_wishart",
    "draw_matrix_normal",
]

#: Largest matrix dimension for which factorisations are unrolled into elementwise operations.
UNROLL_MAX = 12

#: Marsaglia-Tsang proposals per gamma variate (acceptance >= 0.95 each, so all fail with
#: probability < 0.05**8 ~ 4e-11; the last proposal is then used and the event is flagged).
GAMMA_PROPOSALS = 8


def chol_list(a, sqrt=jnp.sqrt):
    """Lower Cholesky factor of a matrix given as nested lists ``a[i][j]`` of same-shape arrays.

    "Structure of arrays" form: every entry is an array over the batch (e.g. all clusters), so
    each step is one elementwise operation over a contiguous batch. Only ``a[i][j]`` with
    ``j <= i`` are read. Returns nested lists ``l[i][j]`` for ``j <= i``. Only arithmetic and
    ``sqrt`` are used (no conjugation): with ``sqrt=np.sqrt`` it runs on NumPy arrays, complex
    ones included (the lmer host fit's complex-step gradients).
    """
    d = len(a)
    l = [[None] * (i + 1) for i in range(d)]
    for j in range(d):
        s = a[j][j]
        for k in range(j):
            s = s - l[j][k] * l[j][k]
        l[j][j] = sqrt(s)
        inv = 1.0 / l[j][j]
        for i in range(j + 1, d):
            s = a[i][j]
            for k in range(j):
                s = s - l[i][k] * l[j][k]
            l[i][j] = s * inv
    return l


def solve_lower_list(l, b):
    """Solve ``L x = b`` with ``l`` from :func:`chol_list` and ``b`` a list of arrays."""
    xs = []
    for i in range(len(l)):
        s = b[i]
        for k in range(i):
            s = s - l[i][k] * xs[k]
        xs.append(s / l[i][i])
    return xs


def solve_upper_t_list(l, b):
    """Solve ``L^T x = b`` with ``l`` from :func:`chol_list` and ``b`` a list of arrays."""
    d = len(l)
    xs = [None] * d
    for i in reversed(range(d)):
        s = b[i]
        for k in range(i + 1, d):
            s = s - l[k][i] * xs[k]
        xs[i] = s / l[i][i]
    return xs


def symmetrize(a):
    """``(A + A^T) / 2`` over the last two axes."""
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def _stack_lower(cols, d):
    """Build (..., d, d) from a dict {(i, j): (...)} of lower-triangular entries (zeros above)."""
    zero = jnp.zeros_like(cols[(0, 0)])
    rows = [jnp.stack([cols[(i, j)] if j <= i else zero for j in range(d)], axis=-1) for i in range(d)]
    return jnp.stack(rows, axis=-2)


def chol(a):
    """Lower Cholesky factor of symmetric positive definite matrices ``a`` (..., d, d).

    Non-positive-definite input gives NaN entries (as LAPACK does); callers turn that into flags.
    """
    d = a.shape[-1]
    if d > UNROLL_MAX:
        return jnp.linalg.cholesky(a)
    entries = {}
    for j in range(d):
        s = a[..., j, j]
        for k in range(j):
            s = s - entries[(j, k)] * entries[(j, k)]
        ljj = jnp.sqrt(s)
        entries[(j, j)] = ljj
        inv = 1.0 / ljj
        for i in range(j + 1, d):
            s = a[..., i, j]
            for k in range(j):
                s = s - entries[(i, k)] * entries[(j, k)]
            entries[(i, j)] = s * inv
    return _stack_lower(entries, d)


def solve_lower(l, b):
    """Solve ``L x = b`` for lower-triangular ``l`` (..., d, d) and vectors ``b`` (..., d)."""
    d = l.shape[-1]
    if d > UNROLL_MAX:
        return jsl.solve_triangular(l, b[..., None], lower=True)[..., 0]
    xs = []
    for i in range(d):
        s = b[..., i]
        for k in range(i):
            s = s - l[..., i, k] * xs[k]
        xs.append(s / l[..., i, i])
    return jnp.stack(xs, axis=-1)


def solve_upper_t(l, b):
    """Solve ``L^T x = b`` for lower-triangular ``l`` (..., d, d) and vectors ``b`` (..., d)."""
    d = l.shape[-1]
    if d > UNROLL_MAX:
        return jsl.solve_triangular(l, b[..., None], lower=True, trans=1)[..., 0]
    xs = [None] * d
    for i in reversed(range(d)):
        s = b[..., i]
        for k in range(i + 1, d):
            s = s - l[..., k, i] * xs[k]
        xs[i] = s / l[..., i, i]
    return jnp.stack(xs, axis=-1)


def cho_solve(l, b):
    """Solve ``A x = b`` given the lower Cholesky factor ``l`` of ``A`` and vectors ``b`` (..., d)."""
    return solve_upper_t(l, solve_lower(l, b))


def inv_lower(l):
    """Inverse of lower-triangular matrices ``l`` (..., d, d) (again lower triangular)."""
    d = l.shape[-1]
    if d > UNROLL_MAX:
        eye = jnp.broadcast_to(jnp.eye(d, dtype=l.dtype), l.shape)
        return jsl.solve_triangular(l, eye, lower=True)
    out = inv_lower_list([[l[..., i, j] for j in range(i + 1)] for i in range(d)])
    return _stack_lower({(i, j): out[i][j] for i in range(d) for j in range(i + 1)}, d)


def inv_lower_list(l):
    """Entries of ``L^-1`` (lower triangular) from the lower entries ``l[i][j]``, ``j <= i``, of
    :func:`chol_list` (nested lists of same-shape arrays, elementwise over the batch)."""
    d = len(l)
    out = [[None] * (i + 1) for i in range(d)]
    for j in range(d):
        out[j][j] = 1.0 / l[j][j]
    for j in range(d):
        for i in range(j + 1, d):
            s = l[i][j] * out[j][j]
            for k in range(j + 1, i):
                s = s + l[i][k] * out[k][j]
            out[i][j] = -s * out[i][i]  # the diagonal's reciprocal: a multiply, no division
    return out


def gamma_from_noise(shape_param, normals, uniforms):
    """Gamma(shape, 1) variates from given noise, with a fixed number of proposals.

    Marsaglia and Tsang (2000): for shape ``k >= 1`` propose ``v = (1 + x / sqrt(9 d))^3`` with
    ``d = k - 1/3``, ``x ~ N(0, 1)``, accept when ``log u < x^2 / 2 + d - d v + d log v``; the
    first accepted proposal is returned. Shapes below one use ``Gamma(k) = Gamma(k + 1) U^(1/k)``.

    Args:
        shape_param: array of shapes ``k > 0``.
        normals: (P, *k.shape) standard normals (P proposals).
        uniforms: (P + 1, *k.shape) uniforms on (0, 1) (the last one for shapes below one).

    Returns:
        (draws, exhausted): draws with the shape of ``shape_param``; ``exhausted`` is True where no
        proposal was accepted (probability < 4e-11 per variate for P = 8); the last proposal is
        used then.
    """
    k = jnp.asarray(shape_param, normals.dtype)
    small = k < 1.0
    kk = jnp.where(small, k + 1.0, k)
    d = kk - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    x, u = normals, uniforms[:-1]
    t = 1.0 + c * x
    v = t * t * t
    safe_v = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (log_positive(u) < 0.5 * x * x + d - d * safe_v + d * log_positive(safe_v))
    # walk back from the last proposal so the first accepted one wins (static, no argmax/gather);
    # the flag as elementwise ORs along the same walk (a reduction over the proposals is a loop of
    # its own that XLA fuses with the whole rejection step, computed again)
    chosen, found = safe_v[-1], accept[-1]
    for i in reversed(range(x.shape[0] - 1)):
        chosen = jnp.where(accept[i], safe_v[i], chosen)
        found = found | accept[i]
    draws = d * chosen
    boost = uniforms[-1]
    draws = jnp.where(small, draws * boost ** (1.0 / jnp.where(small, k, 1.0)), draws)
    return draws, ~found


def bartlett_noise_size(d: int, n_proposals: int = GAMMA_PROPOSALS) -> tuple:
    """(normals, uniforms) needed by :func:`bartlett_from_noise` for dimension ``d``."""
    return n_proposals * d + d * (d - 1) // 2, (n_proposals + 1) * d


def bartlett_from_noise(df, d: int, normals, uniforms):
    """Bartlett factor from flat noise: lower-triangular ``A`` with ``A A^T ~ Wishart(df, I_d)``.

    ``A_ii = sqrt(chi2(df - i))`` (0-based i), ``A_ij ~ N(0, 1)`` below the diagonal. ``normals``
    and ``uniforms`` are flat with the sizes of :func:`bartlett_noise_size`.
    Returns (A, exhausted).
    """
    n_prop = GAMMA_PROPOSALS
    dtype = normals.dtype
    dfs = jnp.asarray(df, dtype) - jnp.arange(d, dtype=dtype)
    g, exhausted = gamma_from_noise(
        0.5 * dfs, normals[: n_prop * d].reshape(n_prop, d), uniforms.reshape(n_prop + 1, d)
    )
    rows, cols = np.tril_indices(d, -1)
    a = jnp.diag(jnp.sqrt(2.0 * g))
    if d > 1:
        a = a.at[rows, cols].set(normals[n_prop * d :])
    return a, jnp.any(exhausted)


def inverse_wishart_from_noise(df, scale, normals, uniforms):
    """``X ~ IW(df, S)`` in pan's sense (``X^{-1} ~ Wishart(df, S^{-1})``), S (d, d) SPD.

    With ``S = C C^T`` and Bartlett ``A``: ``X^{-1} = C^{-T} A A^T C^{-1}`` so
    ``X = (C A^{-T})(C A^{-T})^T``; only triangular inverses are needed. Noise as in
    :func:`bartlett_from_noise`. Returns (X, exhausted); a scale that is not positive definite
    gives NaN entries.
    """
    d = scale.shape[-1]
    a, exhausted = bartlett_from_noise(df, d, normals, uniforms)
    t = chol(scale) @ inv_lower(a).T
    return symmetrize(t @ t.T), exhausted


def _bartlett_noise(rng_key, d, dtype):
    n_norm, n_unif = bartlett_noise_size(d)
    key_n, key_u = jax.random.split(rng_key)
    normals = jax.random.normal(key_n, (n_norm,), dtype=dtype)
    uniforms = jax.random.uniform(key_u, (n_unif,), dtype=dtype, minval=jnp.finfo(dtype).tiny)
    return normals, uniforms


def draw_gamma(rng_key, shape_param, n_proposals=GAMMA_PROPOSALS):
    """Gamma(shape, 1) variates for an array of shapes (see :func:`gamma_from_noise`)."""
    k = jnp.asarray(shape_param)
    dtype = k.dtype if jnp.issubdtype(k.dtype, jnp.floating) else jnp.float64
    key_n, key_u = jax.random.split(rng_key)
    normals = jax.random.normal(key_n, (n_proposals,) + k.shape, dtype=dtype)
    uniforms = jax.random.uniform(key_u, (n_proposals + 1,) + k.shape, dtype=dtype, minval=jnp.finfo(dtype).tiny)
    return gamma_from_noise(k, normals, uniforms)


def draw_bartlett(rng_key, df, d, dtype):
    """Bartlett factor ``A`` (d, d), ``A A^T ~ Wishart(df, I_d)``; returns (A, exhausted)."""
    return bartlett_from_noise(df, d, *_bartlett_noise(rng_key, d, dtype))


def draw_wishart(rng_key, df, scale_chol):
    """``W ~ Wishart(df, S)`` given the lower Cholesky factor of ``S`` (d, d); E[W] = df S.

    Returns (W, exhausted).
    """
    d = scale_chol.shape[-1]
    a, exhausted = draw_bartlett(rng_key, df, d, scale_chol.dtype)
    la = scale_chol @ a
    return symmetrize(la @ la.T), exhausted


def draw_inverse_wishart(rng_key, df, scale):
    """``X ~ IW(df, S)`` in pan's sense (``X^{-1} ~ Wishart(df, S^{-1})``); returns (X, exhausted)."""
    d = scale.shape[-1]
    return inverse_wishart_from_noise(df, scale, *_bartlett_noise(rng_key, d, scale.dtype))


def draw_matrix_normal(rng_key, mean, row_chol_inv_t, col_chol, normals=None):
    """``B = mean + R Z C^T`` with ``Z`` iid N(0, 1): vec(B) ~ N(vec(mean), (C C^T) kron (R R^T)).

    Args:
        mean: (p, r).
        row_chol_inv_t: (p, p) ``R``, e.g. ``L_x^{-T}`` for row covariance ``(X^T X)^{-1}``.
        col_chol: (r, r) lower Cholesky factor of the column covariance (Sigma).
        normals: optional (p, r) standard normals to use instead of drawing with ``rng_key``.
    """
    z = jax.random.normal(rng_key, mean.shape, dtype=mean.dtype) if normals is None else normals
    return mean + row_chol_inv_t @ z @ col_chol.T
