"""The random numbers of one jomo sweep: one threefry block, sized by tracing the sweep.

A jomo sweep needs normals and uniforms in a dozen places. Each ``jax.random`` call costs a
separate threefry evaluation, and on CPU jax lowers threefry into a ``while`` loop whose rotation
amounts are loop variables, so XLA cannot vectorise it (about 30 ns per 64-bit word, the largest
single cost of a small sweep). Here a sweep draws all its noise at once:

* :func:`threefry_bits64` is the same threefry-2x32 hash with its 20 rounds unrolled, so XLA
  fuses it into one vectorised loop (about 6 times faster on small blocks). Its bits are
  exactly those of ``jax.random.bits(key, (n,), jnp.uint64)`` (tested).
* :func:`draw_sweep_noise` turns them into open uniforms as pan's noise does (52 bits,
  ``(k + 0.5) 2^-52``) and normals by inversion, and materialises them (left to itself, XLA
  fuses the hash and the inversion into every consumer of a slice and recomputes them there);
* :func:`normal_quantile` (Wichura's AS241) and :func:`normal_cdf` (one ``erfc``) replace
  ``ndtri``/``erfinv`` and ``ndtr``, which cost two to four times as much in float64 on CPU;
* :class:`CountingStream` mimics :class:`..noise.NoiseStream` while the sweep is traced
  abstractly, so the block size is whatever the sweep asks for (the jomo kernel instead passes
  the budget of :mod:`.jomo_budget`, which the tests compare with this count, sparing a second
  trace of the sweep).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc

from .noise import NoiseStream, log_positive, uniforms_from_bits
from .threefry import threefry2x32 as _threefry2x32

__all__ = ["log_positive", "normal_cdf", "normal_quantile", "threefry_bits64", "draw_sweep_noise",
           "CountingStream", "count_sweep_noise", "sweep_noise_stream"]

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
    """Uniforms ``(k + 0.5) 2^-52`` (float64; ``k`` the top 52 bits of the uint64 word) or
    ``(k + 0.5) 2^-23`` (float32; its top 23 bits): :func:`noise.uniforms_from_bits`."""
    if dtype == jnp.float64:
        return uniforms_from_bits(bits, dtype)
    return uniforms_from_bits((bits >> np.uint64(32)).astype(jnp.uint32), dtype)


def normal_cdf(x):
    """Standard normal CDF as one ``erfc`` (``jax.scipy.special.ndtr`` evaluates ``erf`` and
    ``erfc`` on every element: four times the cost in float64 on CPU; same accuracy)."""
    return 0.5 * erfc(x * -np.sqrt(0.5))


# Wichura's AS241 (PPND16): rational approximations of the normal quantile, ~1e-16 relative
_AS241_A = (3.3871328727963666080, 1.3314166789178437745e2, 1.9715909503065514427e3,
            1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
            3.3430575583588128105e4, 2.5090809287301226727e3)
_AS241_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
            2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
            5.2264952788528545610e3)
_AS241_C = (1.42343711074968357734, 4.63033784615654529590, 5.76949722146069140550,
            3.64784832476320460504, 1.27045825245236838258, 2.41780725177450611770e-1,
            2.27238449892691845833e-2, 7.74545014278341407640e-4)
_AS241_D = (1.0, 2.05319162663775882187, 1.67638483018380384940, 6.89767334985100004550e-1,
            1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
            1.05075007164441684324e-9)
_AS241_E = (6.65790464350110377720, 5.46378491116411436990, 1.78482653991729133580,
            2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
            2.71155556874348757815e-5, 2.01033439929228813265e-7)
_AS241_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1,
            1.48753612908506148525e-2, 7.86869131145613259100e-4, 1.84631831751005468180e-5,
            1.42151175831644588870e-7, 2.04426310338993978564e-15)


def _ratio(num, den, x):
    """``num(x) / den(x)`` for coefficient tuples in increasing powers (Horner)."""
    p, q = num[-1], den[-1]
    for a, b in zip(num[-2::-1], den[-2::-1]):
        p = p * x + a
        q = q * x + b
    return p / q


def normal_quantile(p):
    """Standard normal quantile (inverse CDF) of ``p`` in (0, 1), Wichura's AS241 (PPND16).

    Accurate to about 1e-16 relative, like ``jax.scipy.special.ndtri``, at a third of its cost in
    float64 on CPU (one :func:`log_positive` instead of several ``log``, polynomials XLA
    vectorises).
    """
    q = p - 0.5
    central = q * _ratio(_AS241_A, _AS241_B, 0.180625 - q * q)
    r = jnp.sqrt(-log_positive(jnp.minimum(p, 1.0 - p)))
    tail = jnp.where(r <= 5.0, _ratio(_AS241_C, _AS241_D, r - 1.6),
                     _ratio(_AS241_E, _AS241_F, r - 5.0))
    tail = jnp.where(q < 0.0, -tail, tail)
    return jnp.where(jnp.abs(q) <= 0.425, central, tail)


def _materialised(key, start: int, n: int, transform, dtype):
    """``transform(uniforms)`` of the words ``start .. start + n - 1``, computed once into a buffer.

    XLA's CPU fusion duplicates cheap elementwise producers into every consumer (and drops
    ``optimization_barrier``), so the hash and the inversion would be recomputed in each fusion that
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
    their normal quantiles (:func:`normal_quantile`).
    """
    dtype = jnp.dtype(dtype)
    normals = _materialised(key, 0, n_normals, normal_quantile, dtype)
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


def count_sweep_noise(sweep, args, dtype) -> tuple:
    """``(n_normals, n_uniforms)`` that ``sweep(stream, *args)`` consumes, found by tracing it once
    abstractly (``jax.eval_shape``, nothing is computed) with a :class:`CountingStream`."""
    counter = CountingStream(dtype)
    jax.eval_shape(lambda *a: sweep(counter, *a), *args)
    return counter.n_normals, counter.n_uniforms


def sweep_noise_stream(key, sweep, args, dtype, budget=None) -> NoiseStream:
    """A ``NoiseStream`` holding exactly the noise ``sweep(stream, *args)`` consumes.

    ``budget`` is ``(n_normals, n_uniforms)`` when the caller knows it (the jomo kernel:
    :func:`.jomo_budget.noise_budget`); otherwise it is counted by :func:`count_sweep_noise`
    (a second trace of the sweep). Then one block of that size is drawn from ``key``; the
    stream's ``finish()`` checks that the sweep used exactly that much.
    """
    n_normals, n_uniforms = count_sweep_noise(sweep, args, dtype) if budget is None else budget
    return NoiseStream(*draw_sweep_noise(key, n_normals, n_uniforms, dtype))
