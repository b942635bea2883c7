"""Small dense draws used by the jomo sweeps: Wishart / inverse-Wishart, conditional normals.

Private to the jomo kernels (the pan engineer's ``kernels/linalg.py`` had not landed when these
were written); everything is pure JAX and works under ``vmap`` and ``lax.scan``.

Conventions: ``X ~ IW(df, S)`` means ``X^-1 ~ Wishart(df, S^-1)``, which is how jomo's C code
reads its updates (``Psi^-1 ~ W(J + dim, (sum u u' + Dinv)^-1)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

__all__ = [
    "bartlett_factor",
    "inverse_wishart",
    "wishart",
    "chol_solve",
    "conditional_normal_draw",
    "draw_missing_rows",
    "pattern_matrices",
]


def bartlett_factor(key, df, dim: int):
    """Lower-triangular Bartlett factor A with A A' ~ Wishart(df, I_dim).

    Diagonal ``sqrt(chi2(df - i))`` for ``i = 0..dim-1``, standard normals below.
    """
    key_chi, key_norm = jax.random.split(key)
    shapes = (df - jnp.arange(dim)) / 2.0
    chi2 = 2.0 * jax.random.gamma(key_chi, shapes, dtype=jnp.result_type(float))
    lower = jnp.tril(jax.random.normal(key_norm, (dim, dim)), -1)
    return lower + jnp.diag(jnp.sqrt(chi2))


def wishart(key, df, scale):
    """One draw of Wishart(df, scale) (mean ``df * scale``)."""
    dim = scale.shape[-1]
    chol = jnp.linalg.cholesky(scale)
    m = chol @ bartlett_factor(key, df, dim)
    return m @ m.T


def inverse_wishart(key, df, scale):
    """One draw of IW(df, scale): the inverse of a Wishart(df, scale^-1) draw.

    With ``scale = L L'`` and Bartlett ``A``, ``X = (L A^-T)(L A^-T)'``.
    """
    dim = scale.shape[-1]
    chol = jnp.linalg.cholesky(scale)
    a = bartlett_factor(key, df, dim)
    # M = L A^{-T} = (A^{-1} L')'
    m = solve_triangular(a, chol.T, lower=True).T
    x = m @ m.T
    return 0.5 * (x + x.T)


def chol_solve(chol, b):
    """Solve (L L') x = b for a lower Cholesky factor ``chol`` (batched over leading axes)."""
    y = solve_triangular(chol, b, lower=True)
    return solve_triangular(chol, y, lower=True, trans="T")


def pattern_matrices(cov, patterns):
    """Per-pattern conditional-normal matrices of N(0, cov).

    Args:
        cov: (d, d) covariance.
        patterns: (P, d) boolean, True = missing coordinate.

    Returns:
        ``(prec, minv, chol)``: ``prec = cov^-1`` (d, d); ``minv`` (P, d, d) holds ``(Lambda_mm)^-1`` on the missing block and
        the identity elsewhere (``Lambda = cov^-1``), ``chol`` (P, d, d) its Cholesky factor. For a vector with
        deviation ``dev`` from its mean, the missing part given the observed part is
        ``mean_m - minv (m * (Lambda (o * dev)))`` plus ``chol @ z`` on the missing coordinates.
    """
    d = cov.shape[-1]
    prec = jnp.linalg.inv(cov)
    prec = 0.5 * (prec + prec.T)
    m = patterns.astype(cov.dtype)
    mm = m[:, :, None] * m[:, None, :]
    eye = jnp.eye(d, dtype=cov.dtype)
    block = prec[None] * mm + eye[None] * (1.0 - m)[:, :, None]
    minv = jnp.linalg.inv(block)
    minv = 0.5 * (minv + jnp.swapaxes(minv, -1, -2))
    chol = jnp.linalg.cholesky(minv)
    return prec, minv, chol


def conditional_normal_draw(key, values, means, cov, patterns, pattern_id):
    """Draw the missing coordinates of each row from N(means, cov) given its observed ones.

    Args:
        key: PRNG key.
        values: (N, d) current values (missing coordinates are ignored).
        means: (N, d) means.
        cov: (d, d) covariance shared by all rows.
        patterns: (P, d) boolean missingness patterns (True = missing).
        pattern_id: (N,) int index into ``patterns``.

    Returns:
        (N, d) values with the missing coordinates redrawn and the observed ones unchanged.
    """
    prec, minv, chol = pattern_matrices(cov, patterns)
    miss = patterns[pattern_id]
    return draw_missing_rows(key, values, means, prec, minv[pattern_id], chol[pattern_id], miss)


def draw_missing_rows(key, values, means, prec, minv_rows, chol_rows, miss):
    """Conditional-normal draw of the missing coordinates with per-row pattern matrices.

    ``prec`` is (d, d) or per row (N, d, d); ``minv_rows``/``chol_rows`` (N, d, d) come from
    :func:`pattern_matrices`; ``miss`` (N, d) boolean.
    """
    m = miss.astype(values.dtype)
    dev = (values - means) * (1.0 - m)
    if prec.ndim == 2:
        t = (dev @ prec) * m
    else:
        t = jnp.einsum("nij,nj->ni", prec, dev) * m
    shift = -jnp.einsum("nij,nj->ni", minv_rows, t)
    z = jax.random.normal(key, values.shape, dtype=values.dtype)
    noise = jnp.einsum("nij,nj->ni", chol_rows, z * m)
    draw = means + shift + noise
    return jnp.where(miss, draw, values)
