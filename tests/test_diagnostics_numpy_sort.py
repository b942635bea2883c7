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


# --- the bucket sort used where NumPy's AVX-512 sort is slow -------------------------------------

def _tagged(v, bits=16):
    """Keys as rank_row makes them: v minus a central draw, positions in the low mantissa bits."""
    keys = v - np.median(v[:: max(1, len(v) // 1024)])
    ku = keys.view(np.uint64)
    ku &= ~np.uint64((1 << bits) - 1)
    ku |= np.arange(len(v), dtype=np.uint64)
    return keys


def _draws(name, n, rng):
    return {
        "normal": lambda: rng.standard_normal(n),
        "skewed": lambda: rng.chisquare(5, n),
        "spike at zero": lambda: rng.chisquare(1, n),  # density 1/sqrt(x): crowded cells are split
        "heavy tails": lambda: rng.standard_cauchy(n),
        "log-normal": lambda: np.exp(3 * rng.standard_normal(n)),
        "inverse gamma": lambda: 1 / rng.gamma(3, 1, n),
        "negative": lambda: -1e6 - rng.random(n),
        "tiny": lambda: 1e-300 * rng.standard_normal(n),
        "huge": lambda: 1e300 * rng.standard_normal(n),
        "slow walk": lambda: 5 + 1e-3 * np.cumsum(rng.standard_normal(n)),
    }[name]()


@pytest.mark.parametrize("name", ["normal", "skewed", "spike at zero", "heavy tails", "log-normal",
                                  "inverse gamma", "negative", "tiny", "huge", "slow walk"])
@pytest.mark.parametrize("tagged", [False, True])
def test_bucket_sort_equals_numpy_sort(name, tagged):
    rng = np.random.default_rng(len(name))
    v = _draws(name, 40_000, rng)
    keys = _tagged(v) if tagged else v.copy()
    expected = np.sort(keys)
    work = {}
    assert numpy_sort.bucket_sort(keys, work)
    np.testing.assert_array_equal(keys, expected)
    again = _tagged(v) if tagged else v.copy()  # the buffers are reused for the next parameter
    assert numpy_sort.bucket_sort(again, work)
    np.testing.assert_array_equal(again, expected)


def test_bucket_sort_ties_spikes_small_and_signed_zeros():
    rng = np.random.default_rng(5)
    v = np.round(rng.standard_normal(20_000), 1)  # 60-odd distinct values: a few thousand each
    tagged = _tagged(v)  # positions in the low bits separate them
    expected = np.sort(tagged)
    assert numpy_sort.bucket_sort(tagged)
    np.testing.assert_array_equal(tagged, expected)
    plain = v.copy()  # equal values in cells of thousands: NumPy sorts those cells where they lie
    assert numpy_sort.bucket_sort(plain)
    np.testing.assert_array_equal(plain, np.sort(v))
    for small in (np.array([2.0, -1.0]), rng.standard_normal(3), np.array([1.0])):
        keys = small.copy()
        assert numpy_sort.bucket_sort(keys)
        np.testing.assert_array_equal(keys, np.sort(small))
    zeros = np.concatenate([rng.standard_normal(1000), [0.0, -0.0, 0.0, -0.0]])
    keys = zeros.copy()
    assert numpy_sort.bucket_sort(keys)
    np.testing.assert_array_equal(keys, np.sort(zeros))
    zeros = np.concatenate([[-0.0], rng.random(1000), [0.0]])  # -0.0 the smallest value
    keys = zeros.copy()
    assert numpy_sort.bucket_sort(keys)
    np.testing.assert_array_equal(keys, np.sort(zeros))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bucket_sort_declines_non_finite_and_constant_values(bad):
    v = np.random.default_rng(1).standard_normal(1000)
    v[17] = bad
    keys = v.copy()
    assert not numpy_sort.bucket_sort(keys)
    np.testing.assert_array_equal(keys, v)
    assert not numpy_sort.bucket_sort(np.full(100, 3.0))
    wide = np.array([-1.7e308, 1.7e308, 1e-300, -1e-300] * 10)  # 2^64 images apart: declined
    keys = wide.copy()
    if not numpy_sort.bucket_sort(keys):
        np.testing.assert_array_equal(keys, wide)
    else:
        np.testing.assert_array_equal(keys, np.sort(wide))


def test_sort_floats_uses_buckets_only_where_numpy_is_slow(monkeypatch):
    calls = []
    real = numpy_sort.bucket_sort
    monkeypatch.setattr(numpy_sort, "bucket_sort",
                        lambda keys, work=None: calls.append(len(keys)) or real(keys, work))
    v = np.random.default_rng(2).standard_normal(numpy_sort.MIN_BUCKET_SORT)
    for zen4, expected in ((False, []), (True, [len(v)])):
        monkeypatch.setattr(numpy_sort, "zen4_avx512_sort", lambda: zen4)
        calls.clear()
        keys = v.copy()
        numpy_sort.sort_floats(keys)
        np.testing.assert_array_equal(keys, np.sort(v))
        assert calls == expected
    calls.clear()
    keys = v[:100].copy()  # small: NumPy's sort
    numpy_sort.sort_floats(keys)
    assert calls == [] and np.array_equal(keys, np.sort(v[:100]))
    keys = v.copy()
    keys[3] = np.nan  # declined by the buckets, sorted by NumPy (NaN last)
    numpy_sort.sort_floats(keys)
    assert calls == [len(v)] and np.isnan(keys[-1]) and np.all(np.diff(keys[:-1]) > 0)


def test_rank_diagnostics_equal_with_the_bucket_sort(monkeypatch):
    from mitml_jax.diagnostics import rank

    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 64, 600))  # 38,400 draws per parameter
    x[1] = np.exp(x[1])
    x[2] = np.round(x[2], 1)  # ties
    which = ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")
    monkeypatch.setattr(numpy_sort, "zen4_avx512_sort", lambda: False)
    plain = rank.rank_diagnostics_by_parameter(x, which)
    calls = []
    real = numpy_sort.bucket_sort
    monkeypatch.setattr(numpy_sort, "bucket_sort",
                        lambda keys, work=None: calls.append(1) or real(keys, work))
    monkeypatch.setattr(numpy_sort, "zen4_avx512_sort", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MitmlWarning)
        buckets = rank.rank_diagnostics_by_parameter(x, which)
    assert len(calls) == 3
    for w in which:
        np.testing.assert_array_equal(buckets[w], plain[w], err_msg=w)


@pytest.mark.parametrize("base", [3e300, -3e300, 7e150, 1.5, 1e-300])
def test_bucket_sort_splits_cells_of_values_apart_in_their_last_bits(base):
    """Tied draws told apart by a few position bits, at magnitudes whose integer bits are near
    2^62: a cell's width was once read off the difference of its ends as floats, whose rounding
    (~2^10 there) is wider than the cell, and such rows came out unsorted (25 of 200 trials)."""
    rng = np.random.default_rng(abs(int(np.log2(abs(base)))))
    for _ in range(20):
        n = int(rng.integers(300, 1200))
        tied = int(rng.integers(150, n))
        v = np.concatenate([np.full(tied, base), base * (1 + rng.standard_normal(n - tied))])
        rng.shuffle(v)
        bits = max(1, (n - 1).bit_length())
        ku = v.view(np.uint64)
        ku &= ~np.uint64(2**bits - 1)
        ku |= rng.permutation(n).astype(np.uint64)
        keys = v.copy()
        if numpy_sort.bucket_sort(keys):
            np.testing.assert_array_equal(keys, np.sort(v))
        else:
            np.testing.assert_array_equal(keys, v)


def test_bucket_sort_random_bit_patterns_and_clusters():
    rng = np.random.default_rng(11)
    for trial in range(60):
        n = int(rng.integers(2, 3000))
        if trial % 2:
            v = rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64)
        else:  # clusters of values a few units in the last place apart
            v = rng.choice(rng.standard_normal(3) * 10.0 ** rng.integers(-300, 300), n)
            v = (v.view(np.int64) + rng.integers(-64, 65, n)).view(np.float64)
        v = v[np.isfinite(v)]
        keys = v.copy()
        with np.errstate(all="ignore"):
            done = numpy_sort.bucket_sort(keys)
        np.testing.assert_array_equal(keys, np.sort(v) if done else v)


def test_bucket_sort_without_scipy_counting_sort(monkeypatch):
    """scipy's coo_tocsr is private: without it NumPy's stable argsort groups the values."""
    monkeypatch.setattr(numpy_sort, "_coo_tocsr", None)
    v = _tagged(np.random.default_rng(4).standard_cauchy(50_000))
    keys = v.copy()
    assert numpy_sort.bucket_sort(keys)
    np.testing.assert_array_equal(keys, np.sort(v))


@pytest.mark.parametrize("seed", range(6))
def test_sort_grouped_sorts_runs_of_up_to_half_a_row(seed):
    """The two passes of row sorts (the second offset by half a row) sort any grouping into
    ordered runs of at most ROW / 2 values, wherever the runs fall against the rows."""
    rng = np.random.default_rng(seed)
    half = numpy_sort.ROW // 2
    sizes = rng.integers(1, half + 1, 3000) if seed % 2 else np.full(3000, half)
    if seed >= 4:  # full runs shifted by a few values against the rows
        sizes[0] = seed
    runs = [rng.permutation(r + rng.random(int(k))) for r, k in enumerate(sizes)]
    grouped = np.concatenate(runs)
    n = len(grouped)
    table = np.empty(numpy_sort.table_size(n))
    table[:n] = grouped
    numpy_sort.sort_grouped(table, n)
    np.testing.assert_array_equal(table[:n], np.sort(grouped))
    # a longer run across the ends of rows of both passes (places half - 1 .. 2 half) is out of
    # reach: its smallest value, last, never gets to the run's first place
    longer = np.concatenate([np.arange(half - 1.0), 1000.0 + np.arange(half + 2.0)[::-1],
                             2000.0 + np.arange(3.0 * half)])
    table = np.empty(numpy_sort.table_size(len(longer)))
    table[: len(longer)] = longer
    numpy_sort.sort_grouped(table, len(longer))
    assert not np.array_equal(table[: len(longer)], np.sort(longer))
    # ... unless it is sorted already: long sorted runs stay as they are, wherever they fall
    longer = np.concatenate([runs[0], 1000.0 + np.arange(3 * half + seed), 2000.0 + runs[1],
                             3000.0 + np.arange(half + 1.0 + seed), 4000.0 + runs[2]])
    table = np.empty(numpy_sort.table_size(len(longer)))
    table[: len(longer)] = longer
    numpy_sort.sort_grouped(table, len(longer))
    np.testing.assert_array_equal(table[: len(longer)], np.sort(longer))


@pytest.mark.parametrize("name", ["t(3)", "inverse gamma", "uniform", "spike at zero"])
def test_bucket_sort_sorts_crowded_cells_where_they_lie(name, monkeypatch):
    """Heavy tails widen the image's span so that 2^16 cells crowd the bulk (a spike crowds its
    cells anyway); the crowded cells were split by their bits and the draws grouped again, 2.5 to
    4 times the time of the whole sort at 10^6 draws. Now the draws are grouped once and NumPy
    sorts each crowded cell where it lies."""
    rng = np.random.default_rng(7)
    n = 2**20
    v = {"t(3)": lambda: rng.standard_t(3, n), "inverse gamma": lambda: 1 / rng.gamma(2, 1, n),
         "uniform": lambda: rng.random(n), "spike at zero": lambda: rng.chisquare(1, n)}[name]()
    keys = _tagged(v, bits=20)
    expected = np.sort(keys)
    seen = []
    group = numpy_sort._group_by_cell

    def spy(cell, cells, values, out, work=None):
        counts = group(cell, cells, values, out, work)
        seen.append(int(counts.max()))
        return counts

    monkeypatch.setattr(numpy_sort, "_group_by_cell", spy)
    assert numpy_sort.bucket_sort(keys)
    np.testing.assert_array_equal(keys, expected)
    (most,) = seen  # grouped once
    assert most > numpy_sort.ROW // 2  # with crowded cells
