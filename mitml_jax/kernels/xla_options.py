"""XLA compiler options by backend: the CPU flags of the pan and jomo sweeps and the lmer fit.

A program compiled for a GPU with a CPU flag such as ``xla_cpu_use_fusion_emitters`` fails
("INVALID_ARGUMENT: No such compile option"), and so does a CPU program with a flag that the
installed XLA no longer has (JAX 0.11 dropped that one): the options are passed only where the
program runs on the CPU backend, and only those that backend accepts (checked once per option by
compiling a one-line program on a CPU device, also in a process whose default backend is a GPU,
where CPU options were passed unchecked before: JAX 0.11.2 on an H200 let the dropped flag through
to the CPU program of lmer's fit).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

__all__ = ["WIDE_VECTORS", "for_backend", "accepted"]

#: pan's and jomo's sweeps with LLVM vectorising over 512-bit registers where the CPU has them
#: (XLA's CPU default prefers 256 bits, against the clock slowdown of older Intel CPUs under
#: 512-bit arithmetic). The sweeps' costly loops are arithmetic on a few thousand values (the
#: threefry hash, Box-Muller, the gamma draws): pan's benchmark model (a), 32 chains
#: chains-innermost on one core (AMD EPYC, Zen 4), 0.140-0.142 against 0.168-0.170 ms per sweep;
#: one chain's kernel 0.0252-0.0261 against 0.0258-0.0270 ms per iteration; model (b) within the
#: noise (jomo: see :data:`.jomo.COMPILER_OPTIONS`). A CPU without AVX-512 compiles as before
#: (the vectoriser keeps to the widest registers it has).
WIDE_VECTORS = {"xla_cpu_prefer_vector_width": 512}


def _compiles(options: dict, backend: str) -> bool:
    try:
        device = jax.devices(backend)[0]
    except Exception:  # no such backend in this process (JAX_PLATFORMS=cuda has no CPU)
        return False
    x = jax.device_put(np.float32(1.0), device)  # a committed input: compiled for its backend
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(x).compile()
    except Exception:  # the backend's "No such compile option" (its exception type varies)
        return False
    return True


@functools.lru_cache(maxsize=None)
def accepted(name: str, value, backend: str = "cpu") -> bool:
    """Whether ``backend`` (default: the CPU) compiles a program with the option ``name=value``."""
    return _compiles({name: value}, backend)


@functools.lru_cache(maxsize=None)
def _all_accepted(items: tuple, backend: str) -> bool:
    return _compiles(dict(items), backend)


def for_backend(options: dict | None, backend: str | None = None) -> dict | None:
    """The options in ``options`` that ``backend`` (default: JAX's default backend) accepts, where
    it is the CPU; None elsewhere or when none is left."""
    if not options:
        return None
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return None
    if _all_accepted(tuple(sorted(options.items())), backend):
        return dict(options)  # one check for all (the usual case), else one per option
    kept = {k: v for k, v in options.items() if accepted(k, v, backend)}
    return kept or None
