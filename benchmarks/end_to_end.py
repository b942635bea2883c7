"""End-to-end wall time of the Introduction vignette: examples/introduction.py against R's mitml.

    python benchmarks/end_to_end.py            # m = 100 as the vignette, 2 repeats
    python benchmarks/end_to_end.py --quick    # one repeat
    python benchmarks/end_to_end.py --also MITML_JAX_PREFETCH=0   # plus a cold run without prefetch

Each run is a fresh process of this checkout's package (``PYTHONPATH`` points at the checkout, so
an installed copy does not shadow it), timed from outside (interpreter start-up, imports, compilation,
imputation, summary, the PNG convergence plot, completion, 100 lmer fits, pooling):

* ``ours, cold``: an empty compilation cache directory, as on a fresh install (every XLA program is
  compiled, and written to the cache);
* ``ours, cached``: the same directory again, as on every later run on the machine;
* ``R``: ``Rscript benchmarks/r/introduction.R`` (the vignette's code, the same plot exported as
  PNG) when ``Rscript`` with mitml and lme4 is installed.

The three kinds (and any ``--also`` cold runs) are interleaved in every repeat so they see the
same machine load; the table shows each run's wall and CPU seconds (user + system, all threads;
steadier than wall time on a loaded machine), the ratio to R in the same repeat and the load
average after the repeat.

Measured 2026-11-26 04:13 UTC (shared 2-core machine, load average 2.5-2.9, so wall times are
noisy; CPU seconds of the process in brackets are steadier), before (d3a1260) and after lmer's
NumPy path (d6e19b6) and the batched test_estimates (d71f27d), interleaved, two repeats:
cold 11.5 / 12.9 s (12.7 / 12.4 CPU s) -> 10.0 / 13.4 s (9.5 / 9.6 CPU s); cached 6.2 / 7.8 s
(6.1 / 7.7) -> 6.0 / 9.2 s (5.7 / 6.4); R 8.1 / 11.2 s (7.5 / 7.7 CPU s). In process, cold:
lmer 4.5-5.8 s (3.1-3.9 CPU s: trace 1.2-1.6, compile 2.9-3.7) -> 0.08-0.18 s; test_estimates
0.4-0.6 -> 0.01-0.03 s. What remains of a cold run is mostly pan_impute's trace and compile.

Measured 2026-11-26 06:57 UTC (load average 4.5-5.8 from other jobs: no idle core), three
repeats, ``--also MITML_JAX_PREFETCH=0``: cold without the background imports of
``sampling/prefetch.py`` 13.1 / 11.4 / 19.4 s (8.8 / 7.7 / 9.9 CPU s), with them 8.7 / 14.8 /
17.0 s (9.6 / 9.4 / 10.3 CPU s); cached 8.8 / 9.7 / 12.2 s; R 10.4 / 14.5 / 13.8 s. Under such
load the imports only move (CPU conserved); the saving needs a core the compiler leaves idle.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command, env=None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, all threads) and stdout of one process."""
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return elapsed, _children_cpu() - cpu, result.stdout


def r_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(mitml); library(lme4)"], capture_output=True)
    return probe.returncode == 0


def _estimate(text: str, name: str) -> str:
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == name and len(parts) > 2:
            return f"{float(parts[1]):.1f} ({float(parts[2]):.2f})"
    return "?"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--fresh-matplotlib", action="store_true",
                        help="cold runs also start without matplotlib's font cache (an empty "
                             "MPLCONFIGDIR), as on a truly fresh install")
    parser.add_argument("--also", action="append", default=[], metavar="VAR=VALUE",
                        help="one more cold run per repeat with this environment setting (e.g. "
                             "MITML_JAX_PREFETCH=0), interleaved with the others; repeatable")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeat
    with_r = r_available()
    rows = []
    for rep in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, MITML_JAX_COMPILATION_CACHE=os.path.join(tmp, "xla"),
                       PYTHONPATH=os.pathsep.join([ROOT] + ([os.environ["PYTHONPATH"]]
                                                          if os.environ.get("PYTHONPATH") else [])))
            ours = [sys.executable, os.path.join(ROOT, "examples", "introduction.py"),
                    "--plots", os.path.join(tmp, "plots")]
            def fresh(tag):  # MPLCONFIGDIR of a cold run
                return {"MPLCONFIGDIR": os.path.join(tmp, f"mpl_{tag}")} if args.fresh_matplotlib else {}

            extra = []
            for k, setting in enumerate(args.also):
                name, _, value = setting.partition("=")
                other = dict(env, MITML_JAX_COMPILATION_CACHE=os.path.join(tmp, f"xla_also{k}"),
                             **fresh(k), **{name: value})
                extra.append((f"ours, cold cache, {setting}",) + _timed(ours, other))
            cold, cold_cpu, out_cold = _timed(ours, dict(env, **fresh("cold")))
            env.update(fresh("cold"))  # the cached run reuses the font cache the cold run built
            cached, cached_cpu, out_cached = _timed(ours, env)
            r_time, r_cpu, out_r = (_timed(["Rscript", os.path.join(HERE, "r", "introduction.R"), tmp])
                                    if with_r else (float("nan"), float("nan"), ""))
        load = os.getloadavg()[0]
        for name, wall, cpu, out in extra:
            rows.append((rep + 1, name, wall, cpu, r_time, load, _estimate(out, "(Intercept)"),
                         _estimate(out, "ReadDis")))
        rows.append((rep + 1, "ours, cold cache", cold, cold_cpu, r_time, load,
                     _estimate(out_cold, "(Intercept)"), _estimate(out_cold, "ReadDis")))
        rows.append((rep + 1, "ours, cached", cached, cached_cpu, r_time, load,
                     _estimate(out_cached, "(Intercept)"), _estimate(out_cached, "ReadDis")))
        if with_r:
            rows.append((rep + 1, "R (mitml + lme4)", r_time, r_cpu, r_time, load,
                         _estimate(out_r, "(Intercept)"), _estimate(out_r, "ReadDis")))
    print("Introduction vignette end to end (panImpute m = 100, n.burn = 5000, n.iter = 100, 1 chain; "
          "summary; PNG plot; mitmlComplete; 100 lmer fits; testEstimates); wall seconds per process "
          f"on {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end.")
    print()
    print("| repeat | run | wall s | CPU s | R wall s (same repeat) | ours / R | load | (Intercept) (SE) "
          "| ReadDis (SE) |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---|")
    for rep, name, wall, cpu, r_time, load, icpt, slope in rows:
        ratio = f"{wall / r_time:.2f}" if r_time == r_time else "n/a"
        r_txt = f"{r_time:.2f}" if r_time == r_time else "n/a (no Rscript with mitml, lme4)"
        print(f"| {rep} | {name} | {wall:.2f} | {cpu:.2f} | {r_txt} | {ratio} | {load:.1f} | {icpt} | {slope} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
