"""``jax.vmap`` that skips the batching when the mapped axis has size one.

Tracing a function under ``vmap`` costs far more than tracing it plainly: every ``jax.numpy``
function is a small jitted function whose jaxpr ``vmap`` batches again. For the one-chain,
one-group sweep of pan (the common case) the chain and group ``vmap``s were most of the tracing
time of a first call. :func:`lean_vmap` calls the function on the arguments with the size-one axis
indexed away and puts the axis back on the results: the same operations on the same numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax._src.interpreters.batching import BatchTracer  # no public equivalent

__all__ = ["lean_vmap", "is_batched"]


def is_batched(leaf) -> bool:
    """Whether ``leaf`` is batched by an outer ``vmap`` (an argument traced under it)."""
    return isinstance(leaf, BatchTracer)


def _is_none(x) -> bool:
    return x is None


def _map_axes(fn, axes, tree):
    """``fn(leaf, axis)`` for every leaf of ``tree``, ``axes`` a prefix of it (ints or None)."""
    return jax.tree_util.tree_map(
        lambda axis, sub: sub if axis is None else jax.tree_util.tree_map(lambda leaf: fn(leaf, axis), sub),
        axes, tree, is_leaf=_is_none,
    )


def lean_vmap(fn, in_axes=0, out_axes=0):
    """``jax.vmap(fn, in_axes, out_axes)``, except that a mapped axis of size one is indexed away
    and restored instead of batched over when no argument is already batched by an outer
    ``vmap`` (``in_axes`` a tuple with one entry per positional argument, or one int for all;
    ``out_axes`` an int or a prefix of the result)."""
    batched = jax.vmap(fn, in_axes=in_axes, out_axes=out_axes)

    def call(*args):
        axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        sizes = set()
        _map_axes(lambda leaf, axis: sizes.add(leaf.shape[axis]), axes, args)
        if sizes != {1} or any(is_batched(leaf) for leaf in jax.tree_util.tree_leaves(args)):
            return batched(*args)
        inner = _map_axes(lambda leaf, axis: jax.lax.index_in_dim(leaf, 0, axis, keepdims=False),
                          axes, args)
        out = fn(*inner)
        return _map_axes(lambda leaf, axis: jnp.expand_dims(leaf, axis), out_axes, out)

    return call
