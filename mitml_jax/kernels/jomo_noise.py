"""The random numbers of one jomo sweep: one threefry block, sized by tracing the sweep.

A jomo sweep needs normals and uniforms in a dozen places. Each ``jax.random`` call costs a
separate threefry evaluation, and on CPU jax lowers threefry into a ``while`` loop whose rotation
amounts are loop variables, so XLA cannot vectorise it (about 30 ns per 64-bit word, the largest
single cost of a small sweep). Here a sweep draws all its noise at once:

* :func:`threefry_bits64` is the same threefry-2x32 hash with its 20 rounds unrolled, so XLA
  fuses it into one vectorised loop (about 6 times faster on small blocks). Its bits are
  exactly those of ``jax.random.bits(key, (n,), jnp.uint64)`` (tested).
* :func:`draw_sweep_noise` turns them into normals and open uniforms as pan's noise does
  (52-bit uniforms ``(k + 0.5) 2^-52``, ``sqrt(2) erfinv(2u - 1)`` normals), and materialises
  them (left to itself, XLA fuses the hash and ``erfinv`` into every consumer of a slice and
  recomputes them there);
* :class:`CountingStream` mimics :class:`..noise.NoiseStream` while the sweep is traced
  abstractly, so the block size is whatever the sweep asks for and can never drift from it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .noise import NoiseStream

__all__ = ["threefry_bits64", "draw_sweep_noise", "CountingStream", "sweep_noise_stream"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(v, d: int):
    return (v << np.uint32(d)) | (v >> np.uint32(32 - d))


def _threefry2x32(k1, k2, x1, x2):
    """Threefry-2x32 (Salmon et al. 2011; 20 rounds) on uint32 arrays, rounds unrolled."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x1 = x1 + ks[0]
    x2 = x2 + ks[1]
    for i in range(5):
        for rot in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ _rotate_left(x2, rot)
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _key_words(key):
    """The two uint32 words of a threefry key (None for other PRNG implementations)."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(key) if typed else key
    return (data[0], data[1]) if data.shape == (2,) else None


def _bits_at(words, counters):
    """uint64 words of the hash at uint32 ``counters`` (high word 0, as ``jax.random.bits``)."""
    hi, lo = _threefry2x32(words[0], words[1], jnp.zeros_like(counters), counters)
    return (hi.astype(jnp.uint64) << np.uint64(32)) | lo.astype(jnp.uint64)


def threefry_bits64(key, n: int):
    """``n`` uint64 words from a threefry ``key``: ``jax.random.bits(key, (n,), jnp.uint64)``.

    Keys of other PRNG implementations fall back to ``jax.random.bits``.
    """
    words = _key_words(key)
    if words is None:
        return jax.random.bits(key, (n,), jnp.uint64)
    return _bits_at(words, jnp.arange(n, dtype=jnp.uint32))


def _open_uniform(bits, dtype):
    """Uniforms ``(k + 0.5) 2^-52`` (float64; ``k`` the top 52 bits) or ``(k + 0.5) 2^-23``."""
    if dtype == jnp.float64:
        # 1 + k 2^-52 by setting the exponent bits (no slow uint64 -> float conversion)
        one = jax.lax.bitcast_convert_type((bits >> np.uint64(12)) | np.uint64(0x3FF0000000000000),
                                           jnp.float64)
        return (one - 1.0) + 2.0**-53
    return ((bits >> np.uint64(41)).astype(jnp.uint32).astype(dtype) + 0.5) * (2.0**-23)


def _to_normal(u):
    return np.sqrt(2.0).astype(u.dtype) * jax.scipy.special.erfinv(2.0 * u - 1.0)


def _materialised(key, start: int, n: int, transform, dtype):
    """``transform(uniforms)`` of the words ``start .. start + n - 1``, computed once into a buffer.

    XLA's CPU fusion duplicates cheap elementwise producers into every consumer (and drops
    ``optimization_barrier``), so the hash and ``erfinv`` would be recomputed in each fusion that
    reads a slice of the noise. A loop is a fusion boundary: the words are computed in a
    two-step ``lax.scan`` (one half per step), whose stacked output lives in a buffer.
    """
    if n == 0:
        return jnp.zeros(0, dtype)
    words = _key_words(key)
    if words is None:
        return transform(_open_uniform(jax.random.bits(key, (start + n,), jnp.uint64)[start:],
                                       dtype))
    half = (n + 1) // 2

    def block(_, i):
        counters = jnp.uint32(start) + i * jnp.uint32(half) + jnp.arange(half, dtype=jnp.uint32)
        return None, transform(_open_uniform(_bits_at(words, counters), dtype))

    _, out = jax.lax.scan(block, None, jnp.arange(2, dtype=jnp.uint32))
    return out.reshape(-1)[:n]


def draw_sweep_noise(key, n_normals: int, n_uniforms: int, dtype):
    """(normals (n_normals,), uniforms (n_uniforms,)) from one threefry block.

    Word ``i`` of ``jax.random.bits(key, (n_normals + n_uniforms,), jnp.uint64)`` gives the
    ``i``-th value. Uniforms lie in the open interval (0, 1): ``(k + 0.5) 2^-52`` with the top
    52 bits ``k`` for float64, ``(k + 0.5) 2^-23`` with 23 bits for float32; normals are
    ``sqrt(2) erfinv(2u - 1)``.
    """
    dtype = jnp.dtype(dtype)
    normals = _materialised(key, 0, n_normals, _to_normal, dtype)
    uniforms = _materialised(key, n_normals, n_uniforms, lambda u: u, dtype)
    return normals, uniforms


class CountingStream:
    """Hands out placeholder noise and counts it (the interface of ``NoiseStream``)."""

    def __init__(self, dtype):
        self.dtype, self.n_normals, self.n_uniforms = dtype, 0, 0

    def normals(self, shape):
        self.n_normals += int(np.prod(shape, dtype=np.int64))
        return jnp.zeros(shape, self.dtype)

    def uniforms(self, shape):
        self.n_uniforms += int(np.prod(shape, dtype=np.int64))
        return jnp.full(shape, 0.5, self.dtype)


def sweep_noise_stream(key, sweep, args, dtype) -> NoiseStream:
    """A ``NoiseStream`` holding exactly the noise ``sweep(stream, *args)`` consumes.

    ``sweep`` is traced once abstractly (``jax.eval_shape``, nothing is computed) with a
    :class:`CountingStream`; then one block of that size is drawn from ``key``.
    """
    counter = CountingStream(dtype)
    jax.eval_shape(lambda *a: sweep(counter, *a), *args)
    return NoiseStream(*draw_sweep_noise(key, counter.n_normals, counter.n_uniforms, dtype))
