"""Timing of imp.summary() on many chains: 1,000 chains x 1,000 draws x 100 parameters.

    python benchmarks/summary_speed.py            # full size (about 0.8 GB of draws)
    python benchmarks/summary_speed.py --quick    # 100 chains
    python benchmarks/summary_speed.py --threads 1 2 4 8 16   # the summary with each thread cap

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
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 chains instead of 1,000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="also time imp.summary() with each of these thread caps "
                             "(MITML_JAX_DIAGNOSTIC_THREADS), for machines with many cores")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
