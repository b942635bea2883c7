"""Algebra on the sweep's parameter matrices (Sigma, Psi and their inverse-Wishart draws), one per chain.

These matrices are few (one or two per chain and group) and small (r x r, rq x rq). Unrolled into
elementwise operations (:mod:`linalg`) every entry of a factorisation becomes its own small XLA
loop: fine for d <= ``UNROLL_MAX`` (a handful of loops), but a 10 x 10 Cholesky factor then costs
hundreds of loops, about 25 us per call and seconds of compile time. Above ``UNROLL_MAX`` these
functions call LAPACK (one custom call per factorisation, about 5 us for 10 x 10 and 0.4 s of
compile time).

Products of tiny matrices are written as broadcast multiply-and-sum (fused loops) instead of XLA
dots, which call a matrix-multiply library at a fixed cost of a few microseconds each.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from . import linalg

__all__ = ["UNROLL_MAX", "matmul", "chol", "inv_lower", "spd_inverse", "bartlett", "inverse_wishart"]

#: Largest dimension for which parameter matrices are factorised by unrolled elementwise code.
UNROLL_MAX = 4


def matmul(a, b):
    """``a @ b`` for small matrices (..., m, k) @ (..., k, n); a fused multiply-sum when k <= 8."""
    if a.shape[-1] > 8:
        return a @ b
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def chol(a):
    """Lower Cholesky factor of SPD matrices (..., d, d); NaN entries when not positive definite."""
    return linalg.chol(a) if a.shape[-1] <= UNROLL_MAX else jnp.linalg.cholesky(a)


def inv_lower(l):
    """Inverse of lower-triangular matrices (..., d, d)."""
    d = l.shape[-1]
    if d <= UNROLL_MAX:
        return linalg.inv_lower(l)
    eye = jnp.broadcast_to(jnp.eye(d, dtype=l.dtype), l.shape)
    return jsl.solve_triangular(l, eye, lower=True)


def _t(a):
    return jnp.swapaxes(a, -1, -2)


def spd_inverse(a):
    """Inverse of SPD matrices (..., d, d) via the Cholesky factor: ``L^{-T} L^{-1}`` (symmetric)."""
    li = inv_lower(chol(a))
    return linalg.symmetrize(matmul(_t(li), li))


def bartlett(df, d: int, normals, uniforms):
    """:func:`linalg.bartlett_from_noise` (same numbers), built by stacking entries instead of a scatter."""
    n_prop = linalg.GAMMA_PROPOSALS
    dtype = normals.dtype
    dfs = jnp.asarray(df, dtype) - jnp.arange(d, dtype=dtype)
    g, exhausted = linalg.gamma_from_noise(
        0.5 * dfs, normals[: n_prop * d].reshape(n_prop, d), uniforms.reshape(n_prop + 1, d)
    )
    diag = jnp.sqrt(2.0 * g)
    below = normals[n_prop * d :]
    rows, cols = np.tril_indices(d, -1)
    position = {(int(i), int(j)): k for k, (i, j) in enumerate(zip(rows, cols))}
    zero = jnp.zeros((), dtype)
    entries = [
        [diag[i] if i == j else (below[position[(i, j)]] if i > j else zero) for j in range(d)] for i in range(d)
    ]
    return jnp.stack([jnp.stack(row) for row in entries]), jnp.any(exhausted)


def inverse_wishart(df, scale, normals, uniforms):
    """``X ~ IW(df, S)`` in pan's sense (``X^{-1} ~ Wishart(df, S^{-1})``) with a square root and the inverse.

    With ``S = C C^T`` and the Bartlett factor ``A`` (noise as :func:`linalg.bartlett_from_noise`):
    ``X = T T^T`` with ``T = C A^{-T}`` and ``X^{-1} = W W^T`` with ``W = C^{-T} A``. ``X`` equals
    :func:`linalg.inverse_wishart_from_noise` for the same noise (up to rounding).

    Returns:
        (X, T, X^{-1}, exhausted); a scale that is not positive definite gives NaN entries.
    """
    d = scale.shape[-1]
    a, exhausted = bartlett(df, d, normals, uniforms)
    c = chol(scale)
    # the two triangular inverses, the two products and the two squares each as ONE stacked
    # operation (same numbers): every separate small operation is its own XLA kernel, and their
    # compile time (about 25 ms each on this machine) is what an inverse-Wishart draw costs most
    a_inv, c_inv = _unstack(inv_lower(jnp.stack([a, c])))
    root, w = _unstack(matmul(jnp.stack([c, _t(c_inv)]), jnp.stack([_t(a_inv), a])))
    both = linalg.symmetrize(matmul(jnp.stack([root, w]), jnp.stack([_t(root), _t(w)])))
    return both[0], root, both[1], exhausted


def _unstack(pair):
    """The two members of a stacked pair."""
    return pair[0], pair[1]
