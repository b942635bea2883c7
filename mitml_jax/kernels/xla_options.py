"""XLA compiler options by backend: the CPU flags of the jomo sweep and the lmer fit.

A program compiled for a GPU with a CPU flag such as ``xla_cpu_use_fusion_emitters`` fails
("INVALID_ARGUMENT: No such compile option"): the options are passed only where the program
runs on the CPU backend.
"""

from __future__ import annotations

import jax

__all__ = ["for_backend"]


def for_backend(options: dict | None, backend: str | None = None) -> dict | None:
    """``options`` where ``backend`` (default: JAX's default backend) is the CPU, else None."""
    if not options:
        return None
    backend = backend or jax.default_backend()
    return dict(options) if backend == "cpu" else None
