"""Small dense draws used by the jomo sweeps: Wishart / inverse-Wishart, conditional normals.

Thin layer over pan's :mod:`mitml_jax.kernels.linalg` (unrolled small-matrix Cholesky and
triangular solves, Bartlett draws with a fixed number of gamma proposals), plus the
pattern-wise conditional-normal draws of missing values. Pure JAX; works under ``vmap``/``scan``.

Conventions: ``X ~ IW(df, S)`` means ``X^-1 ~ Wishart(df, S^-1)``, which is how jomo's C code
reads its updates (``Psi^-1 ~ W(J + dim, (sum u u' + Dinv)^-1)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import linalg as la

__all__ = [
    "chol",
    "spd_inverse",
    "logdet_from_chol",
    "inverse_wishart",
    "wishart",
    "wishart_noise_size",
    "wishart_from_noise",
    "inverse_wishart_from_noise",
    "chol_solve",
    "conditional_normal_draw",
    "conditional_normal_from_noise",
    "draw_missing_rows",
    "pattern_matrices",
    "sum_over_rows",
]

#: Padded cluster sizes up to this are summed by an unrolled chain of adds (see sum_over_rows).
UNROLL_ROWS = 32

chol = la.chol


def spd_inverse(a):
    """Inverse of symmetric positive definite matrices (..., d, d) via the unrolled Cholesky."""
    li = la.inv_lower(la.chol(a))
    return jnp.swapaxes(li, -1, -2) @ li


def logdet_from_chol(l):
    """``log|A|`` from the lower Cholesky factor of ``A`` (..., d, d)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(l, axis1=-2, axis2=-1)), axis=-1)


def wishart(key, df, scale):
    """One draw of Wishart(df, scale) (mean ``df * scale``)."""
    return la.draw_wishart(key, df, la.chol(scale))[0]


def inverse_wishart(key, df, scale):
    """One draw of IW(df, scale): the inverse of a Wishart(df, scale^-1) draw."""
    return la.draw_inverse_wishart(key, df, scale)[0]


def wishart_noise_size(d: int) -> tuple:
    """(normals, uniforms) one (inverse) Wishart draw of dimension ``d`` consumes."""
    return la.bartlett_noise_size(d)


def wishart_from_noise(df, scale, normals, uniforms):
    """Wishart(df, scale) from flat noise of :func:`wishart_noise_size` (mean ``df * scale``)."""
    factor = la.chol(scale) @ la.bartlett_from_noise(df, scale.shape[-1], normals, uniforms)[0]
    return la.symmetrize(factor @ factor.T)


def inverse_wishart_from_noise(df, scale, normals, uniforms):
    """IW(df, scale) (the inverse of a Wishart(df, scale^-1) draw) from flat noise."""
    return la.inverse_wishart_from_noise(df, scale, normals, uniforms)[0]


def sum_over_rows(x):
    """``x.sum(axis=1)`` for per-cluster row products ``x`` (J, L, ...).

    For small ``L`` as an unrolled chain of adds, which XLA fuses with the products into one
    elementwise loop; as a reduction, XLA's CPU backend hands such tiny per-cluster sums to a
    library kernel that costs several times more.
    """
    n_rows = x.shape[1]
    if n_rows > UNROLL_ROWS:
        return x.sum(axis=1)
    total = x[:, 0]
    for row in range(1, n_rows):
        total = total + x[:, row]
    return total


def chol_solve(l, b):
    """Solve ``(L L') X = B`` for a lower factor ``l`` (d, d) and ``B`` (d, m) (or (..., d, m))."""
    return jnp.swapaxes(la.cho_solve(l[..., None, :, :], jnp.swapaxes(b, -1, -2)), -1, -2)


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
    prec = spd_inverse(cov)
    m = patterns.astype(cov.dtype)
    mm = m[:, :, None] * m[:, None, :]
    eye = jnp.eye(d, dtype=cov.dtype)
    block = prec[None] * mm + eye[None] * (1.0 - m)[:, :, None]
    minv = la.symmetrize(spd_inverse(block))
    return prec, minv, la.chol(minv)


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
    z = jax.random.normal(key, values.shape, dtype=values.dtype)
    return conditional_normal_from_noise(z, values, means, cov, patterns, pattern_id)


def conditional_normal_from_noise(normals, values, means, cov, patterns, pattern_id):
    """:func:`conditional_normal_draw` given standard normals (N, d)."""
    prec, minv, chol = pattern_matrices(cov, patterns)
    miss = patterns[pattern_id]
    return draw_missing_rows(normals, values, means, prec, minv[pattern_id], chol[pattern_id],
                             miss)


def _matvec(mats, vecs):
    """Per-row ``mats @ vecs`` for tiny (N, d, d) x (N, d) as broadcast + sum (a batched dot of
    d x d matrices is dispatched matrix by matrix on CPU)."""
    return (mats * vecs[..., None, :]).sum(axis=-1)


def draw_missing_rows(normals, values, means, prec, minv_rows, chol_rows, miss):
    """Conditional-normal draw of the missing coordinates with per-row pattern matrices.

    ``normals`` (N, d) standard normals; ``prec`` is (d, d) or per row (N, d, d);
    ``minv_rows``/``chol_rows`` (N, d, d) come from :func:`pattern_matrices`; ``miss`` (N, d) boolean.
    """
    m = miss.astype(values.dtype)
    dev = (values - means) * (1.0 - m)
    if prec.ndim == 2:
        t = (dev @ prec) * m
    else:
        t = _matvec(prec, dev) * m
    shift = -_matvec(minv_rows, t)
    z = normals
    noise = _matvec(chol_rows, z * m)
    draw = means + shift + noise
    return jnp.where(miss, draw, values)
