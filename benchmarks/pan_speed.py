"""Speed of pan_impute: ms per iteration per chain for 1, 8, 64 and 256 chains.

Models:
  (a) the Introduction model on studentratings: ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)
      (J = 50 clusters of 15 rows, 3 targets, 293 missing cells);
  (b) simulated: J = 1000 clusters of 20 rows, 5 targets, a random slope, 25% of cells missing.

For every chain count pan_impute runs with the same shapes several times: the first call compiles
("compile s": its tracing, lowering and XLA compile from ``jax.monitoring``; "1st call s": its extra
wall time over a repeat, both calls of two iterations per chain); the per-iteration time is the
difference between a run with ``iters`` more burn-in iterations and a short run, divided by
``iters`` (it includes moving the parameter draws to the host); "call s" is the fixed cost of a
call (model building, data layout, result assembly). R's pan is timed on the same data when ``Rscript`` is on the PATH
(``n/a`` otherwise), and the ratio R / ours of the single-chain time is printed.

Usage: ``python benchmarks/pan_speed.py [--quick] [--repeat 3] [--chains 1 8 64 256] [--models a b] [--layouts] [--compile] [--devices all]``; with ``--devices`` the chains are split over devices (on a CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=N``).

``--compile`` instead breaks the first call's compile time down (``jax.monitoring`` durations:
tracing, lowering to MLIR, XLA's backend compile; wall and process CPU seconds of the first call
less a repeated call) and counts the XLA CPU kernels (fusions) of the compiled iteration block,
which is what the backend compile time grows with (about 25-45 ms each on the 2-core machine).
Set ``MITML_JAX_COMPILATION_CACHE=0`` so that nothing comes from the persistent cache, and put the
working tree first on ``PYTHONPATH`` (a non-editable install in site-packages would be measured
instead).

Compile time (issue 4), measured 2026-11-26 07:22-07:29 UTC with ``--compile``, commit 68f23ca
(PYTHONPATH on a worktree) and this version in alternating processes, two rounds at load average
about 2 and 3 (other engineers on the 2 cores): first-call compile wall seconds, old / new, and
XLA kernels of the iteration block::

    model  chains  round 1 (load 2)  round 2 (load 3)  kernels
    (a)         1      5.79 / 4.81       5.04 / 4.36     115 / 95
    (a)         8                        7.13 / 4.76     162 / 107
    (a)        64      9.64 / 5.19       8.74 / 7.80     174 / 124
    (a)       256                                        175 / 125
    (b)         1      7.67 / 7.36      10.48 / 10.13    243 / 196
    (b)         8                       12.98 / 9.67     250 / 198
    (b)        64      9.09 / 5.72      14.82 / 12.88    262 / 198

The first call of a process includes about a second of one-time setup (model (a) at 1 chain).
Where it went (``jax.monitoring``, model (b), 1 chain): tracing about 1 s, lowering 0.3-0.7 s,
XLA's backend the rest; XLA's profiler shows the backend time as per-kernel code generation
(MLIR fusion emitter plus LLVM, 25-45 ms per kernel whatever its size) and about 1.4 s of thunk
emission. Kernel counts (and so compile time) were cut where the sweep made many tiny kernels:
pair masks of the missing-value draws, the per-pattern coefficients (from ``L^-1`` instead of
``2 r + 1`` triangular solves), and the Sigma / Psi algebra (one batch of two also for q > 1,
Bartletts from one gamma draw, assembled by a gather). The unrolled r q x r q factorisation of the
random-effects draw (86 of model (b)'s 196 kernels; 10 x 10) is left: as a rolled ``fori_loop``
or LAPACK's batched Cholesky that step alone ran 8-10 times slower (scratch benchmark, 1,000
clusters), and column-stacked unrolled variants compiled no faster. 10 targets (J = 1,000, random slope, one
chain, block compile): 570 / 441 kernels, 29.6 / 24.2 s CPU; 20 targets: 1,646 / 1,304 kernels,
124 / 104 s CPU (load 4.2-4.6). The sweep's run time did not change measurably (process CPU ms
per iteration of the compiled block, old / new, alternating, load 4-6: (a) 1 chain 0.043, 0.040 /
0.041, 0.041; (b) 1 chain 4.61, 4.28 / 4.25, 3.62; (a) 64 chains 1.81-2.11 / 1.62-2.12).

Compile time, 2026-11-26 11:00-11:58 UTC (``--compile``, cache off, this machine alone at load
about 1.5; wall seconds of the first call beyond a repeat, trace / to MLIR / backend)::

    model  chains  1fc15b4 (07:29 runs)        this version (two runs)
    (a)         1  4.4-4.8                     3.05, 3.28-3.94 (trace 0.29-0.47)
    (a)        64  5.2-7.8                     3.41, 3.99-5.14
    (b)         1  7.20 (0.91 / 0.68 / 5.54)   4.35 (0.56 / 0.24 / 3.52), 4.43-5.28
    (b)        64  8.4                         6.49-7.77 (trace 1.0-1.5)

What changed: (1) ``kernels/lean_vmap.py``: the vmaps over one chain and one group are not traced
as batches (tracing under ``vmap`` batches every ``jax.numpy`` function's own jitted jaxpr again;
(b)'s trace 0.91 -> 0.36-0.56 s); inside an outer ``vmap`` the group axis stays batched (indexing it
away made (b) with 64 chains 30% slower). (2) The random effects' factorisation and solves, 82 of
(b)'s ~200 XLA kernels, as one small-call kernel (``conditionals._posterior_draw``, up to 2^20 input
values): backend 1.3-1.6 s faster at one chain, sweep as fast (same process, 15 blocks each). Tried
and not kept (same process, alternating): the row-level missing-value solve as one kernel (one
thread for 20,000 rows: the sweep ~15% slower for 0.4-0.6 s); XLA's fusion emitters off for pan
((b) backend 5.5 -> 2.5-3.5 s, but its sweep 13-38% slower and (a)'s 75% slower); the emitters off
with ``xla_llvm_disable_expensive_passes`` or ``xla_backend_optimization_level`` 1-2 (slower
still); ``xla_cpu_parallel_codegen_split_count`` 2 or 8 (no gain); the random-effects kernel as a
``lax.map`` over clusters (compile 0.6 instead of 1.1 s for that kernel, but 320-450 instead of
180-230 us per sweep) and as a column-stacked factorisation (87 fusions, 3.1 s, 525 us). Where the
rest goes: XLA's code generation at 13-20 ms per fused loop even inside a small call (38, 59, 83,
112 loops for r q = 6, 8, 10, 12 compiled in 0.49, 0.76, 1.32, 2.21 s); with 64 chains the chain
``vmap`` makes tracing 3x longer (1.58 against 0.47 s; every primitive batched).

Compile time again, 2026-11-26 13:02 and 14:25 UTC (``--compile``, cache off, the same code; the
machine itself ran about 1.7x slower at 14:25: its float sort and R's pan slowed alike)::

    model  chains 1 / 8 / 64 / 256, 13:02            14:25
    (a)    2.38 / 2.74 / 3.02 / 2.97                4.20 / 4.35 / 5.70 / 5.38
    (b)    3.52-4.00 / 4.90-5.08 / 4.42-5.12 / 6.63  7.02 / 10.75 / 10.36 / 9.13

Alternating processes against 9b10875 at 14:26 showed the QA changes of that afternoon compile
no slower ((a) 4.39, 3.95 / 3.76, 3.61 s; (b) 5.63, 5.43 / 5.20, 4.60 s, old / new).

Compile time with several chains of model (b), 2026-11-27 03:30-05:30 UTC. Model (b)'s chains run
the vmapped one-chain kernel, and the sweep's noise hash, computed under a CPU conditional so that
its output is a buffer, had a predicate made from the key: batched by the chain ``vmap``, it made
the conditional a select (an optimisation barrier, which XLA drops), and the hash (335-413
operations) was fused into four loops. Its predicate now comes from the data
(``kernels/pan.py``): block compile with 8 chains 3.4 against 4.5 s (one process), the sweep 5%
faster, the same draws. First-call compile after that change alone, 05:26 UTC (``--compile
--models b``; 1 / 8 / 64 / 256 chains): 2.97 / 3.93 / 4.06 / 4.94 s; c515060 at 04:19: 3.19 /
4.60 / 4.95 / 7.82 s.

Tried and reverted: the random effects' 10 x 10 factorisation as one small-call kernel also under
the chain ``vmap`` (a ``custom_vmap`` moving the chain axis behind each argument's leading axes,
where the unrolled code broadcasts it). Model (b) compiled in 2.9 to 4.0 s at every chain count
(block compile with 8 chains 2.75-3.03 against 3.36-3.52 s, the sweep as fast), but a fuzz of
vmapped shapes found XLA's small-call emitter failing to compile the call ("Incorrect number of
arguments passed to called function", invalid LLVM IR) for 9 of 50 shapes, e.g. 4 targets with a
random slope, 15 to 35 clusters and 121 to 281 chains, with or without the data batched, and for
the calibration check's replications around two groups; merging two ``vmap`` axes into one did not
help. A compile failure cannot fall back at trace time, so the step stays XLA's loops under
``vmap``.

Model (b)'s compile time, 2026-11-27 06:00-07:20 UTC. (1) Under the chain ``vmap`` the random
effects' factorisation now calls the one-chain kernel once per chain in a loop (``lax.map`` in a
``custom_vmap`` rule, ``conditionals._posterior_draw_mapped``): the kernel XLA compiles is the
one-chain kernel at the one-chain shapes, and 165 fuzzed shapes (1-5 targets, 1-3 random effects,
3-79 clusters, 2-281 chains, one or two groups) all compiled. (2) The Bartlett factors' gamma
draw is written to a buffer (``noise.computed_once``): fused into the gather that assembles the
factors it made one loop of 20 KB of LLVM IR that LLVM grew to 750 KB, a quarter of the block's
code. Same draws, bit for bit. ``--compile``, this version against 214f4ec in alternating
processes (07:08-07:11 UTC), compile s (tracing + lowering + XLA) with 1 / 8 / 64 / 256 chains::

    214f4ec   2.88 / 4.90 / 5.15 / 5.64     3.69 / 4.52 / 5.34 / 5.10
    this      4.15 / 4.88 / 3.87 / 3.91     2.92 / 3.66 / 5.38 / 4.85

with XLA's backend alone 2.6-4.0 against 3.6-4.9 s for 8 to 256 chains. In a faster hour (06:00,
one run each) the first-call compile was 3.25 / 3.52 / 3.76 s with 8 / 64 / 256 chains against
4.16 / 4.24 / 3.83. The machine's phases (R's pan on (b) took 3.4 to 5.3 ms per iteration that
morning) still carry the several-chain compile above 5 s in slow half hours. "compile s" is now
the ``jax.monitoring`` sum and "1st call s" the first call's extra wall time (about 1 s more than
compile with 256 chains: first touch of the chains' 200 MB of completed data, among others).
Tried and not kept: indexing the group axis (one group) away also under the chain ``vmap``
(about 0.5 s less compile, but 64 chains swept 10-20% slower).

``--layouts`` instead times ``run_chains`` itself (no result assembly) with pan's kernel as
``run_chains`` runs it (chains innermost from ``pan_chains.MIN_CHAINS`` chains, see
``mitml_jax/kernels/pan_chains.py``) and with the plain ``vmap`` over chains, back to back in one
process (alternating, best of three), wall and process CPU time per iteration.

Measured 2026-11-26 02:10-02:12 UTC on the project's 2-core CPU machine shared with other engineers
(load average about 3), commit 4970aa1 (per-pattern missing-value draw under a chain vmap,
finiteness flag from the draw's inputs) and the version before it (75d8730) back to back; R's pan
from Rscript in the same runs. Wall times swing by up to 2x with the load; compare within a table.
This version::

    model                            chains  iters  ms/iter/chain  ms/iter (all)  CPU ms/iter  compile s  call s  R ms/iter  R/ours
    (a) intro, studentratings             1   4000         0.0505          0.051        0.050        5.7    0.02      0.087    1.73
    (a) intro, studentratings             8   4000         0.0530          0.424        0.420        8.0    0.03      0.087     n/a
    (a) intro, studentratings            64    625         0.0416          2.662        2.646        7.1    0.05      0.087     n/a
    (a) intro, studentratings           256    156         0.0455         11.655       11.521        7.6    0.09      0.087     n/a
    (b) sim J=1000x20, r=5, slope         1    200         4.1348          4.135        4.107        2.6    0.16      6.368    1.54

Before (75d8730)::

    (a) intro, studentratings             1   4000         0.0686          0.069        0.068        2.5    0.04      0.086    1.26
    (a) intro, studentratings             8   4000         0.0873          0.699        0.686        1.4    0.02      0.086     n/a
    (a) intro, studentratings            64    625         0.0735          4.704        4.677        1.6    0.08      0.086     n/a
    (a) intro, studentratings           256    156         0.0658         16.851       16.590        1.8    0.10      0.086     n/a
    (b) sim J=1000x20, r=5, slope         1    200         4.7119          4.712        4.639        3.0    0.16      5.761    1.22

(b) with one chain is within the noise of the old version (three pairs: 4.57/4.13/3.91 ms new,
1.83/4.71/3.81 ms old; the 1.83 ran on both cores). Chains batch better than before but far from
the targets (64 chains in 8x, 256 chains in 4x 8 chains' time): 64 chains cost ~50x one chain,
256 chains ~27x 8 chains.

CPU ms/iter above ms/iter (all) means XLA ran parts of the sweep on the second core.

Chains innermost (``kernels/pan_chains.py``, from 16 chains; missing values drawn at the missing
cells only), measured 2026-11-26 04:38-04:40 UTC, load average 2.3-3.2 (other engineers on the 2
cores): this script with commit d3a1260 (PYTHONPATH on a worktree) and this version back to back,
twice (second repeat in brackets)::

    model                            chains  ms/iter (all)  CPU ms/iter  ms/iter (all)  CPU ms/iter
                                             d3a1260                     this version
    (a) intro, studentratings             1  0.055 [0.056]  0.056 [0.056]  0.054 [0.049]  0.055 [0.051]
    (a) intro, studentratings             8  0.320 [0.376]  0.588 [0.376]  0.255 [0.295]  0.472 [0.550]
    (a) intro, studentratings            16        [0.659]        [0.655]        [0.472]        [0.814]
    (a) intro, studentratings            64  2.085 [2.718]  3.667 [2.647]  1.185 [1.377]  2.020 [2.291]
    (a) intro, studentratings           256  8.654 [13.82]  14.30 [13.72]  5.614 [6.268]  9.529 [10.42]

1 and 8 chains run the same program in both versions (their differences are the machine's noise).
Two more repeats at load 0.5-1.4 (04:47-04:50 UTC), d3a1260 / this version, ms/iter (all): 64
chains 1.760 / 1.132 and 1.431 / 1.365, 256 chains 8.056 / 4.371 and 5.971 / 5.866 (the
machine's load changed between the runs). Interleaved in one process at load 1.4 (the sweep loop
only, /tmp scratch script): 16 chains 0.52-0.55 / 0.42-0.45, 64 chains 1.60-1.81 / 1.05-1.10, 256
chains 7.9-8.5 / 6.2-6.4 ms. ``--layouts`` compares the two layouts inside one process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import jax
import numpy as np
import pandas as pd

from mitml_jax import load_studentratings, pan_impute
from mitml_jax.arrays import build_arrays
from mitml_jax.kernels import pan
from mitml_jax.priors import check_pan_prior, to_pan_prior
from mitml_jax.sampling.run import run_chains
from mitml_jax.spec.model_spec import build_spec

INTRO_FORMULA = "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)"
SIM_FORMULA = "y1 + y2 + y3 + y4 + y5 ~ 1 + x + (1 + x | id)"


def simulated_data(n_clusters=1000, size=20, n_targets=5, missing=0.25, seed=1):
    """J clusters x size rows, n_targets correlated targets with a random slope on x."""
    rng = np.random.default_rng(seed)
    n = n_clusters * size
    cid = np.repeat(np.arange(n_clusters), size)
    x = rng.normal(size=n)
    u0 = rng.normal(size=(n_clusters, n_targets))[cid]
    u1 = 0.5 * rng.normal(size=(n_clusters, n_targets))[cid]
    mix = np.linalg.cholesky(0.5 * np.eye(n_targets) + 0.5)
    e = rng.normal(size=(n, n_targets)) @ mix.T
    y = 1.0 + (0.5 + u1) * x[:, None] + u0 + e
    y[rng.random(size=y.shape) < missing] = np.nan
    frame = pd.DataFrame(y, columns=[f"y{i + 1}" for i in range(n_targets)])
    frame.insert(0, "x", x)
    frame.insert(0, "id", cid)
    return frame


def iterations_for(model, chains, quick):
    """Iterations per chain in the timed difference (keeps every run to seconds on 2 cores)."""
    per_chain = {"a": 4000, "b": 200}[model]
    budget = {"a": 40000, "b": 1000}[model]  # chain-iterations per run
    n = max(8, min(per_chain, budget // chains))
    return max(4, n // 4) if quick else n


def time_pan(data, formula, chains, n_extra, n_iter=10, dtype=None, devices=None, repeat=1):
    """(ms/iteration/chain, ms/iteration, CPU ms/iteration, compile s, first call s, fixed overhead s)
    of pan_impute: "compile s" is the first call's tracing, lowering and XLA compile (``jax.monitoring``
    durations), "first call s" its extra wall time over a repeat (compile, and one-time costs such
    as the first touch of fresh memory: about a second more with 256 chains of model (b)).

    ``n_burn`` is not a compiled shape, so two runs that differ only in ``n_burn`` share one
    program: the per-iteration time is their time difference over the extra iterations, free of
    the fixed cost of a call (model building, data layout, result assembly). The CPU column is the
    process's CPU time (all threads) over the same difference: on a shared machine it is less
    noisy than wall time, and above the wall time when XLA runs parts of the sweep on two threads.
    ``dtype`` and ``devices`` are passed to ``pan_impute`` (None: its defaults, float64 on one
    device). ``repeat``: the long run is made that many times and the fastest counts (wall and
    CPU time each their minimum), as ``timeit`` does, against other work on a shared machine.
    """
    def call(n_burn, n_iter=n_iter):
        t0, c0 = time.perf_counter(), time.process_time()
        pan_impute(data, formula, n_burn=n_burn, n_iter=n_iter, m=chains, chains=chains, seed=1, progress=False,
                   dtype=dtype, devices=devices)
        return time.perf_counter() - t0, time.process_time() - c0

    n_small = n_iter
    # compile: the first call less a repeat, both of two iterations per chain (the same program:
    # n_burn and n_iter up to a block's length are not compiled shapes), so that the run time
    # of the calls (seconds with 256 chains of model (b)) adds little noise to the difference
    _listen()
    first = call(1, 1)[0]
    compile_s = _compile_seconds()
    first -= call(1, 1)[0]
    small = min(call(n_small), call(n_small))
    runs = [call(n_small + n_extra) for _ in range(max(int(repeat), 1))]
    big = (min(r[0] for r in runs), min(r[1] for r in runs))
    per_iter = max(big[0] - small[0], 1e-9) / n_extra
    cpu_per_iter = max(big[1] - small[1], 1e-9) / n_extra
    overhead = max(small[0] - 2 * n_iter * per_iter, 0.0)
    return per_iter / chains * 1e3, per_iter * 1e3, cpu_per_iter * 1e3, compile_s, max(first, 0.0), overhead


def time_r(data, formula, n_total):
    """ms per iteration of R's panImpute (one chain), or None without Rscript."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.csv")
        data.to_csv(path, index=False)
        script = (
            "suppressMessages(library(mitml)); d <- read.csv('%s'); "
            "t <- system.time(panImpute(d, formula = %s, n.burn = %d, n.iter = 1, m = 1, silent = TRUE))[['elapsed']]; "
            "cat(t)" % (path, formula, n_total)
        )
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=False)
        try:
            return float(out.stdout.strip().split()[-1]) / (n_total + 1) * 1e3
        except (ValueError, IndexError):
            return None


def pan_setup(data, formula, chains, dtype=np.float64):
    """``(pan arrays, prior, chain-first starting state, layout dims)`` as ``pan_impute`` builds
    them (default prior)."""
    spec = build_spec(data, formula=formula, kind="pan")
    arrays, layout = build_arrays(spec.design(data), dtype=dtype)
    dims = layout.dims
    prior = to_pan_prior(check_pan_prior(None, dims["r"], dims["q"]), dims["G"], dtype)
    pa = pan.prepare_pan_arrays(arrays, spec.fixed_names)
    s0 = jax.tree_util.tree_map(lambda a: np.repeat(np.asarray(a)[None], chains, 0), pan.init(pa, prior))
    return pa, prior, s0, dims


def _plain_kernel(rng_key, state, arrays, prior):
    """pan's one-chain kernel without its ``chain_batch`` hook: ``run_chains`` vmaps it."""
    return pan.build_kernel()(rng_key, state, arrays, prior)


def compare_layouts(data, formula, chains, n_extra, n_burn=10):
    """{"chains innermost" | "vmap": (wall ms/iter, CPU ms/iter, compile s)} of ``run_chains``."""
    pa, prior, s0, _ = pan_setup(data, formula, chains)

    def call(kernel, n):
        t0, c0 = time.perf_counter(), time.process_time()
        run_chains(kernel, s0, pa, prior, jax.random.key(1), n_burn=n, n_iter=1, n_saves=1, transform=pan.transform,
                   save=pan.save_missing, progress=False)
        return time.perf_counter() - t0, time.process_time() - c0

    kernels = {"chains innermost": pan.build_kernel(), "vmap": _plain_kernel}
    first = {name: call(k, n_burn)[0] for name, k in kernels.items()}
    best = {name: (np.inf, np.inf) for name in kernels}
    small = {name: min(call(k, n_burn)[0] for _ in range(2)) for name, k in kernels.items()}
    for _ in range(3):
        for name, k in kernels.items():
            big, short = call(k, n_burn + n_extra), call(k, n_burn)
            wall, cpu = (big[0] - short[0]) / n_extra, (big[1] - short[1]) / n_extra
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return {name: (best[name][0] * 1e3, best[name][1] * 1e3, max(first[name] - small[name], 0.0)) for name in kernels}


_DURATIONS: dict = {}


def _record_duration(event, duration, **kwargs):
    _DURATIONS[event] = _DURATIONS.get(event, 0.0) + duration


#: the ``jax.monitoring`` durations that make up compile time
COMPILE_EVENTS = ("jaxpr_trace", "jaxpr_to_mlir_module", "backend_compile")


def _listen():
    """Start (or restart) recording ``jax.monitoring`` durations into ``_DURATIONS``."""
    if not _DURATIONS.get("registered"):
        jax.monitoring.register_event_duration_secs_listener(_record_duration)
    _DURATIONS.clear()
    _DURATIONS["registered"] = 1.0


def _events() -> dict:
    """The recorded durations by short name (``backend_compile`` etc.)."""
    return {k.rsplit("/", 1)[-1].replace("_duration", ""): v for k, v in _DURATIONS.items() if k != "registered"}


def _compile_seconds(events=None) -> float:
    """Tracing + lowering + XLA compile in ``events`` (default: recorded since :func:`_listen`)."""
    events = _events() if events is None else events
    return sum(events.get(name, 0.0) for name in COMPILE_EVENTS)


def block_kernels(data, formula, chains, block_len=64):
    """Number of XLA CPU kernels (fusions) in the compiled iteration block of ``run_chains`` for
    pan's kernel (compiled here, outside pan_impute, with a block of ``block_len`` iterations)."""
    from mitml_jax.sampling import run as run_module

    pa, prior, s0, _ = pan_setup(data, formula, chains)
    kernel = pan.build_kernel()
    keys = jax.random.split(jax.random.key(1), chains)
    block = run_module._block_function(kernel, pan.transform, pan.save_missing, block_len, 1)
    step, enter = run_module._chain_step(kernel), run_module._chain_layout(kernel)[1]
    info = jax.eval_shape(lambda k, s: step(k, enter(s, pa), pa, prior), keys, s0)[1]
    acc = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, np.int32), info)
    args = (keys, s0, pa, prior, np.int32(0), np.int32(block_len), np.int32(block_len), acc,
            np.full((chains,), -1, np.int32))
    return block.lower(*args).compile().as_text().count(" fusion(")


def compile_breakdown(data, formula, chains):
    """First call of pan_impute: (wall s, CPU s, {event: s}) beyond a repeated call, and the block's kernels."""
    _listen()

    def call():
        t0, c0 = time.perf_counter(), time.process_time()
        pan_impute(data, formula, n_burn=1, n_iter=1, m=chains, chains=chains, seed=1, progress=False)
        return time.perf_counter() - t0, time.process_time() - c0

    first = call()
    events = _events()
    again = min(call(), call())
    return first[0] - again[0], first[1] - again[1], events, block_kernels(data, formula, chains)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="long runs per row, the fastest counts (default 3)")
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--models", nargs="+", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--layouts", action="store_true", help="run_chains: chains innermost vs vmap")
    parser.add_argument("--compile", action="store_true", help="first-call compile time breakdown and kernel counts")
    parser.add_argument("--devices", default=None,
                        help="pan_impute's devices= for the timing table ('all' or a count): the chains "
                             "are split over them; on a CPU make several devices with "
                             "XLA_FLAGS=--xla_force_host_platform_device_count=N")
    args = parser.parse_args(argv)
    if args.devices is not None and args.devices != "all":
        args.devices = int(args.devices)

    models = {
        "a": ("(a) intro, studentratings", load_studentratings(), INTRO_FORMULA),
        "b": ("(b) sim J=1000x20, r=5, slope", simulated_data(), SIM_FORMULA),
    }
    if args.compile:
        print(f"{'model':32s} {'chains':>6s} {'compile s':>9s} {'1st call s':>10s} {'CPU s':>6s} {'trace s':>7s} "
              f"{'to MLIR s':>9s} {'backend s':>9s} {'kernels':>7s}")
        for key in args.models:
            label, data, formula = models[key]
            for chains in args.chains:
                wall, cpu, events, kernels = compile_breakdown(data, formula, chains)
                total = _compile_seconds(events)
                print(f"{label:32s} {chains:6d} {total:9.2f} {wall:10.2f} {cpu:6.2f} {events.get('jaxpr_trace', 0.0):7.2f} "
                      f"{events.get('jaxpr_to_mlir_module', 0.0):9.2f} {events.get('backend_compile', 0.0):9.2f} "
                      f"{kernels:7d}", flush=True)
        print(f"\nmachine: {os.cpu_count()} CPU cores visible; load average {os.getloadavg()}.")
        return
    if args.layouts:
        print(f"{'model':32s} {'chains':>6s} {'iters':>6s} {'layout':>17s} {'ms/iter':>8s} {'CPU ms/iter':>12s} "
              f"{'compile s':>10s}")
        for key in args.models:
            label, data, formula = models[key]
            for chains in args.chains:
                n_total = iterations_for(key, chains, args.quick)
                for name, (wall, cpu, comp) in compare_layouts(data, formula, chains, n_total).items():
                    print(f"{label:32s} {chains:6d} {n_total:6d} {name:>17s} {wall:8.3f} {cpu:12.3f} {comp:10.1f}",
                          flush=True)
        print(f"\nmachine: {os.cpu_count()} CPU cores visible; load average {os.getloadavg()}.")
        return
    print(f"{'model':32s} {'chains':>6s} {'iters':>6s} {'ms/iter/chain':>14s} {'ms/iter (all)':>14s} "
          f"{'CPU ms/iter':>12s} {'compile s':>10s} {'1st call s':>10s} {'call s':>7s} {'R ms/iter':>10s} {'R/ours':>7s}")
    wall = {}
    for key in args.models:
        label, data, formula = models[key]
        r_ms = time_r(data, formula, iterations_for(key, 1, args.quick))
        for chains in args.chains:
            n_total = iterations_for(key, chains, args.quick)
            per_chain, per_iter, cpu_iter, compile_s, first_s, overhead = time_pan(
                data, formula, chains, n_total, devices=args.devices, repeat=args.repeat)
            wall[key, chains] = per_iter
            ratio = f"{r_ms / per_iter:7.2f}" if (r_ms is not None and chains == 1) else "    n/a"
            r_txt = f"{r_ms:10.3f}" if r_ms is not None else "       n/a"
            print(f"{label:32s} {chains:6d} {n_total:6d} {per_chain:14.4f} {per_iter:14.3f} {cpu_iter:12.3f} "
                  f"{compile_s:10.1f} {first_s:10.1f} {overhead:7.2f} {r_txt} {ratio}", flush=True)
    for key in args.models:
        if (key, 1) in wall and (key, 64) in wall:  # issue 4: at most 8 on model (a)
            print(f"\n({key}) 64 chains take {wall[key, 64] / wall[key, 1]:.2f} times one chain's wall time "
                  "per iteration", end="")
    where = f"; chains split over devices={args.devices!r} ({len(jax.devices())} visible)" if args.devices else ""
    print(f"\nmachine: {os.cpu_count()} CPU cores visible{where}; timings on a shared machine are noisy.")


if __name__ == "__main__":
    main()
