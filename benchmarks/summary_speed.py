"""Timing of imp.summary() on many chains: 1,000 chains x 1,000 draws x 100 parameters.

    python benchmarks/summary_speed.py            # full size (about 0.8 GB of draws)
    python benchmarks/summary_speed.py --quick    # 100 chains
    python benchmarks/summary_speed.py --threads 1 2 4 8 16   # the summary with each thread cap
    python benchmarks/summary_speed.py --floor    # also the NumPy calls the statistics need

The draws are synthetic AR(1) chains (phi = 0.5) in an Imputations object whose ``beta`` block is
10 x 10 (100 entries), so the timing covers exactly what ``summary()`` does: mitml's segment
R-hat (n_rhat = 3) per chain, rank-normalised split R-hat, bulk and tail ESS and MCSE across
chains, and nested R-hat. Prints a Markdown table (seconds, best of ``--repeat`` runs) and the
breakdown into the mitml statistics and the rank diagnostics, with the cost of one float64 sort
of every parameter's draws for scale (the ranks need at least that).

Where the time goes (2026-11-26, AMD EPYC, 2 cores with 512 KB L2 each; CPU time of one thread
per parameter of 10^6 draws, ``time.thread_time``, min of 3, load average ~4): 56 ms in all.
The tagged-key float sort ~13 ms and the rest of the bulk ranks ~3.5 ms; scattering the Blom
scores into draw order 4.4 ms; folded ranks 13 ms (timsort merge of the two halves 5.5 ms, the
rest elementwise passes of ~0.5-1.5 ms each and a ``bincount`` of the chain sums 2.4 ms);
16 direct autocovariance lags 5.5 ms each for the bulk scores and the raw draws (L2-bandwidth
bound, ~0.27 ns per draw and lag); tail ESS 3.7 ms; gather 2.3 ms; segment moments 2.2 ms. Two
threads raise the CPU per parameter to ~68 ms (memory bandwidth, GIL). Measured alternatives
that were no faster: fusing elementwise passes in cache-sized chunks; lag sums as small GEMMs
(Toeplitz blocks), as flat dot products, or in XLA (~35x slower); 512 KB lag blocks (within
noise); merges by ``searchsorted``/``interp`` (3-4x slower than timsort); folded chain sums by
a scatter instead of ``bincount`` (slower, though GIL-free); XLA's sort. Reaching 2 s would
take a compiled post-sort pass (merge, chain sums and scatter fused).

Measured again 2026-11-26 13:00-13:20 (thread CPU per parameter of 10^6 draws): XLA on CPU for
the post-sort steps (sort 346 ms, scatter 11.2 ms against NumPy's 5.6 ms, 16 lag sums 99-108 ms
against 6.9 ms); the lags as flat dot products over a time-major copy (6.8 against 6.9 ms, plus
a 2 ms transpose); the folded merge by ``searchsorted`` (23 ms), on float32 copies (21 ms) or
through a coarse index (15 ms) against timsort's 5.7 ms. None kept. Whole summary: 2.97 s at
13:00 (sort floor 1.70 s), 4.02-4.80 s at 14:30 when the same sort took 1.95-2.33 s; the
first-draw shift added to ESS/MCSE that afternoon costs 5-7% of the rank step's CPU and nothing
measurable in the summary (``--quick``, alternating processes against the previous commit).

Measured 2026-11-26 22:55 UTC on a 2-core AMD EPYC with AVX-512 (NumPy 2.4.6 finds X86_V4 and
AVX512_ICL): summary 4.61 s, the sort floor 6.24 s (62 ms per 10^6 draws). NumPy's AVX-512 sort
(x86-simd-sort) runs at 52 ns per draw there against 8.9 ns for its AVX2 sort of the same array
(``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"`` in the environment, read when NumPy is
imported; Zen 4 runs x86-simd-sort's AVX-512 compress-store as microcode, numpy/x86-simd-sort#6;
NumPy 2.3.5 the same); with that setting the summary took 2.69 s (rank diagnostics 2.49 s wall,
4.43 s CPU; floor 1.79 s). The script prints NumPy's dispatch and one sort's time for this reason.

Measured 2026-11-27 02:00-02:15 UTC, same machine: the sort's slow instruction is in x86-simd-sort's
partition steps only; rows of up to 256 float64 sort in registers (2.3 ms per 10^6 values in rows
of 256, 7.6 ms in rows of 320). ``numpy_sort.bucket_sort`` (used there for rows of 2^15 to 2^22
draws) counts a log-like integer image of the keys in 2^16 cells, packs the cells into buckets of
at most 256, groups the keys by bucket (pandas' counting sort), sorts the padded rows and reads
them back: 17-26 ms per 10^6 draws (one thread; spikes of a density that need split cells up to
47 ms). Summary 3.99-4.32 s against 4.96-5.53 s for the previous commit (alternating processes,
``--repeat 1``), and 3.27 s against 2.70 s with the AVX2 sort in one pair with ``--repeat 2``.
``take(..., out=)`` with NumPy's default ``mode="raise"`` copies through a buffer: 7.2 against 2.0
ms for a gather of 10^6 float64 with ``mode="clip"`` (used now wherever indices are valid).

The GPU machine's CPU the same hour (16-core Intel Xeon with AVX-512, NumPy 2.5.2, one sort of
10^6 float64 10-11 ms: not Zen 4, so no buckets; this commit and the previous one alternating,
two runs each, ``--threads 4 8 16``): 2.43-2.77 s by default (at most 4 threads), 2.16-2.35 s
with 8 threads, 2.31-2.56 s with 16; CPU 7.0-9.2 s. More threads stop helping at 8: every
parameter's steps stream its 10^6 draws through memory some fifty times.

Measured 2026-11-27 08:00-08:30 UTC on the Zen 4 machine: the draws grouped by cell with scipy's
COO-to-CSR counting sort and sorted in rows of 256 twice (the second pass offset by half a row)
instead of padded buckets: 15.5 against 22-24 ms per 10^6 draws; summary 3.55-3.81 s against
4.02-4.60 s in alternating processes (3.13-3.27 s with NumPy's AVX2 sort).

Measured 2026-11-27 10:00-10:40 UTC with ``--floor`` (see benchmarks/README.md): the NumPy calls
that the statistics cannot do without take 29.6-34.9 ms per parameter on one thread in a fast half
hour (sort 13.7-19.2, merge 3.7, scatter 2.5, gather 2.6-2.7, 2 x 16 lag sums 4.1, bincount 1.2-1.3,
tail pairs 1.5), 40.6-44.1 ms in a slow one. The whole pipeline takes 50-53 and 57-64 ms. So 100
parameters on two cores need 1.5-1.7 s for those calls alone at best; the other 16-23 ms per
parameter are some 30 elementwise passes that NumPy cannot fuse.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from mitml_jax.diagnostics.entries import gather_draws  # noqa: E402
from mitml_jax.diagnostics.mitml_stats import segment_rhat  # noqa: E402
from mitml_jax.diagnostics.numpy_sort import numpy_simd, zen4_avx512_sort  # noqa: E402
from mitml_jax.diagnostics.rank import rank_diagnostics  # noqa: E402
from mitml_jax.diagnostics.summary import summarize  # noqa: E402
from mitml_jax.results.imputations import Imputations  # noqa: E402


class _Spec:
    targets = tuple(f"y{j + 1}" for j in range(10))
    fixed_names = tuple(f"x{i + 1}" for i in range(10))
    fixed_terms = fixed_names
    random_names = random_terms = targets_l2 = fixed_names_l2 = fixed_terms_l2 = ()
    cluster = group = None


def make_imputations(chains: int, draws: int, seed: int = 1) -> Imputations:
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = np.empty((chains, draws, 1, 10, 10))
    x[:, 0] = rng.standard_normal((chains, 1, 10, 10))
    for t in range(1, draws):
        x[:, t] = 0.5 * x[:, t - 1] + rng.standard_normal((chains, 1, 10, 10))
    data = pd.DataFrame({"y1": [0.0, np.nan]})
    return Imputations(
        data=data, spec=_Spec(), kind="pan", call="synthetic", n_burn=0, n_iter=100,
        m=draws // 100, chains=chains, seed=seed, prior=[{}], keep_chains="full",
        random_L1="none", replacement=np.zeros((1, 1)), index=np.zeros((1, 2), int),
        burnin={"beta": x[:, :0]}, imputation={"beta": x}, labels={},
        imputation_source=np.zeros((1, 2), int),
    )


def _sorts(x: np.ndarray) -> None:
    """One float64 sort of every parameter's draws, the single largest step of the ranks."""
    buf = np.empty(x.shape[:2])
    for j in range(x.shape[2]):
        buf[...] = x[:, :, j]
        buf.reshape(-1).sort()


def _thread_ms(fn, setup=None, repeat: int = 7) -> float:
    """Least thread CPU time of ``fn()`` in ms over ``repeat`` calls (``setup()`` before each, untimed)."""
    best = np.inf
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best * 1e3


def floor_rows(x: np.ndarray, column: int = 0) -> list:
    """One thread's CPU per parameter for each NumPy call that summary()'s statistics cannot do
    without, at its fastest form found (ms), on parameter ``column`` of ``x`` (chain, draw, K).

    Every step computes something the definitions need: the parameter's draws out of the
    (chain, draw, K) layout (the package's cache-line gather of 8 parameters, per parameter);
    the sort of its draws (tagged float keys: the package's sort); the Blom scores written back
    in draw order (bulk R-hat and bulk ESS need them there); the folded draws' ranks (a merge of
    the two sorted halves: NumPy's timsort of two runs); their chain sums (``bincount``); 16
    autocovariance lags of the bulk scores and of the raw draws (ESS; Geyer's sequence ends at
    10-14 lags on these chains); the tail indicators' lagged pair counts. Elementwise passes
    (tagging, folding, chain numbers, centring) are left out, so the sum is below what any
    NumPy implementation of the same statistics can take.
    """
    from mitml_jax.diagnostics.ess_geyer import _indicator_autocov
    from mitml_jax.diagnostics.numpy_sort import sort_floats
    from mitml_jax.diagnostics.rank_normal import _plain_scores

    chains, draws, k = x.shape
    work: dict = {}
    group = np.empty((min(8, k), chains, draws))
    v = np.ascontiguousarray(x[:, :, column]).reshape(-1)  # split chains: rows of draws // 2
    m, n, size = 2 * chains, draws // 2, v.size
    keys = np.empty(size)
    order = np.argsort(v, kind="stable")
    z = _plain_scores(size)[0]  # the Blom scores of ranks 1..S, as the pipeline uses them
    scores = np.empty(size)
    s = v[order]
    med = 0.5 * (s[size // 2 - 1] + s[size // 2])
    runs = np.concatenate([med - s[size // 2 - 1 :: -1], s[size // 2 :] - med]).view(np.uint64)
    merged = np.empty_like(runs)
    chain = order // n
    scores[order] = z
    bulk = scores.reshape(m, n) - scores.reshape(m, n).mean(axis=1)[:, None]
    raw = v.reshape(m, n) - v.reshape(m, n).mean(axis=1)[:, None]
    tail = (np.sort(order[: size // 20]), np.sort(order[-(size // 20):]))

    def lags(y):
        for lag in range(16):
            np.vecdot(y[:, : n - lag], y[:, lag:])

    rows = [
        ("gather (per parameter, 8 at a time)",
         _thread_ms(lambda: gather_draws(x, np.arange(len(group)), group)) / len(group)),
        ("sort the draws", _thread_ms(lambda: sort_floats(keys, work),
                                      lambda: np.copyto(keys, v))),
        ("scores into draw order (scatter)", _thread_ms(lambda: scores.__setitem__(order, z))),
        ("folded ranks: merge of the sorted halves", _thread_ms(
            lambda: merged.sort(kind="stable"), lambda: np.copyto(merged, runs))),
        ("folded chain sums (bincount)",
         _thread_ms(lambda: np.bincount(chain, weights=z, minlength=m))),
        ("16 lag sums of the bulk scores", _thread_ms(lambda: lags(bulk))),
        ("16 lag sums of the draws", _thread_ms(lambda: lags(raw))),
        ("tail indicators' pair counts", _thread_ms(
            lambda: [_indicator_autocov(pos, m, n, 16, work) for pos in tail])),
    ]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 chains instead of 1,000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="also time imp.summary() with each of these thread caps "
                             "(MITML_JAX_DIAGNOSTIC_THREADS), for machines with many cores")
    parser.add_argument("--floor", action="store_true",
                        help="also time, on one thread, each NumPy call the statistics cannot "
                             "do without, and the whole pipeline per parameter")
    args = parser.parse_args(argv)
    chains, draws = (100, 1000) if args.quick else (1000, 1000)
    imp = make_imputations(chains, draws)
    x = imp.imputation["beta"][:, :, 0].reshape(chains, draws, 100)

    def best(fn):
        walls, cpus = [], []
        for _ in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        return min(walls), min(cpus)

    rows = [
        ("imp.summary() total", best(lambda: summarize(imp))),
        ("rank R-hat + bulk/tail ESS + MCSE", best(lambda: rank_diagnostics(
            x, which=("rhat", "ess_bulk", "ess_tail", "mcse_mean")))),
        ("mitml segment R-hat (per chain)", best(lambda: segment_rhat(np.moveaxis(x, 1, 2), 3))),
        ("floor: one np.sort per parameter (1 thread)", best(lambda: _sorts(x))),
    ]
    for n in args.threads or ():
        os.environ["MITML_JAX_DIAGNOSTIC_THREADS"] = str(n)
        rows.append((f"imp.summary() total, at most {n} threads", best(lambda: summarize(imp))))
    os.environ.pop("MITML_JAX_DIAGNOSTIC_THREADS", None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    found = sorted(numpy_simd())
    probe = np.random.default_rng(0).standard_normal(10**6)
    start = time.perf_counter()
    probe.sort()
    sort_ms = (time.perf_counter() - start) * 1e3
    print(f"NumPy {np.__version__}, SIMD found: {found}; one sort of 10^6 float64: {sort_ms:.1f} ms "
          "(an AVX2 sort takes about 9 ms on the 2-core machine; AVX-512 sorts ran 6 times slower "
          f"on AMD Zen 4, see the docstring; Zen 4 with NumPy's AVX-512 sort here: {zen4_avx512_sort()})\n")
    print(f"Summary speed: {chains} chains x {draws} draws x 100 parameters "
          f"({x.nbytes / 1e9:.2f} GB of draws), {os.cpu_count()} CPU cores, load average "
          f"{load:.1f}; best of {args.repeat}.\n")
    print("| step | wall s | CPU s (all threads) |")
    print("|---|---|---|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    wall = rows[0][1][0]
    print(f"\nper 10^6 draws: {wall / (x.size / 1e6) * 1e3:.1f} ms wall")
    if args.floor:
        _print_floor(x, chains, draws)
    return 0


def _print_floor(x: np.ndarray, chains: int, draws: int) -> None:
    """The floor table: indispensable NumPy calls per parameter against the whole pipeline."""
    k = x.shape[2]
    steps = floor_rows(x)
    total = sum(ms for _, ms in steps)
    os.environ["MITML_JAX_DIAGNOSTIC_THREADS"] = "1"
    part = x[:, :, :8]
    which = ("rhat", "ess_bulk", "ess_tail", "ess_mean")
    rank_diagnostics(part, which=which)
    pipeline = _thread_ms(lambda: rank_diagnostics(part, which=which), repeat=3) / part.shape[2]
    os.environ.pop("MITML_JAX_DIAGNOSTIC_THREADS", None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, min(cores, 4, k))  # as summary() uses them
    together = [None] * threads

    def one(i):
        together[i] = sum(ms for _, ms in floor_rows(x, i))

    pool = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    shared = max(together)
    print(f"\nPer parameter of {chains * draws:,} draws, one thread (least thread CPU of 7 calls):\n")
    print("| NumPy call the statistics need | ms |")
    print("|---|---|")
    for name, ms in steps:
        print(f"| {name} | {ms:.2f} |")
    print(f"| sum of these calls | {total:.1f} |")
    print(f"| whole pipeline (rank R-hat, bulk/tail/mean ESS), 8 parameters / 8 | {pipeline:.1f} |")
    print(f"| sum of these calls, {threads} threads at once (the slowest thread) | {shared:.1f} |")
    print(f"\nFor {k} parameters on {threads} threads: the calls alone at least {shared * k / threads / 1e3:.2f} s "
          f"({total * k / threads / 1e3:.2f} s if sharing the memory cost nothing); the whole pipeline at "
          f"one thread's speed {pipeline * k / threads / 1e3:.2f} s.")


if __name__ == "__main__":
    sys.exit(main())
