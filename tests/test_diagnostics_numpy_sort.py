"""The hint for NumPy's slow AVX-512 sort on AMD Zen 4 (diagnostics/numpy_sort.py)."""

import warnings

import numpy as np
import pytest

from mitml_jax.diagnostics import numpy_sort
from mitml_jax.errors import MitmlWarning

CPU = "processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: 17\nflags\t\t: fpu sse2 avx2 {extra}\n\nprocessor\t: 1\n"


@pytest.mark.parametrize("vendor, family, extra, simd, expected", [
    ("AuthenticAMD", 25, "avx512f avx512bw", {"X86_V3", "X86_V4"}, True),  # Zen 4
    ("AuthenticAMD", 25, "", {"X86_V3"}, False),  # Zen 3: no AVX-512
    ("AuthenticAMD", 25, "avx512f", {"X86_V3"}, False),  # NPY_DISABLE_CPU_FEATURES set
    ("AuthenticAMD", 26, "avx512f", {"X86_V3", "X86_V4"}, False),  # Zen 5
    ("GenuineIntel", 6, "avx512f", {"X86_V3", "X86_V4"}, False),
])
def test_zen4_detection(tmp_path, monkeypatch, vendor, family, extra, simd, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(CPU.format(vendor=vendor, family=family, extra=extra))
    monkeypatch.setattr(numpy_sort, "numpy_simd", lambda: simd)
    numpy_sort.zen4_avx512_sort.cache_clear()
    try:
        assert numpy_sort.zen4_avx512_sort(str(path)) is expected
    finally:
        numpy_sort.zen4_avx512_sort.cache_clear()
    assert numpy_sort.zen4_avx512_sort(str(tmp_path / "missing")) is False
    numpy_sort.zen4_avx512_sort.cache_clear()


def test_hint_only_for_large_draws_on_zen4(monkeypatch):
    monkeypatch.setattr(numpy_sort, "zen4_avx512_sort", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        numpy_sort.hint_slow_sort(numpy_sort.HINT_DRAWS - 1)
    with pytest.warns(MitmlWarning, match="NPY_DISABLE_CPU_FEATURES"):
        numpy_sort.hint_slow_sort(numpy_sort.HINT_DRAWS)
    monkeypatch.setattr(numpy_sort, "zen4_avx512_sort", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        numpy_sort.hint_slow_sort(10 * numpy_sort.HINT_DRAWS)


def test_rank_diagnostics_give_the_hint_for_large_inputs(monkeypatch):
    from mitml_jax.diagnostics import rank

    monkeypatch.setattr(numpy_sort, "zen4_avx512_sort", lambda: True)
    monkeypatch.setattr(numpy_sort, "HINT_DRAWS", 400)
    x = np.random.default_rng(0).standard_normal((4, 100, 1))
    with pytest.warns(MitmlWarning, match="AVX-512") as record:
        rank.rank_diagnostics(x, which=("rhat",))
    assert record[0].filename == __file__


def test_rank_diagnostics_by_parameter_give_the_hint_too(monkeypatch):
    from mitml_jax.diagnostics import rank

    monkeypatch.setattr(numpy_sort, "zen4_avx512_sort", lambda: True)
    monkeypatch.setattr(numpy_sort, "HINT_DRAWS", 400)
    x = np.random.default_rng(0).standard_normal((1, 4, 100))
    with pytest.warns(MitmlWarning, match="AVX-512") as record:
        rank.rank_diagnostics_by_parameter(x, ("rhat",))
    assert record[0].filename == __file__  # pointed at the caller
