"""All random numbers of a Gibbs sweep from ONE threefry call, handed out in static slices.

Every ``jax.random`` call inlines its own copy of the threefry hash, and on CPU each copy adds
about a second of XLA compile time; a sweep with a dozen calls compiled for half a minute. A
sweep therefore draws one block of bits and slices it with offsets known at trace time
(:class:`NoiseStream`).

:func:`draw_sweep_noise` (pan's): the hash written out as elementwise operations (:mod:`threefry`,
the same bits as ``jax.random.bits``), uniforms built from the bits without integer-to-float
conversion (AVX2 has none for 64-bit integers) and normals by the Box-Muller transform with a
polynomial sine/cosine, about four times cheaper per normal on CPU than ``erfinv`` in float64. A
pair of normals takes one 64-bit hash output: its two 32-bit words are the radius and the angle
uniform (32 bits each, R's ``unif_rand`` resolution).
:func:`open_uniforms` is the reference definition of the uniforms (``jax.random.bits`` based).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from . import threefry
from .lean_vmap import is_batched

__all__ = ["computed_once", "open_uniforms", "uniforms_from_bits", "uniforms_from_words", "log_positive", "box_muller",
           "draw_sweep_noise", "NoiseStream"]


def open_uniforms(rng_key, shape, dtype):
    """Uniforms on the open interval (0, 1) with the full mantissa of ``dtype``."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        bits = jax.random.bits(rng_key, shape, dtype=jnp.uint64)
        # 52 bits: k + 0.5 is exact in float64, so the result stays strictly below 1
        return ((bits >> 12).astype(dtype) + 0.5) * (2.0**-52)
    bits = jax.random.bits(rng_key, shape, dtype=jnp.uint32)
    # 23 bits: k + 0.5 is exact in float32 (k < 2**23), so u never rounds to 1.0
    return ((bits >> 9).astype(dtype) + 0.5) * (2.0**-23)


def uniforms_from_bits(bits, dtype):
    """:func:`open_uniforms`'s numbers from its bits (uint64 for float64, uint32 for float32).

    The top 52 (23) bits become the mantissa of a float in [1, 2); subtracting 1 and adding half a
    step gives ``(k + 0.5) 2^-52`` exactly, as :func:`open_uniforms`, with shifts and a bitcast.
    """
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        one = jax.lax.bitcast_convert_type((bits >> np.uint64(12)) | np.uint64(0x3FF0000000000000), dtype)
        return (one - 1.0) + 2.0**-53
    one = jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | np.uint32(0x3F800000), dtype)
    return (one - np.float32(1.0)) + np.float32(2.0**-24)


# fdlibm's e_log.c: log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)
_SHIFT = np.uint64((0x3FF00000 - 0x3FE6A09E) << 32)  # moves [sqrt(2)/2, 1) up one binade
_MANTISSA = np.uint64(0x000FFFFFFFFFFFFF)
_SQRT_HALF_BITS = np.uint64(0x3FE6A09E00000000)
_MAGIC = np.uint64(0x4330000000000000)  # 2^52: exponent to float without an int -> float convert


def log_positive(x):
    """Natural log of float64 ``x`` in elementwise operations XLA vectorises (fdlibm's algorithm,
    within 1 ulp of ``numpy.log``); ``-inf`` at 0, ``nan`` below, ``inf`` at ``inf``.

    XLA's CPU backend calls the scalar libm ``log`` for float64, about five times slower on
    arrays of a few hundred values (3.9 against 1.2 ns per value on a million). Other dtypes use
    ``jnp.log``. Used by Box-Muller's radius, the gamma draws and jomo's normal quantiles.
    """
    if x.dtype != jnp.float64:
        return jnp.log(x)
    bits = jax.lax.bitcast_convert_type(x, jnp.uint64) + _SHIFT
    mantissa = jax.lax.bitcast_convert_type((bits & _MANTISSA) + _SQRT_HALF_BITS, jnp.float64)
    k = jax.lax.bitcast_convert_type((bits >> np.uint64(52)) | _MAGIC, jnp.float64) - (
        4503599627370496.0 + 1023.0)
    f = mantissa - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = (z * (_LG[0] + w * (_LG[2] + w * (_LG[4] + w * _LG[6])))
         + w * (_LG[1] + w * (_LG[3] + w * _LG[5])))
    out = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)
    out = jnp.where(x == jnp.inf, jnp.inf, out)
    return jnp.where(x > 0, out, jnp.where(x == 0, -jnp.inf, jnp.nan))


def _sin_cos_quarter(a):
    """(sin a, cos a) for |a| <= pi / 4 by Taylor polynomials (truncation error < 1e-16)."""
    a2 = a * a
    s = jnp.full_like(a, -1.0 / math.factorial(15))
    for k in range(13, 0, -2):
        s = s * a2 + (-1.0) ** (k // 2) / math.factorial(k)
    c = jnp.full_like(a, 1.0 / math.factorial(16))
    for k in range(14, -1, -2):
        c = c * a2 + (-1.0) ** (k // 2) / math.factorial(k)
    return a * s, c


def box_muller(u_radius, u_angle):
    """Two independent standard normals per pair of open uniforms: ``r cos(2 pi v)``, ``r sin(2 pi v)``
    with ``r = sqrt(-2 log u)``. Returns (cos part, sin part), each shaped like the inputs.

    The angle is reduced exactly to a quarter turn ``k`` plus ``f`` in [-1/8, 1/8] and the sine and
    cosine of ``2 pi f`` come from polynomials (elementwise, vectorised; XLA's float64 ``sin`` and
    ``cos`` are several times slower on CPU).
    """
    r = jnp.sqrt(-2.0 * log_positive(u_radius))
    k = jnp.floor(4.0 * u_angle + 0.5)
    s, c = _sin_cos_quarter((2.0 * np.pi) * (u_angle - 0.25 * k))
    quarter = k.astype(jnp.int32) & 3
    sin = jnp.where(quarter == 0, s, jnp.where(quarter == 1, c, jnp.where(quarter == 2, -s, -c)))
    cos = jnp.where(quarter == 0, c, jnp.where(quarter == 1, -s, jnp.where(quarter == 2, -c, s)))
    return r * cos, r * sin


def computed_once(fn, args, always=None):
    """``fn(args)`` written to buffers once, where ``args`` (a pytree) is not batched by an outer
    ``vmap``.

    XLA fuses cheap elementwise producers into every consumer: the threefry hash of the sweep's
    uniforms ran in the Box-Muller radius, cosine and sine loops and in the Bartlett draws (and the
    chain keys' hash with each of them), three to four times per uniform. The result of a
    conditional is a buffer, so on a CPU the block is computed under ``lax.cond`` on a predicate
    that is always true but unknown to the compiler (``key | 1 != 0`` for a key array ``args``).
    Elsewhere (a GPU decides a conditional's branch on the host, a synchronisation per sweep),
    and for arguments batched by a ``vmap`` without an unbatched ``always`` (a batched predicate
    makes the conditional a select of both branches), ``fn`` runs behind an optimisation barrier,
    which XLA's CPU pipeline drops. Under ``vmap`` with an unbatched ``always`` the conditional
    stays one, with batched branches. Same numbers either way. Benchmark model (a), 32 chains on
    one core: the sweep's noise 112 against 175 us; model (b), 8 chains of the vmapped one-chain
    kernel: the iteration block compiled in 3.4 instead of 4.5 s (one process; four fused copies
    of the hash of 335-413 operations each were gone), the sweep 5% faster.

    ``always``: a True boolean scalar computed from data the compiler cannot see through, to use
    as the predicate instead of the keys (chains sharded over devices: a predicate from every
    chain's key is a reduction across the devices, three collectives per sweep); required where
    ``args`` is not a key array.
    """
    def barrier(a):
        return jax.lax.optimization_barrier(fn(a))

    batched = any(is_batched(leaf) for leaf in jax.tree_util.tree_leaves(args))
    if batched and (always is None or is_batched(always)):
        return barrier(args)
    shapes = jax.eval_shape(fn, args)

    def zeros(_):
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def conditional(a):
        pred = always
        if pred is None:
            words = jax.random.key_data(a) if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else a
            pred = jnp.all((words | np.asarray(1, words.dtype)) != 0)
        return jax.lax.cond(pred, fn, zeros, a)

    return jax.lax.platform_dependent(args, cpu=conditional, default=barrier)


def uniforms_from_words(words, dtype):
    """Open uniforms from uint32 words: ``(k + 0.5) 2^-32`` in float64 (all 32 bits, the resolution
    of R's ``unif_rand``), :func:`uniforms_from_bits`'s ``(k + 0.5) 2^-23`` (top 23 bits) in float32.

    float64: the word becomes the top of the mantissa of a float in [1, 2) (a shift and a bitcast,
    no integer-to-float conversion)."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        one = jax.lax.bitcast_convert_type(
            (words.astype(jnp.uint64) << np.uint64(20)) | np.uint64(0x3FF0000000000000), dtype)
        return (one - 1.0) + 2.0**-33
    return uniforms_from_bits(words, dtype)


def draw_sweep_noise(rng_key, batch_shape, n_normals, n_uniforms, dtype, always=None):
    """(normals (*batch, n_normals), uniforms (*batch, n_uniforms)) from one key (see the module
    docstring); for a (K,) array of keys (K, *batch, ...), key k's numbers as for that key alone.
    ``always``: see :func:`computed_once`.

    One elementwise threefry pass over ``ceil(n_normals / 2) + n_uniforms`` counters per batch
    element (the counters and hash of ``jax.random.bits``), computed once
    (:func:`computed_once`). A pair of normals takes ONE hash: its two output words give the
    Box-Muller radius and angle uniforms (:func:`uniforms_from_words`: 32 bits each in float64, so
    float32 and float64 runs draw their normals from the same words); the remaining counters give
    the plain uniforms as ``jax.random.bits`` of their width would (:func:`uniforms_from_bits`:
    52 bits in float64). That is about half the hashes of one hash per uniform; the hash is the
    sweep's costliest fusion on a CPU. With 32-bit radius uniforms ``|z|`` stays below 6.8
    (``P(|z| > 6.8) = 1e-11``).
    """
    dtype = jnp.dtype(dtype)
    pairs = -(-int(n_normals) // 2)
    shape = tuple(batch_shape) + (pairs + int(n_uniforms),)

    def block(key):
        return threefry.random_bits(key, shape, jnp.uint64)

    # the hash's output words are a buffer (the conditional's result); converting them is cheap
    # and fuses into the consumers
    bits = computed_once(jax.vmap(block) if jnp.ndim(rng_key) else block, rng_key, always)
    high = (bits[..., :pairs] >> np.uint64(32)).astype(jnp.uint32)
    low = bits[..., :pairs].astype(jnp.uint32)
    plain = bits[..., pairs:]
    if dtype != jnp.float64:
        plain = (plain >> np.uint64(32)).astype(jnp.uint32) ^ plain.astype(jnp.uint32)
    z_cos, z_sin = box_muller(uniforms_from_words(high, dtype), uniforms_from_words(low, dtype))
    normals = jnp.concatenate([z_cos, z_sin], axis=-1)[..., : int(n_normals)]
    return normals, uniforms_from_bits(plain, dtype)


class NoiseStream:
    """Hands out consecutive slices of flat normal and uniform arrays (trace-time offsets).

    The arrays are (n,) or (n, *B) with trailing batch axes (chains innermost, see
    :mod:`pan_chains`): a request for ``shape`` then returns ``shape + B``. ``finish()`` checks that
    exactly the requested amount was used, so a sweep's noise budget (computed separately to draw
    the block) cannot drift from what the sweep consumes.
    """

    def __init__(self, normals, uniforms):
        self._normals, self._uniforms = normals, uniforms
        self._n = 0
        self._u = 0

    def normals(self, shape):
        size = int(np.prod(shape, dtype=np.int64))
        out = self._normals[self._n : self._n + size].reshape(tuple(shape) + self._normals.shape[1:])
        self._n += size
        return out

    def uniforms(self, shape):
        size = int(np.prod(shape, dtype=np.int64))
        out = self._uniforms[self._u : self._u + size].reshape(tuple(shape) + self._uniforms.shape[1:])
        self._u += size
        return out

    def finish(self):
        if self._n != self._normals.shape[0] or self._u != self._uniforms.shape[0]:
            raise AssertionError(
                f"noise budget mismatch: used {self._n}/{self._normals.shape[0]} normals and "
                f"{self._u}/{self._uniforms.shape[0]} uniforms"
            )
