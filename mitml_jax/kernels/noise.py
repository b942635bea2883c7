"""All random numbers of a Gibbs sweep from ONE threefry call, handed out in static slices.

Every ``jax.random`` call inlines its own copy of the threefry hash, and on CPU each copy adds
about a second of XLA compile time; a sweep with a dozen calls compiled for half a minute. A
sweep therefore draws one block of uniform bits, turns part of it into normals
(``sqrt(2) erfinv(2u - 1)``, as ``jax.random.normal`` does) and slices it with offsets known
at trace time (:class:`NoiseStream`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["open_uniforms", "draw_noise", "NoiseStream"]


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


def draw_noise(rng_key, batch_shape, n_normals, n_uniforms, dtype):
    """(normals (*batch, n_normals), uniforms (*batch, n_uniforms)) from one threefry call."""
    u = open_uniforms(rng_key, tuple(batch_shape) + (n_normals + n_uniforms,), dtype)
    normals = np.sqrt(2.0).astype(u.dtype) * jax.scipy.special.erfinv(2.0 * u[..., :n_normals] - 1.0)
    return normals, u[..., n_normals:]


class NoiseStream:
    """Hands out consecutive slices of flat normal and uniform arrays (trace-time offsets).

    ``finish()`` checks that exactly the requested amount was used, so a sweep's noise budget
    (computed separately to draw the block) cannot drift from what the sweep consumes.
    """

    def __init__(self, normals, uniforms):
        self._normals, self._uniforms = normals, uniforms
        self._n = 0
        self._u = 0

    def normals(self, shape):
        size = int(np.prod(shape, dtype=np.int64))
        out = self._normals[self._n : self._n + size].reshape(shape)
        self._n += size
        return out

    def uniforms(self, shape):
        size = int(np.prod(shape, dtype=np.int64))
        out = self._uniforms[self._u : self._u + size].reshape(shape)
        self._u += size
        return out

    def finish(self):
        if self._n != self._normals.shape[-1] or self._u != self._uniforms.shape[-1]:
            raise AssertionError(
                f"noise budget mismatch: used {self._n}/{self._normals.shape[-1]} normals and "
                f"{self._u}/{self._uniforms.shape[-1]} uniforms"
            )
