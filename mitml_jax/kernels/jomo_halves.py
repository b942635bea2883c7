"""Elementwise work on a few hundred rows, kept on one thread: ``in_halves``.

XLA's CPU compiler gives an elementwise loop two threads once its cost estimate (flops, plus
twice the transcendental functions, plus ten times the bytes) passes 100,000 "cycles": about
700 float64 rows of a truncated-normal draw. For a single chain that split costs more than it
saves: the second thread has to be woken (microseconds, far more on a busy machine) for a few
microseconds of work, and the sweep then uses about 1.5 times its wall time in CPU. XLA never
splits a loop that writes its result in place into a larger buffer, which is what a
``lax.scan`` does with its stacked outputs; so :func:`in_halves` runs the function over the two
halves of the rows in a two-step scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["in_halves"]


def in_halves(fn, *arrays):
    """``fn(*arrays)`` for an elementwise ``fn`` over arrays sharing the leading (row) axis,
    evaluated as a two-step ``lax.scan`` over the two halves of the rows.

    An odd number of rows is padded by repeating the last row (its result is dropped). The
    result has the shape ``fn`` gives on the whole arrays.
    """
    n = arrays[0].shape[0]
    half = (n + 1) // 2

    def split(a):
        if 2 * half != n:
            a = jnp.concatenate([a, a[-1:]], axis=0)
        return a.reshape((2, half) + a.shape[1:])

    def step(_, xs):
        return None, fn(*xs)

    _, out = jax.lax.scan(step, None, tuple(split(a) for a in arrays))
    return out.reshape((2 * half,) + out.shape[2:])[:n]
