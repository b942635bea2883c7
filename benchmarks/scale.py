"""Scale of pan_impute: cost against clusters J, chains and targets; float32 against float64.

Sweeps (each point in a FRESH subprocess, so its peak RSS is its own):
  J:       J = 100, 1,000, 10,000, 100,000 clusters x 20 rows, 5 targets, a random slope
           (``y1 + ... + y5 ~ 1 + x + (1 + x | id)``), 25% of cells missing (MCAR); the
           J = 100,000 point runs 1,000 iterations (2,000,000 rows, 2.5 million missing cells).
  chains:  1, 8, 64, 256, 1024 chains of the Introduction model
           (``ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)`` on studentratings).
  targets: 1, 5, 10, 20 targets on J = 1,000 (random slope; r = 5 is the J sweep's point).

In every point process pan_impute is called with the same shapes: a warm-up of ``n_short``
iterations that compiles, then a run of ``n_long`` iterations in blocks of ``n_short``, twice (the
faster counts; once for J = 100,000). ``ms/iter`` is the wall time of one iteration of all chains,
from the times at which blocks reach the host (blocks are dispatched one ahead, so the gap
between two arrivals is one block's compute), free of the per-call cost (model spec, padding,
copying the imputations out); ``total s`` is the long run's wall time (everything but
compilation); ``compile s`` is the warm-up's time less its ``n_short`` iterations and the
per-call cost (with the persistent compilation cache on, a shape compiled before is loaded); ``peak MB`` is ``ru_maxrss`` of the point's process. Draws stream to the
host in blocks, so memory grows with J (the data) but not with the iterations.

float32: the Introduction model with 8 chains in float32 and float64, posterior means of beta,
Psi and Sigma compared in units of their Monte Carlo standard error (batch means).

The machine is shared: the 1-minute load average is printed with every point (os.getloadavg).

Usage: ``python benchmarks/scale.py [--quick] [--only J chains targets float32] [--reuse]``.
``--reuse`` keeps the points of ``benchmarks/scale_points.json`` measured earlier (each keeps
its own date and load) and measures only the missing ones.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "scale_points.json")
INTRO = "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)"


def sim_formula(n_targets):
    return " + ".join(f"y{i + 1}" for i in range(n_targets)) + " ~ 1 + x + (1 + x | id)"


# ----------------------------------------------------------------------------- one point (child)
def run_point(point):
    """Measure one point in this process; returns a dict (printed as JSON by the child)."""
    from mitml_jax import load_studentratings, pan_impute

    if point["model"] == "intro":
        data, formula = load_studentratings(), INTRO
    else:
        from pan_speed import simulated_data  # the same simulator as pan_speed.py's model (b)

        data = simulated_data(n_clusters=point["J"], n_targets=point["r"])
        formula = sim_formula(point["r"])
    chains, n_short, n_long = point["chains"], point["n_short"], point["n_long"]
    # Benchmark instrumentation: blocks of n_short iterations (instead of ~1,000) and a progress
    # bar that records when each block reaches the host. Blocks are dispatched one ahead, so the
    # time between two block arrivals is the compute time of one block, free of the per-call
    # cost (model spec, padding, copying the imputations out).
    from mitml_jax.sampling import run as run_module

    run_module.BLOCK_ITERATIONS = n_short
    arrivals = []

    class Recorder:
        def __init__(self, total, enabled=True, desc=""):
            arrivals.clear()

        def update(self, n):
            arrivals.append((time.perf_counter(), n))

        def close(self):
            pass

    run_module.ProgressBar = Recorder

    def call(n_total):
        t0 = time.perf_counter()
        pan_impute(data, formula, n_burn=n_total - n_short, n_iter=n_short, m=chains, chains=chains,
                   seed=1, progress=False, dtype=point.get("dtype"))
        total = time.perf_counter() - t0
        if len(arrivals) < 2:
            return total, float("nan")
        (t_first, _), (t_last, _) = arrivals[0], arrivals[-1]
        return total, (t_last - t_first) / sum(n for _, n in arrivals[1:])

    t_warm, _ = call(n_short)
    # the machine is shared: the best of two runs (one for the big J = 100,000 run)
    repeats = 1 if point.get("J", 0) >= 100000 else 2
    runs = [call(n_long) for _ in range(repeats)]
    t_long = min(t for t, _ in runs)
    per_iter = min(p for _, p in runs)
    t_short = t_long - per_iter * (n_long - n_short)  # the same call without its extra blocks
    return dict(
        point,
        rows=int(len(data)),
        missing=int(data[formula.split("~")[0].replace(" ", "").split("+")].isna().sum().sum()),
        ms_iter=per_iter * 1e3,
        ms_iter_chain=per_iter * 1e3 / chains,
        total_s=t_long,
        compile_s=max(t_warm - t_short, 0.0),
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        load=os.getloadavg()[0],
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def measure(point):
    """Run :func:`run_point` in a fresh subprocess (its own peak RSS)."""
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--point", json.dumps(point)],
                          capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("POINT ")]
    if proc.returncode != 0 or not lines:
        return dict(point, error=(proc.stderr or proc.stdout)[-500:].replace("\n", " "))
    out = json.loads(lines[-1][6:])
    out["load"] = max(out["load"], load_before)
    return out


# ----------------------------------------------------------------------------- sweeps (parent)
def plan(quick, J_sizes=None):
    """Points of every sweep: (sweep name, point dict); n_long is a multiple of n_short."""
    J_sizes = J_sizes or ([100, 1000, 10000] if quick else [100, 1000, 10000, 100000])
    chain_counts = [1, 8, 64] if quick else [1, 8, 64, 256, 1024]
    targets = [1, 5] if quick else [1, 5, 10, 20]
    iterations = {  # J -> (n_short, n_long)
        100: (100, 1000), 1000: (50, 400), 10000: (25, 125), 100000: (50, 1000),
    }
    points = []
    for J in J_sizes:
        short, long = iterations.get(J, (50, 250))
        if quick:
            short, long = short // 2, min(long // 2, 250)
        points.append(("J", dict(model="sim", J=J, r=5, chains=1, n_short=short, n_long=long)))
        if J == 100000 and not quick:  # a short second run: per-iteration cost under the current load
            points.append(("J", dict(model="sim", J=J, r=5, chains=1, n_short=short, n_long=250)))
    for c in chain_counts:
        short, long = (100, 400) if c <= 64 else (50, 200)
        if quick:
            short, long = short // 2, long // 2
        points.append(("chains", dict(model="intro", J=50, r=3, chains=c, n_short=short, n_long=long)))
    for r in targets:
        short, long = iterations[1000]
        if quick:
            short, long = short // 2, long // 2
        points.append(("targets", dict(model="sim", J=1000, r=r, chains=1, n_short=short, n_long=long)))
    return points


def load_cache(path):
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def save_point(path, key, result):
    """Add one point to the cache file (re-read first, so concurrent runs do not drop points)."""
    cache = load_cache(path)
    cache[key] = result
    with open(path + ".tmp", "w") as handle:
        json.dump(cache, handle, indent=1)
    os.replace(path + ".tmp", path)


def key_of(point):
    return json.dumps({k: point[k] for k in sorted(point)}, sort_keys=True)


def table(rows, columns):
    head = "| " + " | ".join(c for c, _ in columns) + " |"
    sep = "|" + "|".join("---:" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r) for _, fmt in columns) + " |" for r in rows]
    return "\n".join([head, sep] + body)


COLUMNS = [
    ("J", lambda r: f"{r['J']:,}"),
    ("rows", lambda r: f"{r.get('rows', 0):,}"),
    ("targets", lambda r: str(r["r"])),
    ("chains", lambda r: str(r["chains"])),
    ("iterations", lambda r: str(r["n_long"])),
    ("ms/iter", lambda r: f"{r['ms_iter']:.2f}"),
    ("ms/iter/chain", lambda r: f"{r['ms_iter_chain']:.4f}"),
    ("total s", lambda r: f"{r['total_s']:.1f}"),
    ("compile s", lambda r: f"{r['compile_s']:.1f}"),
    ("peak MB", lambda r: f"{r['peak_mb']:.0f}"),
    ("load", lambda r: f"{r['load']:.1f}"),
    ("measured", lambda r: r["date"]),
]


def linear_fit(rows):
    """Least-squares ms/iter = a + b J and the log-log slope over the two largest J (the fastest
    row of each J, i.e. the one least slowed by the shared machine's load)."""
    best = {}
    for r in rows:
        best[r["J"]] = min(best.get(r["J"], np.inf), r["ms_iter"])
    J = np.array(sorted(best), float)
    ms = np.array([best[j] for j in sorted(best)], float)
    if len(J) < 2:
        return float("nan"), float("nan"), float("nan")
    b, a = np.polyfit(J, ms, 1)
    loglog = np.log(ms[-1] / ms[-2]) / np.log(J[-1] / J[-2])
    return a, b, loglog


def plots(by_sweep):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [
        ("J", "J", "clusters J (20 rows, 5 targets, random slope)", "scale_clusters.png", "ms_iter"),
        ("chains", "chains", "chains (Introduction model)", "scale_chains.png", "ms_iter"),
        ("targets", "r", "targets (J = 1,000, random slope)", "scale_targets.png", "ms_iter"),
    ]
    written = []
    for sweep, xkey, xlabel, name, ykey in specs:
        rows = [r for r in by_sweep.get(sweep, []) if "error" not in r]
        if len(rows) < 2:
            continue
        x = np.array([r[xkey] for r in rows], float)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        axes[0].loglog(x, [r[ykey] for r in rows], "o-", label="ms per iteration (all chains)")
        if sweep == "chains":
            axes[0].loglog(x, [r["ms_iter_chain"] for r in rows], "s--", label="ms per iteration per chain")
        if sweep == "J":
            a, b, _ = linear_fit(rows)
            grid = np.geomspace(x.min(), x.max(), 50)
            axes[0].loglog(grid, a + b * grid, ":", label=f"fit {a:.1f} + {b * 1e3:.2f} ms x J/1000")
        axes[0].set_xlabel(xlabel)
        axes[0].set_ylabel("ms")
        axes[0].legend(fontsize=7)
        axes[1].semilogx(x, [r["peak_mb"] for r in rows], "o-")
        axes[1].set_xlabel(xlabel)
        axes[1].set_ylabel("peak RSS of the process (MB)")
        fig.suptitle(f"pan_impute on CPU: cost against {sweep} (shared 2-core machine)", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(HERE, name), dpi=90)
        plt.close(fig)
        written.append(name)
    return written


def standardized_intro():
    """studentratings with the three Introduction targets as z-scores (float32-friendly scale)."""
    from mitml_jax import load_studentratings

    data = load_studentratings()
    for col in ("ReadAchiev", "ReadDis", "SchClimate"):
        data[col] = (data[col] - data[col].mean()) / data[col].std()
    return data


def float32_check(chains=8, n_burn=500, n_iter=500):
    """float32 vs float64 on the Introduction model: max |mean difference| / combined MCSE.

    The comparison uses standardized targets. The raw scale with seed 12 is also run in float32
    and whether it finished is reported: it used to stop at iteration 65, when a float32 uniform
    rounded to 1.0 (fixed in kernels/noise.py; tests/test_scale_float32.py keeps it as a regression
    test).
    """
    from mitml_jax import load_studentratings, pan_impute
    from mitml_jax.errors import SamplerFailure
    from mitml_jax.results.posterior import posterior_summary

    kwargs = dict(n_burn=n_burn, n_iter=n_iter, m=chains, chains=chains, progress=False)
    try:
        pan_impute(load_studentratings(), INTRO, seed=12, dtype="float32", **kwargs)
        raw = "finished"
    except SamplerFailure as err:
        raw = "FAILED: " + str(err).split(". Remedies")[0]
    data = standardized_intro()
    out = {}
    for dt, seed in (("float64", 11), ("float32", 13)):
        t0 = time.perf_counter()
        imp = pan_impute(data, INTRO, seed=seed, dtype=dt, **kwargs)
        out[dt] = (posterior_summary(imp), time.perf_counter() - t0)
    s64, s32 = out["float64"][0], out["float32"][0]
    z = (s32["mean"] - s64["mean"]).abs() / np.sqrt(s32["mcse"] ** 2 + s64["mcse"] ** 2)
    worst = s64.assign(z=z).sort_values("z").iloc[-1]
    return dict(max_z=float(z.max()), median_z=float(z.median()), n=int(len(z)), raw=raw,
                max_sd_ratio=float((s32["sd"] / s64["sd"] - 1).abs().max()),
                worst=f"{worst['par']}[{worst['row']},{worst['col']}]", t64=out["float64"][1],
                t32=out["float32"][1], draws=chains * n_iter)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (J <= 10,000, chains <= 64)")
    parser.add_argument("--only", nargs="+", default=["J", "chains", "targets", "float32"],
                        choices=["J", "chains", "targets", "float32"])
    parser.add_argument("--reuse", action="store_true", help="keep points already in scale_points.json")
    parser.add_argument("--cached-only", action="store_true",
                        help="measure nothing: report the points of the cache, list the missing ones")
    parser.add_argument("--cache", default=CACHE, help="JSON file of measured points")
    parser.add_argument("--J", type=int, nargs="+", default=None, help="cluster counts of the J sweep")
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        print("POINT " + json.dumps(run_point(json.loads(args.point))), flush=True)
        return 0

    cache = load_cache(args.cache)
    by_sweep = {}
    missing = []
    for sweep, point in plan(args.quick, args.J):
        if sweep not in args.only:
            continue
        k = key_of(point)
        if args.cached_only and k not in cache:
            missing.append(f"{sweep} {point}")
            continue
        if not ((args.reuse or args.cached_only) and k in cache and "error" not in cache[k]):
            cache[k] = measure(point)
            print(f"measured {sweep} {point} -> {cache[k].get('ms_iter', cache[k].get('error'))}",
                  file=sys.stderr, flush=True)
            save_point(args.cache, k, cache[k])
        by_sweep.setdefault(sweep, []).append(cache[k])

    print(f"Load average (1 min) now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine: "
          "timings are noisy; each row has its own load and date).\n")
    for item in missing:
        print(f"Not measured (not in the cache of this report): {item}\n")
    for sweep, title in (("J", "Cost against clusters J"), ("chains", "Cost against chains"),
                         ("targets", "Cost against targets")):
        rows = by_sweep.get(sweep, [])
        if not rows:
            continue
        print(f"### {title}\n")
        good = [r for r in rows if "error" not in r]
        print(table(good, COLUMNS))
        for r in rows:
            if "error" in r:
                print(f"\nFAILED point {key_of(r)}: {r['error']}")
        print()
        if sweep == "J" and len(good) >= 2:
            a, b, loglog = linear_fit(good)
            print(f"Linear fit (fastest row per J): ms/iter = {a:.2f} + {b * 1e3:.3f} x (J / 1000); log-log "
                  f"slope between the two largest J: {loglog:.2f} (1 = linear).")
            big = max(good, key=lambda r: (r["J"], r["n_long"]))
            print(f"J = {big['J']:,}: {big['n_long']} iterations in {big['total_s']:.0f} s, peak RSS "
                  f"{big['peak_mb']:.0f} MB.\n")
        if sweep == "chains":
            c = {r["chains"]: r for r in good}
            if 8 in c and 256 in c:
                ratio = c[256]["ms_iter"] / c[8]["ms_iter"]
                print(f"256 chains cost {ratio:.2f} x the wall time per iteration of 8 chains "
                      f"(target <= 4): {'met' if ratio <= 4 else 'NOT met'}.\n")
    if "float32" in args.only:
        settings = dict(n_iter=100, n_burn=100) if args.quick else dict(n_iter=500, n_burn=500)
        k = key_of(dict(sweep="float32", **settings))
        if not ((args.reuse or args.cached_only) and k in cache):
            cache[k] = dict(float32_check(**settings), load=os.getloadavg()[0],
                            date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
            save_point(args.cache, k, cache[k])
        f = cache[k]
        print("### float32 against float64 (Introduction model, 8 chains)\n")
        print(f"Standardized targets: {f['n']} entries of beta, Psi, Sigma over {f['draws']} draws per dtype "
              f"(independent seeds): largest |mean32 - mean64| = {f['max_z']:.2f} combined MCSE ({f['worst']}), "
              f"median {f['median_z']:.2f}; posterior sd differ by at most {100 * f['max_sd_ratio']:.1f}%. "
              f"Wall time float64 {f['t64']:.1f} s, float32 {f['t32']:.1f} s (CPU, compile included; load "
              f"{f['load']:.1f}; measured {f['date']}). Raw scale in float32 (seed 12): {f['raw']}.\n")
    written = plots(by_sweep)
    if written:
        print("Plots: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
