"""Speed of the jomo sweep: milliseconds per iteration per chain, 1 and 64 chains.

Models (issue 9):
  (a) Level-2 vignette: leadership, ``[JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID), COHES ~ 1]``;
  (b) justice, ``[sat + jor + sex ~ 1 + (1|id), jcl ~ 1]``, random_L1 = "full";
  (c) simulated: J = 1000 clusters of n = 20, 5 continuous targets, random intercepts.

The timed call runs ``iterations`` sweeps of every chain in one compiled ``lax.scan`` (vmapped
over chains) after a warm-up call of the same shape, so compilation is excluded. R's jomo is run
side by side when ``Rscript`` and the jomo package are available (column ``R ms/iter``);
otherwise the column shows the issue's reference timings marked "(issue)".

Usage: ``python benchmarks/jomo_speed.py [--models a b c] [--chains 1 64] [--iterations 200]
[--repeats 3]``: each point is the fastest of ``--repeats`` timed calls, R's the fastest of as
many runs in one R session.

Measured 2026-11-26 00:00 UTC on the shared 2-core development machine (load average 2.5-3.8,
so wall times are inflated; R's jomo run side by side in the same call), float64, default XLA
threading, ``--quick``, ``MITML_JAX_COMPILATION_CACHE=0``; the sweep before (commit 716f07a) and
after the issue-9 work, run back to back:

=====  ======  ==============  =============  ===========  ============  ============
model  chains  before ms/iter  after ms/iter  R ms/iter    speed-up vs R compile s
                per chain      per chain      (same run)   after         before/after
=====  ======  ==============  =============  ===========  ============  ============
a      1       0.46            0.28           2.85 / 3.15  11x           14.8 / 11.8
a      64      0.27            0.18           2.85 / 3.15  17x           21.9 / 14.5
b      1       3.07            0.74           11.9 / 12.9  17x           29.1 / 16.5
b      64      2.02            0.63           11.9 / 12.9  20x           42.8 / 23.5
c      1       12.8            9.2            140 / 127    14x           13.3 / 8.7
c      64      10.1            8.2            140 / 127    15x           30.9 / 17.5
=====  ======  ==============  =============  ===========  ============  ============

One chain, best of 15 timed calls of 100 sweeps (single-threaded XLA, quieter minutes):
(a) 0.16-0.21 ms, (b) 0.52-0.57 ms (before: 0.26-0.44 and 1.9-2.5 ms). Where the time went
(profiles of the compiled sweep): threefry evaluated in ~12 separate rolled ``while`` loops;
float64 ``erfinv``/``ndtr``/``ndtri``
(scalar code, 25-50 ns per value); the element-wise Metropolis steps as a ``scan`` with a
Cholesky per proposal (about 600 thunks per sweep); batched dots of 3 x 3 matrices. See
``mitml_jax/kernels/jomo_noise.py`` and ``mh_covariance.py`` for what replaced them.

Second round (2026-11-26, model (a), one chain; commits 2058b70, 386d061, f9c24e7): the compiled
loop body went from 303 to about 195 thunks and no loop is split over two threads any more (XLA
gave two threads to the 750-row truncated-normal loops and to three library dots, which cost
more than they saved and made one chain use 1.5 times its wall time in CPU; see
``mitml_jax/kernels/jomo_halves.py``). Old against new sweep interleaved in one process (best of
20 calls of 500 sweeps, load average 3-6): 0.72 times the wall time of the old sweep (e.g. 0.127
against 0.172 ms). Full run of this script at 02:07 UTC, load 3.2, R side by side, ``--repeats
3``: (a) 0.198 ms against R 2.21 ms (11.2x), 64 chains 15.5x; (b) 13.5x / 14.0x; (c) 19.5x /
18.4x; CPU time per chain now equals the wall time. Single timed calls of 200 sweeps still vary
by +-30% on the shared machine (R's too): compare ratios within one run.

Third round (2026-11-26 03:30-04:35 UTC, model (a), issue-9 review). The sweep is now timed as
``run_chains`` runs it (the kernel's ``compiler_options``, data and prior as arguments, keys
from ``kernels.threefry.fold_in``); before, the script compiled with XLA's default options and
folded the data into the program as constants, which ran 64 chains about 25% faster than
``jomo_impute`` does (0.094 against 0.124 ms per chain) and took 6.1 s instead of ~4.2 s to
compile. This script, ``--models a --repeats 3``, cache off, the code at the start of the round
(d3a1260) and after it, run back to back (load 1.1 -> 2.4; the working tree also held other
engineers' uncommitted kernel changes; single unpinned runs of the same code vary from 0.11 to
0.16 ms, see below, so the before/after gap here overstates the sweep's gain: the ratio measured
in one process is 0.92-0.93):

=====  ======================  ======================  ==========  ===================
chains ms/iter/chain after     before (d3a1260)        R ms/iter   compile s after/bef.
=====  ======================  ======================  ==========  ===================
1      0.112, 0.107            0.154                   1.18-1.44   4.2-4.7 / 5.9
64     0.129, 0.124            0.157                   1.18-1.44   5.4-5.8 / 6.7
=====  ======================  ======================  ==========  ===================

What changed in the sweep: the per-row pattern factors of the conditional draws as a one-hot
product instead of XLA's gather (0.92-0.93 times the CPU time, same draws), the two CDFs of the
binary latent as two loops (the stacked loop was split over two threads); the noise budget read
off the shapes (one trace of the sweep less per cold start). The wall time of one chain depends
on the CPU affinity more than on any of these: XLA's runtime runs independent operations of the
sweep on its two pool threads, handing them between the cores, and the same sweep pinned to one
core (``taskset -c 0``) took 0.073-0.080 ms against 0.113-0.156 ms unpinned (one process each,
load ~3, 2026-11-26 04:32 UTC). Measured without effect: XLA's fusion emitters on (vectorised
transcendental loops, 3-5 times faster per value, but the sweep within 6% and compile time up
to 2x); a one-sided truncated-normal draw of the binary latent with an exact redraw beyond the
box (one CDF less; 6% faster without its redraw branch, 14% slower with it, any control flow in
the sweep costing ~10 us); AS241 with per-element coefficients (10% of the quantile, scalar
selects cost as much as the saved polynomials).

Fourth round (2026-11-26 06:10-07:20 UTC, issue 9: one chain of model (a) at <= 0.10 ms). Why a
chain ran 1.5 times slower unpinned: XLA's thunk executor hands half of its ready queue to the
thread pool whenever more than 8 thunks are ready (the loop body of (a) had ~200 thunks, 22 of them
ready at its start); nothing in XLA_FLAGS or the compiler options changes that (the thresholds are
constants), and a pool of one thread (``NPROC=1``) only helps process-wide. Instead the sweep is
now compiled as ONE kernel by XLA's whole-computation emitter (``kernels/kernel_call.py``:
a call tagged ``xla_cpu_small_call``; the sweep made free of dots and scatters, its inputs packed
into three vectors; up to 2^17 input values, so 64 chains keep the threaded thunks). Same process,
one kernel against the thunk build of the same sweep, alternating (load 4-6, 2 cores shared):

=====  ======  ========================  ========================
model  chains  one kernel ms/iter/chain  thunks ms/iter/chain
=====  ======  ========================  ========================
a      1       0.0575 (CPU 0.057)        0.142 (CPU 0.142)
a      1       0.0593 (CPU 0.059)        0.106 (CPU 0.099)
a      8       0.057                     0.097
a      32      0.082 (CPU 0.070)         0.099 (CPU 0.091)
a      64      (thunks: 0.056 one kernel against 0.045, so not used)
b      1       0.43                      0.75
b      8       0.39                      0.56
c      1       (thunks: 3.65 one kernel against 3.77, above the size limit)
c      64      (thunks: 5.7 one kernel against 4.4)
=====  ======  ========================  ========================

This script, ``--models a --chains 1 64 --repeats 5``, before (d8bac13) and after, alternating
processes (load 4.2-4.5): one chain 0.123 and 0.205 ms before (CPU 0.123, 0.139), 0.084 and
0.129 ms after (CPU 0.084, 0.087), R 1.25-2.54 ms in the same runs. Final run, 07:24-07:27 UTC,
load 1.9-3.1, the same alternation: (a) one chain 0.154 and 0.115 ms before, 0.0566 and 0.0581
after (R 1.23-2.22 ms: 21.7x and 38.3x), 64 chains 0.130 and 0.125 before, 0.065 and 0.059
after; (b) one chain 0.893 before (R 6.24: 7.0x), 0.383 after (R 7.52: 19.6x); (c) one chain
(``lax.scan`` of 30 sweeps, no R) 6.90 before, 2.43 after (the dot-free sweep; still thunks). Where the rest goes (model (a),
one kernel, CPU time by ablation, load ~5): the binary latent's truncated normals ~30 us (two
``erfc`` and a quantile per row, 750 rows), the conditional draws of missing values ~20 us, the
normal quantiles of the noise ~10 us, the inverse-Wishart draws ~7 us.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import mitml_jax as mj
from mitml_jax.kernels import jomo
from mitml_jax.kernels.jomo_design import build_group_problems
from mitml_jax.kernels.threefry import fold_in
from mitml_jax.kernels.xla_options import for_backend
from mitml_jax.sampling.threads import PartRunner, chain_parts, split_chains
from mitml_jax.spec.model_spec import build_spec

R_ISSUE_MS = {"a": 2.2, "b": 7.1, "c": 91.0}


def simulated_c(seed=0, n_clusters=1000, size=20, r=5):
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_clusters), size)
    u = rng.normal(scale=0.7, size=(n_clusters, r))
    y = u[cl] + rng.normal(size=(len(cl), r))
    y[rng.random(y.shape) < 0.2] = np.nan
    data = pd.DataFrame(y, columns=[f"y{i + 1}" for i in range(r)])
    data["id"] = cl
    return data


def models():
    return {
        "a": (mj.load_leadership(), ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"],
              "none"),
        "b": (mj.load_justice(), ["sat + jor + sex ~ 1 + (1|id)", "jcl ~ 1"], "full"),
        "c": (simulated_c(), " + ".join(f"y{i + 1}" for i in range(5)) + " ~ 1 + (1|id)", "none"),
    }


def time_jax(data, formula, random_l1, chains, iterations, seed=1, repeats=3):
    """(wall s, process CPU s) per iteration (all chains) of the compiled sweep, and compile s.

    Compiled as :func:`mitml_jax.sampling.run.run_chains` compiles it: the kernel's XLA
    ``compiler_options``, data and prior as arguments (not constants folded into the program),
    the per-iteration keys from ``kernels.threefry.fold_in``, and on a CPU the chains split into
    equal parts that run on their own threads (``sampling/threads.py``). The fastest of ``repeats`` timed
    calls (R's side is timed the same way). The process CPU time is reported because the
    development machine is shared: under load the wall time overstates the cost of
    single-threaded work.
    """
    spec = build_spec(data, formula=formula, kind="jomo")
    prob = build_group_problems(spec, spec.design(data), random_l1)[0]
    prior = jomo.default_prior(prob.config)
    kernel = jomo.build_kernel(prob.config)
    state0 = jomo.init(prob.arrays, prob.config, prior)
    state = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (chains,) + a.shape), state0)

    def one_chain(key, state, arrays, prior):
        def body(s, t):
            s, _ = kernel(fold_in(key, t), s, arrays, prior)
            return s, s.beta
        return jax.lax.scan(body, state, jnp.arange(iterations, dtype=jnp.uint32))

    run = jax.jit(jax.vmap(one_chain, in_axes=(0, 0, None, None)),
                  compiler_options=for_backend(getattr(kernel, "compiler_options", None)))
    keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.key(seed), c))(jnp.arange(chains))
    # on a CPU the chains run in equal parts, one thread each, as run_chains runs them
    parts = chain_parts(chains, state, keys)
    runner = PartRunner(run, parts)
    args = [(k, s, prob.arrays, prior) for k, s in zip(split_chains(keys, parts), split_chains(state, parts))]

    def call():
        runner.submit(args)
        return jax.block_until_ready(runner.result())

    t0 = time.perf_counter()
    call()  # compile + warm-up
    compile_s = time.perf_counter() - t0
    wall, cpu = np.inf, np.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    runner.close()
    return wall / iterations, cpu / iterations, compile_s


R_SCRIPT = """
suppressMessages(library(mitml)); d <- read.csv("{csv}")
{prep}
t <- sapply(seq_len({reps}), function(i) system.time(
  jomoImpute(d, formula = {formula}, random.L1 = "{rl1}", n.burn = {n}, n.iter = 1, m = 1,
             silent = TRUE))[["elapsed"]])
cat(1000 * min(t) / ({n} + 1))
"""


def time_r(name, data, formula, random_l1, iterations, repeats=3):
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv = f"{tmp}/d.csv"
        data.to_csv(csv, index=False)
        cats = [c for c in data.columns if isinstance(data[c].dtype, pd.CategoricalDtype)]
        prep = "; ".join(f"d${c} <- factor(d${c})" for c in cats)
        if isinstance(formula, list):
            rform = "list(" + ", ".join(f"{f}" for f in formula) + ")"
        else:
            rform = formula
        script = R_SCRIPT.format(csv=csv, prep=prep, formula=rform, rl1=random_l1, n=iterations,
                                 reps=repeats)
        try:
            out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True,
                                 timeout=3600, check=True)
            return float(out.stdout.strip().split()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError):
            return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["a", "b", "c"])
    parser.add_argument("--chains", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls per point, fastest kept (R: runs in one session)")
    parser.add_argument("--quick", action="store_true",
                        help="60 iterations and one timed call per point (run_all --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.repeats = 60, 1
    specs = models()
    rows = []
    for name in args.models:
        data, formula, rl1 = specs[name]
        r_ms = time_r(name, data, formula, rl1, args.iterations, args.repeats)
        for chains in args.chains:
            iters = max(10, args.iterations // (1 if chains == 1 else 4))
            sec, cpu, compile_s = time_jax(data, formula, rl1, chains, iters,
                                           repeats=args.repeats)
            ms_chain = 1000 * sec / chains
            ref = r_ms if r_ms is not None else R_ISSUE_MS[name]
            rows.append({
                "model": name, "chains": chains, "ms/iter (all chains)": round(1000 * sec, 3),
                "ms/iter/chain": round(ms_chain, 4),
                "CPU ms/iter/chain": round(1000 * cpu / chains, 4),
                "R ms/iter": f"{r_ms:.2f}" if r_ms is not None else f"n/a ({R_ISSUE_MS[name]} issue)",
                "speed-up vs R": round(ref / ms_chain, 1), "compile s": round(compile_s, 1),
            })
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
