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
    draw_gamma, draw_chi2, draw_bartlett, draw_wishart, draw_inverse_wishart, draw_matrix_normal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

__all__ = [
    "UNROLL_MAX",
    "chol",
    "solve_lower",
    "solve_upper_t",
    "cho_solve",
    "inv_lower",
    "symmetrize",
    "draw_gamma",
    "draw_chi2",
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
    entries = {}
    for j in range(d):
        entries[(j, j)] = 1.0 / l[..., j, j]
        for i in range(j + 1, d):
            s = l[..., i, j] * entries[(j, j)]
            for k in range(j + 1, i):
                s = s + l[..., i, k] * entries[(k, j)]
            entries[(i, j)] = -s / l[..., i, i]
    return _stack_lower(entries, d)


def draw_gamma(rng_key, shape_param, n_proposals=GAMMA_PROPOSALS):
    """Gamma(shape, 1) variates for an array of shapes, with a fixed number of proposals.

    Marsaglia and Tsang (2000): for shape ``k >= 1`` propose ``v = (1 + x / sqrt(9 d))^3`` with
    ``d = k - 1/3``, ``x ~ N(0, 1)``, accept when ``log u < x^2 / 2 + d - d v + d log v``; the
    first accepted proposal is returned. Shapes below one use ``Gamma(k) = Gamma(k + 1) U^(1/k)``.

    Returns:
        (draws, exhausted): draws with the shape of ``shape_param``; ``exhausted`` is True where no
        proposal was accepted (probability < 4e-11 per variate); the last proposal is used then.
    """
    k = jnp.asarray(shape_param)
    key_x, key_u, key_boost = jax.random.split(rng_key, 3)
    small = k < 1.0
    kk = jnp.where(small, k + 1.0, k)
    d = kk - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    x = jax.random.normal(key_x, (n_proposals,) + k.shape, dtype=k.dtype)
    u = jax.random.uniform(key_u, (n_proposals,) + k.shape, dtype=k.dtype)
    t = 1.0 + c * x
    v = t * t * t
    safe_v = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * safe_v + d * jnp.log(safe_v))
    # index of the first accepted proposal (n_proposals - 1 if none)
    first = jnp.argmax(jnp.concatenate([accept[:-1], jnp.ones_like(accept[-1:])], axis=0), axis=0)
    chosen = jnp.take_along_axis(safe_v, first[None], axis=0)[0]
    draws = d * chosen
    boost = jax.random.uniform(key_boost, k.shape, dtype=k.dtype)
    draws = jnp.where(small, draws * boost ** (1.0 / jnp.where(small, k, 1.0)), draws)
    exhausted = ~jnp.any(accept, axis=0)
    return draws, exhausted


def draw_chi2(rng_key, df):
    """Chi-square variates with degrees of freedom ``df`` (array); returns (draws, exhausted)."""
    g, exhausted = draw_gamma(rng_key, 0.5 * jnp.asarray(df))
    return 2.0 * g, exhausted


def draw_bartlett(rng_key, df, d, dtype):
    """Bartlett factor: lower-triangular ``A`` (d, d) with ``A A^T ~ Wishart(df, I_d)``.

    ``A_ii = sqrt(chi2(df - i))`` (0-based i), ``A_ij ~ N(0, 1)`` below the diagonal.
    Returns (A, exhausted) where ``exhausted`` flags a gamma draw without accepted proposal.
    """
    key_c, key_n = jax.random.split(rng_key)
    dfs = jnp.asarray(df, dtype) - jnp.arange(d, dtype=dtype)
    chi, exhausted = draw_chi2(key_c, dfs)
    normals = jax.random.normal(key_n, (d, d), dtype=dtype)
    a = jnp.tril(normals, -1) + jnp.diag(jnp.sqrt(chi))
    return a, jnp.any(exhausted)


def draw_wishart(rng_key, df, scale_chol):
    """``W ~ Wishart(df, S)`` given the lower Cholesky factor of ``S`` (d, d); E[W] = df S.

    Returns (W, exhausted).
    """
    d = scale_chol.shape[-1]
    a, exhausted = draw_bartlett(rng_key, df, d, scale_chol.dtype)
    la = scale_chol @ a
    return symmetrize(la @ la.T), exhausted


def draw_inverse_wishart(rng_key, df, scale):
    """``X ~ IW(df, S)`` in pan's sense (``X^{-1} ~ Wishart(df, S^{-1})``), S (d, d) SPD.

    With ``S = C C^T`` and Bartlett ``A``: ``X^{-1} = C^{-T} A A^T C^{-1}`` so
    ``X = (C A^{-T})(C A^{-T})^T``; only triangular inverses are needed.

    Returns:
        (X, exhausted): the draw and the gamma-proposal flag. A scale that is not positive definite
        gives NaN entries.
    """
    d = scale.shape[-1]
    c = chol(scale)
    a, exhausted = draw_bartlett(rng_key, df, d, scale.dtype)
    t = c @ inv_lower(a).T
    return symmetrize(t @ t.T), exhausted


def draw_matrix_normal(rng_key, mean, row_chol_inv_t, col_chol):
    """``B = mean + R Z C^T`` with ``Z`` iid N(0, 1): vec(B) ~ N(vec(mean), (C C^T) kron (R R^T)).

    Args:
        mean: (p, r).
        row_chol_inv_t: (p, p) ``R``, e.g. ``L_x^{-T}`` for row covariance ``(X^T X)^{-1}``.
        col_chol: (r, r) lower Cholesky factor of the column covariance (Sigma).
    """
    z = jax.random.normal(rng_key, mean.shape, dtype=mean.dtype)
    return mean + row_chol_inv_t @ z @ col_chol.T
