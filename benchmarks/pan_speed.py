"""Speed of pan_impute: ms per iteration per chain for 1, 8, 64 and 256 chains.

Models:
  (a) the Introduction model on studentratings: ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)
      (J = 50 clusters of 15 rows, 3 targets, 293 missing cells);
  (b) simulated: J = 1000 clusters of 20 rows, 5 targets, a random slope, 25% of cells missing.

For every chain count pan_impute runs with the same shapes several times: the first call compiles
(its extra time is "compile s"); the per-iteration time is the difference between a run with
``iters`` more burn-in iterations and a short run, divided by ``iters`` (it includes moving the
parameter draws to the host); "call s" is the fixed cost of a call (model building, data layout,
result assembly). R's pan is timed on the same data when ``Rscript`` is on the PATH
(``n/a`` otherwise), and the ratio R / ours of the single-chain time is printed.

Usage: ``python benchmarks/pan_speed.py [--quick] [--chains 1 8 64 256] [--models a b]``.

Measured 2026-11-25 23:46-23:56 UTC on the project's 2-core CPU machine shared with other engineers
(load average about 3.3; R's pan from Rscript on the same machine at the same time), with
MITML_JAX_COMPILATION_CACHE=0, this version and then the version before the sweep rewrite
(commit 716f07a) back to back. Wall times swing by up to 2x with the load; compare within a table.
This version::

    model                            chains  iters  ms/iter/chain  ms/iter (all)  CPU ms/iter  compile s  call s  R ms/iter  R/ours
    (a) intro, studentratings             1   4000         0.0629          0.063        0.062        5.6    0.03      0.077    1.22
    (a) intro, studentratings             8   4000         0.0864          0.691        0.689        7.2    0.03      0.077     n/a
    (a) intro, studentratings            64    625         0.0704          4.508        4.459        6.9    0.04      0.077     n/a
    (a) intro, studentratings           256    156         0.0634         16.226       16.053        7.0    0.15      0.077     n/a
    (b) sim J=1000x20, r=5, slope         1    200         4.4730          4.473        4.389       12.3    0.11      6.935    1.55
    (b) sim J=1000x20, r=5, slope         8    125         4.6585         37.268       36.777       14.9    0.33      6.935     n/a
    (b) sim J=1000x20, r=5, slope        64     15         4.1523        265.749      268.627       16.3    1.39      6.935     n/a
    (b) sim J=1000x20, r=5, slope       256      8         6.8217       1746.359     1176.460       14.4    0.00      6.935     n/a

Before (716f07a: threefry as a rolled loop, float64 erfinv normals, a lax.cond around every
sweep, unrolled 10 x 10 parameter algebra)::

    model                            chains  iters  ms/iter/chain  ms/iter (all)  CPU ms/iter  compile s  call s  R ms/iter  R/ours
    (a) intro, studentratings             1   4000         0.1991          0.199        0.194        6.9    0.03      0.064    0.32
    (a) intro, studentratings             8   4000         0.1614          1.291        1.263        8.2    0.05      0.064     n/a
    (a) intro, studentratings            64    625         0.0977          6.250        6.160       10.0    0.09      0.064     n/a
    (a) intro, studentratings           256    156         0.0973         24.911       24.793        9.1    0.21      0.064     n/a
    (b) sim J=1000x20, r=5, slope         1    200         8.5728          8.573        8.472       20.4    0.06      6.751    0.79
    (b) sim J=1000x20, r=5, slope         8    125         5.1622         41.297       41.048       27.1    0.44      6.751     n/a
    (b) sim J=1000x20, r=5, slope        64     15         6.2504        400.026      286.444       30.3    0.00      6.751     n/a
    (b) sim J=1000x20, r=5, slope       256      8         6.6762       1709.108     1937.664       29.7    0.00      6.751     n/a

CPU ms/iter above ms/iter (all) means XLA ran parts of the sweep on the second core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pandas as pd

from mitml_jax import load_studentratings, pan_impute

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


def time_pan(data, formula, chains, n_extra, n_iter=10):
    """(ms/iteration/chain, ms/iteration, CPU ms/iteration, compile s, fixed overhead s) of pan_impute.

    ``n_burn`` is not a compiled shape, so two runs that differ only in ``n_burn`` share one
    program: the per-iteration time is their time difference over the extra iterations, free of
    the fixed cost of a call (model building, data layout, result assembly). The CPU column is the
    process's CPU time (all threads) over the same difference: on a shared machine it is less
    noisy than wall time, and above the wall time when XLA runs parts of the sweep on two threads.
    """
    def call(n_burn):
        t0, c0 = time.perf_counter(), time.process_time()
        pan_impute(data, formula, n_burn=n_burn, n_iter=n_iter, m=chains, chains=chains, seed=1, progress=False)
        return time.perf_counter() - t0, time.process_time() - c0

    n_small = n_iter
    first = call(n_small)[0]
    small = min(call(n_small), call(n_small))
    big = call(n_small + n_extra)
    per_iter = max(big[0] - small[0], 1e-9) / n_extra
    cpu_per_iter = max(big[1] - small[1], 1e-9) / n_extra
    overhead = max(small[0] - 2 * n_iter * per_iter, 0.0)
    return per_iter / chains * 1e3, per_iter * 1e3, cpu_per_iter * 1e3, max(first - small[0], 0.0), overhead


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--models", nargs="+", default=["a", "b"], choices=["a", "b"])
    args = parser.parse_args(argv)

    models = {
        "a": ("(a) intro, studentratings", load_studentratings(), INTRO_FORMULA),
        "b": ("(b) sim J=1000x20, r=5, slope", simulated_data(), SIM_FORMULA),
    }
    print(f"{'model':32s} {'chains':>6s} {'iters':>6s} {'ms/iter/chain':>14s} {'ms/iter (all)':>14s} "
          f"{'CPU ms/iter':>12s} {'compile s':>10s} {'call s':>7s} {'R ms/iter':>10s} {'R/ours':>7s}")
    for key in args.models:
        label, data, formula = models[key]
        r_ms = time_r(data, formula, iterations_for(key, 1, args.quick))
        for chains in args.chains:
            n_total = iterations_for(key, chains, args.quick)
            per_chain, per_iter, cpu_iter, compile_s, overhead = time_pan(data, formula, chains, n_total)
            ratio = f"{r_ms / per_iter:7.2f}" if (r_ms is not None and chains == 1) else "    n/a"
            r_txt = f"{r_ms:10.3f}" if r_ms is not None else "       n/a"
            print(f"{label:32s} {chains:6d} {n_total:6d} {per_chain:14.4f} {per_iter:14.3f} {cpu_iter:12.3f} "
                  f"{compile_s:10.1f} {overhead:7.2f} {r_txt} {ratio}", flush=True)
    print(f"\nmachine: {os.cpu_count()} CPU cores visible; timings on a shared machine are noisy.")


if __name__ == "__main__":
    main()
