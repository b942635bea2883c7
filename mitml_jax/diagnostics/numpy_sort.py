"""Whether NumPy sorts with AVX-512 on an AMD Zen 4 CPU, where that sort is slow, and the hint.

The rank diagnostics sort every parameter's draws once (:mod:`rank_row`). NumPy 2 sorts floats with
x86-simd-sort, which on AVX-512 machines stores each partition step with ``vpcompressq`` to memory;
AMD's Zen 4 runs that instruction as microcode (numpy/x86-simd-sort issue 6; Zen 5 does not). On a
2-core Zen 4 EPYC (2026-11-26, NumPy 2.3.5 and 2.4.6) a sort of 10^6 float64 took 52 ms with the
AVX-512 path and 8.9 ms with NumPy's AVX2 path, and ``summary()`` of 10^8 draws 4.61 against 2.69 s.
NumPy picks the path when it is imported, so the remedy is an environment variable set before Python
starts: ``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ..errors import MitmlWarning

__all__ = ["numpy_simd", "zen4_avx512_sort", "hint_slow_sort", "HINT_DRAWS"]

#: Draws (all parameters) from which ``summary()`` and the rank diagnostics give the hint.
HINT_DRAWS = 10**7

_AVX512 = ("X86_V4", "AVX512_SKX", "AVX512F")


def _cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """vendor, family (int) and flags (set) of the first CPU listed in ``path`` (Linux); {} elsewhere."""
    try:
        with open(path) as handle:
            text = handle.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    try:
        family = int(fields.get("cpu family", ""))
    except ValueError:
        family = -1
    return {"vendor": fields.get("vendor_id", ""), "family": family, "flags": set(fields.get("flags", "").split())}


def numpy_simd() -> set:
    """The SIMD extensions NumPy found and uses at run time (after NPY_DISABLE_CPU_FEATURES)."""
    config = getattr(getattr(np, "__config__", None), "CONFIG", {}) or {}
    return set(config.get("SIMD Extensions", {}).get("found", []) or [])


@functools.lru_cache(maxsize=1)
def zen4_avx512_sort(path: str = "/proc/cpuinfo") -> bool:
    """True where NumPy dispatches its sorts to AVX-512 on an AMD Zen 4 CPU (family 25 with
    AVX-512: Zen 3, also family 25, has none; Zen 5 is family 26)."""
    cpu = _cpu_info(path)
    return (cpu.get("vendor") == "AuthenticAMD" and cpu.get("family") == 25
            and "avx512f" in cpu.get("flags", set()) and bool(numpy_simd() & set(_AVX512)))


def hint_slow_sort(n_draws: int, stacklevel: int = 3) -> None:
    """A MitmlWarning with the remedy when ``n_draws`` (all parameters) is large and
    :func:`zen4_avx512_sort` holds (Python shows it once per call site; ``stacklevel`` as
    ``warnings.warn``'s, counted from the caller of the caller)."""
    if n_draws >= HINT_DRAWS and zen4_avx512_sort():
        warnings.warn(
            "NumPy sorts with AVX-512 on this AMD Zen 4 CPU, about 6 times slower than with AVX2, and "
            "these diagnostics sort every parameter's draws: start Python with "
            "NPY_DISABLE_CPU_FEATURES=\"X86_V4 AVX512_ICL AVX512_SPR\" in the environment for about "
            "twice as fast a summary().", MitmlWarning, stacklevel=stacklevel)
