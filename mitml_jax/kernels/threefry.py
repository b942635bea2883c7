"""The Threefry-2x32 hash written out as elementwise operations: ``jax.random``'s numbers, faster on CPU.

On CPU, JAX lowers its threefry hash to a rolled ``while`` loop of five steps (to keep compile time
low). Inside a Gibbs sweep each call then costs five loop trips with about a dozen buffer copies
each: about 10 us per call for a few hundred numbers, the largest single cost of a small pan sweep.
Written out, the 20 rounds are one fused elementwise loop over the counters.

:func:`fold_in` and :func:`random_bits` give the same numbers as ``jax.random.fold_in`` and
``jax.random.bits`` (bit for bit, with JAX's default ``jax_threefry_partitionable`` counters) for
keys of the default ``threefry2x32`` implementation; keys of other implementations go through
``jax.random`` unchanged. Both work under ``vmap`` and ``jit`` (plain array operations).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["is_threefry_key", "threefry2x32", "fold_in", "random_bits"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def is_threefry_key(key) -> bool:
    """True for typed keys of JAX's ``threefry2x32`` implementation (decided at trace time)."""
    if not jnp.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        return False
    return "threefry" in str(jax.random.key_impl(key)).lower()


def threefry2x32(k1, k2, x1, x2):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011) on uint32 arrays (broadcast together).

    ``(k1, k2)`` is the key, ``(x1, x2)`` the counter; returns the two uint32 output words.
    """
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1 = x1 + ks[0]
    x2 = x2 + ks[1]
    for i in range(5):
        for rot in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = (x2 << np.uint32(rot)) | (x2 >> np.uint32(32 - rot))
            x2 = x1 ^ x2
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def fold_in(keys, data):
    """``jax.random.fold_in`` for an array of typed keys and uint32 ``data`` (broadcast together)."""
    data = jnp.asarray(data).astype(jnp.uint32)
    if not is_threefry_key(keys):
        return jnp.vectorize(jax.random.fold_in)(keys, data) if jnp.ndim(data) else jax.random.fold_in(keys, data)
    words = jax.random.key_data(keys)
    k1, k2 = threefry2x32(words[..., 0], words[..., 1], jnp.zeros_like(data), data)
    return jax.random.wrap_key_data(jnp.stack([k1, k2], axis=-1), impl=jax.random.key_impl(keys))


def random_bits(key, shape, dtype=jnp.uint64):
    """``jax.random.bits(key, shape, dtype)`` for ONE typed key (uint32 or uint64 bits)."""
    dtype = jnp.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    if not is_threefry_key(key):
        return jax.random.bits(key, shape, dtype=dtype)
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2**32:
        raise ValueError("random_bits: more than 2**32 numbers per key")
    words = jax.random.key_data(key)
    counter = jax.lax.iota(jnp.uint32, size).reshape(shape)
    b1, b2 = threefry2x32(words[0], words[1], jnp.zeros_like(counter), counter)
    if dtype == jnp.uint64:
        return (b1.astype(jnp.uint64) << np.uint64(32)) | b2.astype(jnp.uint64)
    if dtype == jnp.uint32:
        return b1 ^ b2
    raise ValueError(f"random_bits: dtype must be uint32 or uint64, got {dtype}")
