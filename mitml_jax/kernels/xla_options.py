"""XLA compiler options by backend: the CPU flags of the jomo sweep and the lmer fit.

A program compiled for a GPU with a CPU flag such as ``xla_cpu_use_fusion_emitters`` fails
("INVALID_ARGUMENT: No such compile option"), and so does a CPU program with a flag that the
installed XLA no longer has (JAX 0.11 dropped that one): the options are passed only where the
program runs on the CPU backend, and only those that backend accepts (checked once per option by
compiling a one-line program).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

__all__ = ["for_backend", "accepted"]


def _compiles(options: dict) -> bool:
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(np.float32(1.0)).compile()
    except Exception:  # the backend's "No such compile option" (its exception type varies)
        return False
    return True


@functools.lru_cache(maxsize=None)
def accepted(name: str, value) -> bool:
    """Whether the default backend compiles a program with the option ``name=value``."""
    return _compiles({name: value})


@functools.lru_cache(maxsize=None)
def _all_accepted(items: tuple) -> bool:
    return _compiles(dict(items))


def for_backend(options: dict | None, backend: str | None = None) -> dict | None:
    """The options in ``options`` that ``backend`` (default: JAX's default backend) accepts, where
    it is the CPU; None elsewhere or when none is left."""
    if not options:
        return None
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return None
    if backend != jax.default_backend() or _all_accepted(tuple(sorted(options.items()))):
        return dict(options)  # one check for all (the usual case), else one per option
    kept = {k: v for k, v in options.items() if accepted(k, v)}
    return kept or None
