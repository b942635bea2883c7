"""NumPy's float sort where its AVX-512 path is slow (AMD Zen 4): detection and a bucket sort.

The rank diagnostics sort every parameter's draws once (:mod:`rank_row`). NumPy 2 sorts floats with
x86-simd-sort, which on AVX-512 machines stores each partition step with ``vpcompressq`` to memory;
AMD's Zen 4 runs that instruction as microcode (numpy/x86-simd-sort issue 6; Zen 5 does not). On a
2-core Zen 4 EPYC (2026-11-26, NumPy 2.3.5 and 2.4.6) a sort of 10^6 float64 took 52 ms with the
AVX-512 path and 8.9 ms with NumPy's AVX2 path, and ``summary()`` of 10^8 draws 4.61 against 2.69 s.
NumPy picks the path when it is imported; an environment variable set before Python starts,
``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"``, makes it take the AVX2 path.

The slow instruction is in the partition steps only: rows of at most 256 float64 are sorted by
sorting networks in registers, 2-3 ns per value on that CPU against 52 ns for one array of 10^6.
So :func:`sort_floats` sorts large arrays there by buckets: a monotone integer image of the values
(log-like away from zero, linear near it, so that skewed and heavy-tailed draws spread over the
cells), 2^16 cells of it counted, the values grouped by cell (a counting sort that moves them,
scipy's COO-to-CSR conversion), the few cells of more than 128 values sorted by NumPy where they
lie, and the grouped array sorted by NumPy in rows of 256 twice, the second time offset by half a
row (:func:`sort_grouped`): 14-16 ms per 10^6 draws instead of 52 (2026-11-27; the buckets of
earlier commits, packed cells sorted as rows of a padded table, took 22-24 ms, and crowded cells,
split by their values' bits and grouped again, 35-50 ms for t(3), Cauchy, inverse-gamma or
uniform draws and 55-70 ms for chi-square(1) draws).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ..errors import MitmlWarning
from .rank_normal import scratch

try:  # a counting sort that moves the values too (C++; scipy comes with statsmodels)
    from scipy.sparse._sparsetools import coo_tocsr as _coo_tocsr
except ImportError:  # pragma: no cover - a private module: NumPy's stable argsort otherwise
    _coo_tocsr = None

__all__ = ["numpy_simd", "zen4_avx512_sort", "hint_slow_sort", "HINT_DRAWS", "sort_floats", "bucket_sort",
           "sort_grouped", "table_size"]

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
            "NumPy sorts with AVX-512 on this AMD Zen 4 CPU, about 6 times slower than with AVX2; "
            "these diagnostics sort every parameter's draws, in buckets that avoid most of that cost, "
            "but a summary() still takes about 15% less time when Python starts with "
            "NPY_DISABLE_CPU_FEATURES=\"X86_V4 AVX512_ICL AVX512_SPR\" in the environment.",
            MitmlWarning, stacklevel=stacklevel)


#: Values per row: NumPy sorts rows of up to 256 float64 in registers (rows of 256: 2.3 ms per
#: 10^6 values on the Zen 4 machine; rows of 320: 7.6 ms).
ROW = 256
#: Cells of the values' image counted to group the values.
CELLS = 2**16
#: Largest array sorted by buckets: they take about four more arrays of its size (the image,
#: cell numbers, the grouped values, the cells' counting sort), per diagnostics thread.
MAX_BUCKET_SORT = 2**22
#: Smallest array sorted by buckets (smaller arrays: NumPy's sort, which then has few partition steps).
MIN_BUCKET_SORT = 2**15


def _image_into(values: np.ndarray, a: float, out: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """``out`` (int64) = the monotone integer image ``±(bits(|x| + a) - bits(a))`` of the float64
    ``values`` used by :func:`bucket_sort` (``sign``: an int64 buffer of the same length)."""
    with np.errstate(over="ignore"):
        np.abs(values, out=out.view(np.float64))
        np.add(out.view(np.float64), a, out=out.view(np.float64))
    out -= np.array(a).view(np.int64)
    np.right_shift(values.view(np.int64), 63, out=sign)  # -1 for negative values (-0.0 too), else 0
    out ^= sign
    return out


def _image(x: float, a: float) -> int:
    """The image of one float ``x`` (:func:`_image_into`)."""
    return int(_image_into(np.array([x], np.float64), a, np.empty(1, np.int64),
                           np.empty(1, np.int64))[0])


def bucket_sort(keys: np.ndarray, work=None) -> bool:
    """Sort the float64 array ``keys`` in place: grouped by cells of at most ``ROW / 2`` values.

    The result equals ``np.sort`` for finite values (equal values are indistinguishable; ``-0.0``
    and ``0.0``, equal, may come in either order, as in NumPy's sort). Returns False and leaves
    ``keys`` as they were where the buckets do not apply: a non-finite value, all values equal, or
    a range too wide for the image's 64 bits.

    The image ``g(x) = ±(bits(|x| + a) - bits(a))`` of a float's bit pattern grows linearly for
    ``|x| < a`` and like ``log |x|`` beyond (``a`` an eighth of the median ``|x|`` of a sample),
    so cells of equal width in ``g`` hold similar counts for centred, skewed and heavy-tailed
    draws alike. A cell of more than ``ROW / 2`` values (a spike of the density, the bulk of
    heavy-tailed draws whose tails widen the span of ``g``, values ``g`` cannot tell apart because
    they are much smaller than ``a``, tied draws told apart only by positions in their keys' low
    bits) is sorted by NumPy where it lies after the grouping; :func:`sort_grouped` keeps such a
    sorted run in its places. ``work``: dict of reusable buffers (:func:`.rank_normal.scratch`);
    fresh memory costs a page fault per page.
    """
    n = len(keys)
    if n < 2:
        return n == 1
    lo, hi = keys.min(), keys.max()
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
        return False
    sample = np.abs(keys[:: max(1, n // 1024)])
    a = float(np.median(sample)) / 8.0 or float(sample.max()) / 8.0 or float(max(-lo, hi)) / 8.0
    # min and max may return 0.0 for -0.0 or the other way round: the image tells them apart
    glo = _image(-0.0 if lo == 0 else float(lo), a)
    ghi = _image(0.0 if hi == 0 else float(hi), a)
    span = ghi - glo
    if span.bit_length() > 62:  # the shifted image g - glo would overflow int64
        return False
    shift = max(0, span.bit_length() - CELLS.bit_length() + 1)
    g = scratch(work, "bucket_image", n, np.int64)
    _image_into(keys, a, g, scratch(work, "bucket_sign", n, np.int64))
    g -= glo
    cell = scratch(work, "bucket_labels", n, np.int32)  # fewer than 2^17 cells
    np.right_shift(g, shift, out=cell, casting="unsafe")
    table = scratch(work, "bucket_table", table_size(n))
    counts = _group_by_cell(cell, (span >> shift) + 1, keys, table[:n], work)
    crowded = np.flatnonzero(counts > ROW // 2)
    if len(crowded):  # a spike of the density, or values that agree in their leading bits
        ends = np.cumsum(counts)
        for first, last in zip((ends - counts)[crowded].tolist(), ends[crowded].tolist()):
            table[first:last].sort()  # sort_grouped keeps a sorted run in its places
    sort_grouped(table, n)
    keys[:] = table[:n]
    return True


def table_size(n: int) -> int:
    """Length of the buffer :func:`sort_grouped` sorts ``n`` values in."""
    return (n // ROW + 2) * ROW


def sort_grouped(table: np.ndarray, n: int) -> None:
    """Sort ``table[:n]`` in place: finite values grouped in runs of at most ``ROW / 2``, or sorted.

    Every value of a run must be below every value of the runs after it (the runs are the cells
    of a monotone image, in order), and a run of more than ``ROW / 2`` values must be sorted
    already; ``len(table)`` is :func:`table_size`. Rows of ``ROW`` values are sorted in
    registers, then rows offset by half a row: a run of at most ``ROW / 2`` values lies inside a
    row of one pass or the other, and sorting a stretch of grouped values keeps every run in its
    places (a sorted stretch of a run, the first pass's or a long run's, stays as it is). The
    padding after ``n`` is infinite and stays there.
    """
    size = len(table)
    table[n:] = np.inf
    table.reshape(-1, ROW).sort(axis=1)
    table[ROW // 2 : size - ROW // 2].reshape(-1, ROW).sort(axis=1)


def _group_by_cell(cell: np.ndarray, cells: int, values: np.ndarray, out: np.ndarray,
                   work=None) -> np.ndarray:
    """``out`` = ``values`` grouped by ``cell`` (int32 or int64, 0 <= cell < cells), in cell order
    (stable); returns the cells' counts (cells,).

    scipy's COO-to-CSR conversion is a counting sort that moves the values with their cells in
    one pass in C++ (7 ms for 10^6 values in 2^16 cells on the Zen 4 machine, against 11 ms for
    pandas' counting sort of the indices plus a gather); NumPy's stable argsort and a gather
    where scipy's private module is missing.
    """
    n = len(values)
    if _coo_tocsr is not None:
        starts = np.empty(cells + 1, cell.dtype)  # the counting sort's index type is cell's
        spare = scratch(work, "bucket_spare", n, cell.dtype)
        try:
            _coo_tocsr(cells, 1, n, cell, cell, values, starts, spare, out)
            return np.diff(starts)
        except (TypeError, ValueError):  # pragma: no cover - another scipy signature
            pass
    values.take(np.argsort(cell, kind="stable"), out=out, mode="clip")
    return np.bincount(cell, minlength=cells)


def sort_floats(keys: np.ndarray, work=None) -> None:
    """Sort the float64 array ``keys`` in place: by :func:`bucket_sort` where NumPy's own sort
    takes its slow AVX-512 path (:func:`zen4_avx512_sort`) and the array is large (but not
    beyond :data:`MAX_BUCKET_SORT`), else (and where the buckets do not apply) ``keys.sort()``."""
    if (MIN_BUCKET_SORT <= len(keys) <= MAX_BUCKET_SORT and zen4_avx512_sort()
            and bucket_sort(keys, work)):
        return
    keys.sort()
