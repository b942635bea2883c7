"""Random keys derived on the host: ``jax.random.key(seed)`` and ``fold_in(key, c)`` in NumPy.

Outside ``jit`` every JAX operation is compiled on first use; deriving a run's keys with eager
JAX operations (the seed, then the written-out threefry hash of :func:`kernels.threefry.fold_in`
for the chain keys) compiled about twenty tiny programs, 0.3 to 1 s of a cold start. The same
words come from the threefry hash evaluated on NumPy ``uint32`` arrays (which wrap modulo 2^32
as the hash requires) and are wrapped as typed keys without compiling anything.

Keys of an implementation other than ``threefry2x32`` go through ``jax.random`` unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import MitmlTypeError
from ..kernels.threefry import fold_in, is_threefry_key, threefry2x32

__all__ = ["seed_key", "chain_keys"]


def _default_is_threefry() -> bool:
    return str(jax.config.jax_default_prng_impl) == "threefry2x32"


def seed_key(seed: int):
    """``jax.random.key(seed)`` (the same key data), built on the host."""
    if not (_default_is_threefry() and jax.config.jax_enable_x64):
        return jax.random.key(int(seed))
    if not -(2**63) <= int(seed) < 2**63:
        raise OverflowError(f"seed {seed} does not fit in a 64-bit integer")
    word = int(seed) % 2**64  # two's complement of a negative seed, as JAX's int64 seed
    return jax.random.wrap_key_data(np.array([word >> 32, word & 0xFFFFFFFF], np.uint32))


def chain_keys(rng_key, chain_ids):
    """Per-chain keys ``fold_in(rng_key, c)`` for the chain numbers ``chain_ids`` (a typed key
    array of shape ``(len(chain_ids),)``).

    ``rng_key`` must be ONE key (shape ``()``): a key array (e.g. from ``jax.random.split``) is a
    MitmlTypeError naming ``'seed'`` (it failed inside ``vmap`` or, with as many keys as chains,
    silently gave chain ``c`` the key ``fold_in(keys[c], c)``).
    """
    if np.ndim(rng_key) != 0:
        raise MitmlTypeError(f"'seed' must be one jax.random.key (shape ()), got a key array of shape "
                             f"{tuple(np.shape(rng_key))}; pass a single key such as keys[0] (the chains get "
                             "their own keys from it).")
    ids = np.asarray(chain_ids).astype(np.uint32).reshape(-1)
    if not is_threefry_key(rng_key) or isinstance(rng_key, jax.core.Tracer):
        return fold_in(rng_key, jnp.asarray(ids))
    words = np.asarray(jax.random.key_data(rng_key), np.uint32)
    k1, k2 = threefry2x32(words[..., 0], words[..., 1], np.zeros_like(ids), ids)
    return jax.random.wrap_key_data(np.stack([k1, k2], axis=-1), impl=jax.random.key_impl(rng_key))
