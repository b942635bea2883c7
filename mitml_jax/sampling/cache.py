"""A persistent XLA compilation cache, so a sampler compiles once per model shape per machine.

Compiling one sampler block takes seconds on a small CPU; JAX's persistent cache stores the
compiled program on disk and later processes load it instead. ``enable_compilation_cache`` turns
it on unless the user already configured a cache directory. The environment variable
``MITML_JAX_COMPILATION_CACHE`` chooses the directory, or disables the cache when set to ``0``
(default directory: ``$XDG_CACHE_HOME/mitml_jax/xla`` or ``~/.cache/mitml_jax/xla``).
"""

from __future__ import annotations

import os

import jax

__all__ = ["enable_compilation_cache", "cache_directory"]

ENV = "MITML_JAX_COMPILATION_CACHE"


def cache_directory() -> str | None:
    """The directory the cache would use, or None when disabled by the environment."""
    value = os.environ.get(ENV)
    if value is not None and value.strip().lower() in ("0", "false", "no", "off", ""):
        return None
    if value:
        return os.path.expanduser(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mitml_jax", "xla")


def enable_compilation_cache() -> str | None:
    """Turn JAX's persistent compilation cache on (once); returns the directory in use or None.

    Leaves a cache directory the user configured untouched; never raises (a cache that cannot
    be created just means compiling again).
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    path = cache_directory()
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError):
        return None
    return path
