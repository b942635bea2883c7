"""Algebra on the sweep's parameter matrices (Sigma, Psi and their inverse-Wishart draws), one per chain.

These matrices are few (one or two per chain and group) and small (r x r, rq x rq). Unrolled into
elementwise operations (:mod:`linalg`) every entry of a factorisation becomes its own small XLA
loop: fine for d <= ``UNROLL_MAX`` (a handful of loops), but a 10 x 10 Cholesky factor then costs
hundreds of loops, about 25 us per call and seconds of compile time. Above ``UNROLL_MAX`` these
functions call LAPACK (one custom call per factorisation, about 5 us for 10 x 10 and 0.4 s of
compile time), on a CPU one matrix at a time (:func:`_one_at_a_time`), so that chains run in
parts on threads (:mod:`..sampling.threads`) never wait on each other inside jaxlib 0.10's LAPACK
kernels.

Products of tiny matrices are written as broadcast multiply-and-sum (fused loops) instead of XLA
dots, which call a matrix-multiply library at a fixed cost of a few microseconds each.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from . import linalg

__all__ = ["UNROLL_MAX", "matmul", "chol", "inv_lower", "spd_inverse", "bartlett", "bartlett_diagonals",
           "bartletts_from_diagonals", "bartletts", "inverse_wishart",
           "inverse_wishart_from_bartlett", "embed"]

#: Largest dimension for which parameter matrices are factorised by unrolled elementwise code.
UNROLL_MAX = 4


def matmul(a, b):
    """``a @ b`` for small matrices (..., m, k) @ (..., k, n); a fused multiply-sum when k <= 8."""
    if a.shape[-1] > 8:
        return a @ b
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _one_at_a_time(fn):
    """``fn`` (a LAPACK-backed function of (..., d, d) matrices) with ONE LAPACK call per matrix (a
    loop), under ``vmap`` too, where the program runs on a CPU; ``fn`` itself (one batched call, the
    same numbers) elsewhere: a loop of small kernels would cost a GPU a launch each.

    jaxlib 0.10's CPU LAPACK kernels split a batch into tasks on XLA's thread pool and wait for
    them on a thread of that pool; two chain parts running at once (:mod:`..sampling.threads`)
    could then occupy every thread of the pool waiting, and hang. A single matrix never waits.
    The factors equal the batched call's exactly (tests/test_sampling_threads.py).
    """
    single = jax.custom_batching.sequential_vmap(fn)

    def looped(a):
        batch = a.shape[:-2]
        if not batch:
            return single(a)
        flat = a.reshape((-1,) + a.shape[-2:])
        return jax.lax.map(single, flat).reshape(batch + a.shape[-2:])

    def apply(a):
        return jax.lax.platform_dependent(a, cpu=looped, default=fn)

    return apply


def _lapack_inv_lower(l):
    eye = jnp.broadcast_to(jnp.eye(l.shape[-1], dtype=l.dtype), l.shape)
    return jsl.solve_triangular(l, eye, lower=True)


_chol_each = _one_at_a_time(jnp.linalg.cholesky)
_inv_lower_each = _one_at_a_time(_lapack_inv_lower)


def chol(a):
    """Lower Cholesky factor of SPD matrices (..., d, d); NaN entries when not positive definite."""
    return linalg.chol(a) if a.shape[-1] <= UNROLL_MAX else _chol_each(a)


def inv_lower(l):
    """Inverse of lower-triangular matrices (..., d, d)."""
    if l.shape[-1] <= UNROLL_MAX:
        return linalg.inv_lower(l)
    return _inv_lower_each(l)


def _t(a):
    return jnp.swapaxes(a, -1, -2)


def spd_inverse(a):
    """Inverse of SPD matrices (..., d, d) via the Cholesky factor: ``L^{-T} L^{-1}`` (symmetric)."""
    li = inv_lower(chol(a))
    return linalg.symmetrize(matmul(_t(li), li))


def bartlett(df, d: int, normals, uniforms):
    """:func:`linalg.bartlett_from_noise` (same numbers), built without a scatter."""
    (a,), exhausted = bartletts((df,), (d,), ((normals, uniforms),))
    return a, exhausted


def bartlett_diagonals(dfs, dims, noises, per_value=False):
    """The diagonals of several Bartlett factors (:func:`bartlett`, same numbers) from ONE gamma
    draw over all of them: ``(diagonal, exhausted)``, the diagonals concatenated.

    ``dfs``, ``dims`` and ``noises`` (``(normals, uniforms)`` pairs, sizes
    ``linalg.bartlett_noise_size(d)`` along their first axis) are per factor. The noise may carry
    trailing batch axes (e.g. chains): ``diagonal`` is then (sum of dims, *batch) and ``exhausted``
    (*batch), or shaped like ``diagonal`` (a flag per value) with ``per_value``. Every operation is
    elementwise, so a batch laid out last makes the rejection sampler's loop run over contiguous
    values (XLA vectorises it; chain-first under ``vmap`` its innermost axis is a factor's few
    diagonal entries and it ran unvectorised).
    """
    n_prop = linalg.GAMMA_PROPOSALS
    dtype = noises[0][0].dtype
    batch = noises[0][0].shape[1:]
    shapes = jnp.concatenate([0.5 * (jnp.asarray(df, dtype) - jnp.arange(d, dtype=dtype)) for df, d in zip(dfs, dims)])
    shapes = shapes.reshape(shapes.shape + (1,) * len(batch))
    props = jnp.concatenate([n[: n_prop * d].reshape((n_prop, d) + batch) for (n, _), d in zip(noises, dims)], axis=1)
    unifs = jnp.concatenate([u.reshape((n_prop + 1, d) + batch) for (_, u), d in zip(noises, dims)], axis=1)
    g, exhausted = linalg.gamma_from_noise(shapes, props, unifs)
    return jnp.sqrt(2.0 * g), exhausted if per_value else jnp.any(exhausted, axis=0)


def bartletts_from_diagonals(diagonal, dims, normals):
    """The Bartlett factors of :func:`bartlett_diagonals`' ``diagonal`` (no batch axes) with the
    below-diagonal entries from each factor's ``normals`` (its noise's normals, the proposals
    first): a list of (d, d) factors.

    The factors are assembled by a gather with a constant index table: stacking d^2 entries made
    about 2 d small XLA kernels per factor.
    """
    n_prop = linalg.GAMMA_PROPOSALS
    factors, start = [], 0
    for noise, d in zip(normals, dims):
        # one vector [below-diagonal normals, diagonal, 0] and a constant table of positions in it
        below = noise[n_prop * d :]
        values = jnp.concatenate([below, diagonal[start : start + d], jnp.zeros((1,), diagonal.dtype)])
        table = np.full((d, d), values.shape[0] - 1, np.int32)
        rows, cols = np.tril_indices(d, -1)
        table[rows, cols] = np.arange(rows.size)
        table[np.arange(d), np.arange(d)] = rows.size + np.arange(d)
        factors.append(values[table])
        start += d
    return factors


def bartletts(dfs, dims, noises):
    """Several Bartlett factors (:func:`bartlett`, same numbers) from ONE gamma draw over all their
    diagonals (:func:`bartlett_diagonals`, :func:`bartletts_from_diagonals`): ``(list of (d, d)
    factors, exhausted)``."""
    diagonal, exhausted = bartlett_diagonals(dfs, dims, noises)
    return bartletts_from_diagonals(diagonal, dims, [n for n, _ in noises]), exhausted


def inverse_wishart(df, scale, normals, uniforms):
    """``X ~ IW(df, S)`` in pan's sense (``X^{-1} ~ Wishart(df, S^{-1})``) with a square root and the inverse.

    With ``S = C C^T`` and the Bartlett factor ``A`` (noise as :func:`linalg.bartlett_from_noise`):
    ``X = T T^T`` with ``T = C A^{-T}`` and ``X^{-1} = W W^T`` with ``W = C^{-T} A``. ``X`` equals
    :func:`linalg.inverse_wishart_from_noise` for the same noise (up to rounding).

    Returns:
        (X, T, X^{-1}, exhausted); a scale that is not positive definite gives NaN entries.
    """
    a, exhausted = bartlett(df, scale.shape[-1], normals, uniforms)
    return inverse_wishart_from_bartlett(a, scale) + (exhausted,)


def inverse_wishart_from_bartlett(a, scale):
    """:func:`inverse_wishart` for a given Bartlett factor ``a`` (d, d): ``(X, T, X^{-1})``."""
    c = chol(scale)
    # the two triangular inverses, the two products and the two squares each as ONE stacked
    # operation (same numbers): every separate small operation is its own XLA kernel, and their
    # compile time (about 25 ms each on this machine) is what an inverse-Wishart draw costs most
    a_inv, c_inv = _unstack(inv_lower(jnp.stack([a, c])))
    root, w = _unstack(matmul(jnp.stack([c, _t(c_inv)]), jnp.stack([_t(a_inv), a])))
    both = linalg.symmetrize(matmul(jnp.stack([root, w]), jnp.stack([_t(root), _t(w)])))
    return both[0], root, both[1]


def embed(a, d: int):
    """``diag(I, a)``: matrices a (..., k, k) in the lower right corner of (..., d, d) identities.

    Factorisations, triangular inverses and products of ``diag(I, a)`` keep that block form, with
    ``a``'s block computed from ``a`` alone, so a k x k problem can share a batch with d x d ones.
    """
    k = a.shape[-1]
    if k == d:
        return a
    eye = jnp.broadcast_to(jnp.eye(d, dtype=a.dtype), a.shape[:-2] + (d, d))
    return eye.at[..., d - k :, d - k :].set(a)


def _unstack(pair):
    """The two members of a stacked pair."""
    return pair[0], pair[1]
