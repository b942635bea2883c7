"""pan_impute on one GPU: the large study with many chains, the chains sweep, float32 accuracy and
the memory-bandwidth arithmetic of the sweep.

    python benchmarks/gpu.py                  # on a GPU machine: measure, merge into gpu_points.json, report
    python benchmarks/gpu.py                  # without a GPU: report the points measured earlier
    python benchmarks/gpu.py --measure-r      # on the 2-core CPU machine: R's pan at J = 100,000
    python benchmarks/gpu.py --allow-cpu --quick   # test the script itself on a CPU

Sections (each kept in ``gpu_points.json`` with its date; the report prints them all):

``device``     the card (``device_kind``, nvidia-smi, memory), JAX's version, and the card's measured
               device-to-device copy bandwidth (``y = x * a`` over a 2 GiB array, bytes read plus
               bytes written over the median of 20 calls): the ceiling the sweep is held against.
``steady``     pan_impute per iteration on J = 1,000 / 10,000 / 100,000 clusters x 20 rows, 5 targets,
               a random slope, 25% missing (the data of ``scale.py``), 1 to 256 chains, float64 and
               float32: ``pan_speed.time_pan``'s two calls that differ only in ``n_burn``, so the cost of
               a call (model set-up, copying the m imputations to the host) cancels.
``chains``     the Introduction model (studentratings), 1 to 4,096 chains (``scale.run_point``).
``bandwidth``  the J = 100,000, 64-chain sweep alone: one jitted step (all chains) timed over 20
               calls; XLA's own count of the bytes the compiled step reads and writes
               (``cost_analysis()["bytes accessed"]``); the least any sweep must move (each chain's
               completed targets read once and its missing cells written once, the shared design
               read once); each over the measured bandwidth gives a floor, and the step's time over
               the floor is the factor to the bandwidth limit.
``float32``    scale.py's float32 check (standardized Introduction targets, 8 chains, float32
               against float64 posterior means in units of their combined Monte Carlo error),
               and whether the raw-scale float32 run with seed 12 finishes.
``r_100k``     R's panImpute per iteration at J = 100,000 on the CPU machine (``--measure-r``; R is not
               on the GPU machine): the ratio column is R's ms per iteration over ours per chain-iteration.

Everything runs in one process (the GPU and JAX start once); ``device peak MB`` is the device
allocator's peak so far (``memory_stats()["peak_bytes_in_use"]``, monotone over the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

#: R's panImpute at J = 100,000 (2,000,000 rows, 5 targets, random slope) on the 2-core CPU
#: machine, ms per iteration: (t(22 iterations) - t(2 iterations)) / 20, measured 2026-11-26.
R_MS_100K = float("nan")


def device_section(quick):
    import jax
    import jax.numpy as jnp

    dev = jax.devices()[0]
    stats = dev.memory_stats() or {}
    smi = ""
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.memory",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    n = (2**24 if quick else 2**28)  # float64: 128 MiB / 2 GiB
    x = jnp.arange(n, dtype=jnp.float64)
    f = jax.jit(lambda v: v * 1.0000001)
    f(x).block_until_ready()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        f(x).block_until_ready()
        times.append(time.perf_counter() - t0)
    bw = 2 * n * 8 / float(np.median(times)) / 1e9
    return dict(jax=jax.__version__, backend=jax.default_backend(), device_kind=dev.device_kind,
                commit=os.environ.get("MITML_JAX_COMMIT", ""),
                bytes_limit_gb=stats.get("bytes_limit", 0) / 1e9, nvidia_smi=smi, copy_gb_s=bw,
                copy_gib=n * 8 / 2**30)


def device_peak_mb():
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use", 0) / 1e6


def point(spec):
    """One scale.py point in this process, with the device's peak memory."""
    import scale

    out = scale.run_point(dict(spec))
    out["device_peak_mb"] = device_peak_mb()
    return out


def plan(quick):
    """The chains sweep's points (scale.py's Introduction model)."""
    if quick:
        return [dict(model="intro", J=50, r=3, chains=c, n_short=20, n_long=60) for c in (1, 8, 64)]
    return [dict(model="intro", J=50, r=3, chains=c, n_short=100 if c <= 256 else 50, n_long=400 if c <= 256 else 150)
            for c in (1, 8, 64, 256, 1024, 4096)]


def pan_step(J, chains, dtype):
    """(jitted one-iteration step over all chains, its arguments, the data's sizes) for scale.py's
    simulated model, built as ``pan_impute`` builds it."""
    import jax

    from mitml_jax.api_pan import _dtype
    from mitml_jax.kernels import pan
    from mitml_jax.kernels.threefry import fold_in
    from mitml_jax.sampling.keys import chain_keys, seed_key
    from mitml_jax.sampling.run import _chain_layout
    from pan_speed import pan_setup, simulated_data
    from scale import sim_formula

    data = simulated_data(n_clusters=J, n_targets=5)
    dt = _dtype(dtype)
    pa, prior, s0, dims = pan_setup(data, sim_formula(5), chains, dtype=dt)
    step, enter, leave = _chain_layout(pan.build_kernel())
    keys = chain_keys(seed_key(1), np.arange(chains))
    state = jax.jit(enter)(s0, pa)
    jitted = jax.jit(lambda k, t, s, a, p: step(fold_in(k, t), s, a, p))
    sizes = dict(n=int(len(data)), r=5, n_miss=int(dims["n_miss"]), p=2, q=2,
                 itemsize=int(np.dtype(dt).itemsize))
    return jitted, (keys, state, pa, prior), dict(sizes, s0=s0)


def bandwidth_section(quick, bw_gb_s, dtype="float64"):
    import jax

    J, chains = (1000, 8) if quick else (100000, 64)
    jitted, (keys, state, pa, prior), sz = pan_step(J, chains, dtype)
    compiled = jitted.lower(keys, np.uint32(0), state, pa, prior).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_bytes = float(cost.get("bytes accessed", float("nan")))
    flops = float(cost.get("flops", float("nan")))
    s, _ = compiled(keys, np.uint32(0), state, pa, prior)
    jax.block_until_ready(s)
    reps = 5 if quick else 20
    t0 = time.perf_counter()
    for t in range(1, reps + 1):
        s, _ = compiled(keys, np.uint32(t), s, pa, prior)
    jax.block_until_ready(s)
    step_s = (time.perf_counter() - t0) / reps
    it = sz["itemsize"]
    minimal = chains * (sz["n"] * sz["r"] + sz["n_miss"]) * it + sz["n"] * (sz["p"] + sz["q"]) * it
    out = dict(J=J, chains=chains, dtype=dtype, rows=sz["n"], n_miss=sz["n_miss"], step_ms=step_s * 1e3,
               xla_gb=xla_bytes / 1e9, xla_gflop=flops / 1e9, minimal_gb=minimal / 1e9, copy_gb_s=bw_gb_s)
    out["xla_floor_ms"] = xla_bytes / (bw_gb_s * 1e9) * 1e3
    out["minimal_floor_ms"] = minimal / (bw_gb_s * 1e9) * 1e3
    out["factor_xla"] = out["step_ms"] / out["xla_floor_ms"]
    out["factor_minimal"] = out["step_ms"] / out["minimal_floor_ms"]
    out["achieved_gb_s"] = xla_bytes / step_s / 1e9
    # the same sweep inside run_chains' compiled block (records, finiteness checks, loop carry):
    # two runs that differ only in n_burn
    from mitml_jax.kernels import pan
    from mitml_jax.sampling.keys import seed_key
    from mitml_jax.sampling.run import run_chains

    def run(n):
        t0 = time.perf_counter()
        run_chains(pan.build_kernel(), sz["s0"], pa, prior, seed_key(1), n_burn=n, n_iter=1, n_saves=1,
                   transform=pan.transform, save=pan.save_missing, progress=False)
        return time.perf_counter() - t0

    n_small, n_extra = 5, 2 * reps
    run(n_small)  # compiles the block
    # median of three (short, long) pairs: a single pair moved by up to 10% between GPU runs
    diffs = [-run(n_small) + run(n_small + n_extra) for _ in range(3)]
    out["block_ms"] = float(np.median(diffs)) / n_extra * 1e3
    return out


STEADY = [  # (J, chains, dtype, extra iterations in the timed difference)
    (1000, 1, "float64", 400), (1000, 64, "float64", 200), (10000, 1, "float64", 200),
    (10000, 64, "float64", 100), (100000, 1, "float64", 100), (100000, 64, "float64", 100),
    (100000, 64, "float32", 100), (100000, 256, "float32", 40),
]


def steady_section(quick, which=None):
    """pan_impute's steady cost per iteration (``pan_speed.time_pan``: two calls that differ only in
    ``n_burn``, so the per-call cost of building the model and copying the m imputations out
    cancels), for the rows of :data:`STEADY` (``which``: their indices)."""
    from pan_speed import simulated_data, time_pan
    from scale import sim_formula

    plan_rows = [(1000, 1, "float64", 20), (1000, 8, "float32", 20)] if quick else STEADY
    if which is not None:
        plan_rows = [plan_rows[i] for i in which]
    rows, data = [], {}
    for J, chains, dtype, extra in plan_rows:
        if J not in data:
            data = {J: simulated_data(n_clusters=J, n_targets=5)}
        t0 = time.perf_counter()
        per_chain, per_iter, _, _, compile_s, overhead = time_pan(  # first call s, as in gpu_points.json
            data[J], sim_formula(5), chains, extra, dtype=dtype)
        rows.append(dict(J=J, rows=J * 20, chains=chains, dtype=dtype, n_extra=extra, ms_iter=per_iter,
                         ms_iter_chain=per_chain, compile_s=compile_s, call_overhead_s=overhead,
                         wall_s=time.perf_counter() - t0, device_peak_mb=device_peak_mb()))
        print(f"[steady J={J} {chains} chains {dtype}: {rows[-1]['wall_s']:.1f} s]", flush=True)
    return rows


def measure_r(n_burns=(1, 11, 31, 1, 31)):
    """R's panImpute per iteration at J = 100,000 on this (CPU) machine: one R session times calls
    that differ only in ``n.burn``; the slope of time against ``n.burn`` (least squares) is the cost
    of an iteration, free of the model set-up (about 20 s at 2,000,000 rows)."""
    import shutil
    import tempfile

    from pan_speed import simulated_data

    if shutil.which("Rscript") is None:
        raise RuntimeError("Rscript is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sim.csv")
        simulated_data(n_clusters=100000, n_targets=5).to_csv(path, index=False)
        script = (
            "suppressMessages(library(mitml)); d <- read.csv('%s'); "
            "f <- y1 + y2 + y3 + y4 + y5 ~ 1 + x + (1 + x | id); "
            "for (n in c(%s)) { t <- system.time(panImpute(d, formula = f, n.burn = n, n.iter = 1, m = 1, "
            "silent = TRUE))[['elapsed']]; cat(n, t, '\\n') }" % (path, ", ".join(map(str, n_burns)))
        )
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True).stdout
    pairs = np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()])
    slope = np.polyfit(pairs[:, 0], pairs[:, 1], 1)[0]
    return dict(ms_iter=slope * 1e3, runs=pairs.tolist(), load=os.getloadavg()[0],
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=f"{os.cpu_count()} CPU cores")


# ----------------------------------------------------------------------------- report
def _f(v, spec):
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def report(points):
    """Markdown of every section in ``points`` (the contents of gpu_points.json)."""
    out = []
    r = points.get("r_100k", {})
    r_ms = r.get("ms_iter", float("nan"))
    dev = points.get("device", {})
    if dev:
        out.append(f"GPU: **{dev.get('device_kind')}** ({dev.get('nvidia_smi')}), JAX {dev.get('jax')}; device "
                   f"memory for JAX {dev.get('bytes_limit_gb', 0):.1f} GB; measured copy bandwidth (bytes read + "
                   f"written, {dev.get('copy_gib', 0):.0f} GiB array) {dev.get('copy_gb_s', 0):.0f} GB/s; "
                   f"measured {dev.get('date')}" + (f" (package at commit {dev['commit']})" if dev.get("commit") else "")
                   + ".")
    if r:
        out.append(f"\nR's panImpute at J = 100,000 (2,000,000 rows, 5 targets, random slope), one chain on the CPU "
                   f"machine ({r['machine']}): {r_ms:.0f} ms per iteration (slope over n.burn = "
                   f"{', '.join(str(int(x[0])) for x in r['runs'])}; load {r['load']:.1f}; {r['date']}).")
    steady = merge_rows([], points.get("steady"))
    if steady:
        out.append("\n### pan_impute per iteration, simulated data (20 rows per cluster, 5 targets, random slope, "
                   "25% missing)\n\nSteady cost: two calls that differ only in n_burn (the per-call cost of building "
                   "the model and copying the m imputations out cancels; it is the `call s` column).\n")
        out.append("| J | rows | chains | dtype | ms/iter (all chains) | ms/iter/chain | R ms/iter / ours per "
                   "chain-iter | call s | compile s | device peak MB | measured |")
        out.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
        for s in steady:
            ratio = r_ms / s["ms_iter_chain"] if s["J"] == 100000 else float("nan")
            out.append(f"| {s['J']:,} | {s['rows']:,} | {s['chains']} | {s['dtype']} | {s['ms_iter']:.2f} | "
                       f"{s['ms_iter_chain']:.4f} | {_f(ratio, '.0f')} | {s['call_overhead_s']:.1f} | "
                       f"{s['compile_s']:.1f} | {s['device_peak_mb']:.0f} | {s.get('date', '')} |")
        bw = {(b["J"], b["chains"], b["dtype"]): b for b in points.get("bandwidth", [])}
        for s in steady:
            b = bw.get((s["J"], s["chains"], s["dtype"]))
            if b and s["call_overhead_s"] > 0.3 * s["ms_iter"] * s["n_extra"] / 1e3:
                out.append(f"\nJ = {s['J']:,}, {s['chains']} chains, {s['dtype']}: a call's own cost "
                           f"({s['call_overhead_s']:.0f} s: model set-up, the imputations copied to the host) is of the "
                           f"size of the timed difference ({s['n_extra']} iterations), so this row is noisy; the same "
                           f"sweep timed inside run_chains alone (the bandwidth table) takes {b['block_ms']:.0f} ms.")
    chains = points.get("chains")
    if chains:
        out.append("\n### Chains of the Introduction model (studentratings, 750 rows)\n\n"
                   "Block arrival times (scale.py's method: blocks of n_short iterations).\n")
        out.append("| chains | ms/iter (all chains) | ms/iter/chain | compile s | measured |\n|---:|---:|---:|---:|---|")
        for c in chains:
            out.append(f"| {c['chains']} | {c['ms_iter']:.3f} | {c['ms_iter_chain']:.5f} | {c['compile_s']:.1f} | "
                       f"{c.get('date', '')} |")
        by = {c["chains"]: c for c in chains}
        if 8 in by and 256 in by:
            out.append(f"\n256 chains cost {by[256]['ms_iter'] / by[8]['ms_iter']:.2f} x the wall time per iteration "
                       "of 8 chains on this GPU.")
    bws = points.get("bandwidth")
    if bws:
        out.append("\n### The sweep against the card's memory bandwidth\n\n"
                   "One jitted step of all chains (the sweep alone, 20 calls). `XLA bytes`: the compiled step's "
                   "bytes read and written by XLA's count (`cost_analysis()`); `least bytes`: each chain's "
                   "completed targets read once and its missing cells written once, plus the shared design read "
                   "once. Floor = bytes / measured copy bandwidth; `x floor` = step time / floor.\n")
        out.append("| J | chains | dtype | step ms | XLA bytes GB | floor ms | x floor | least bytes GB | floor ms | "
                   "x floor | achieved GB/s | in run_chains ms | measured |\n"
                   "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for b in bws:
            out.append(f"| {b['J']:,} | {b['chains']} | {b['dtype']} | {b['step_ms']:.1f} | {b['xla_gb']:.1f} | "
                       f"{b['xla_floor_ms']:.1f} | {b['factor_xla']:.1f} | {b['minimal_gb']:.2f} | "
                       f"{b['minimal_floor_ms']:.2f} | {b['factor_minimal']:.0f} | {b['achieved_gb_s']:.0f} | "
                       f"{_f(b.get('block_ms'), '.1f')} | {b.get('date', '')} |")
    f32 = points.get("float32")
    if f32:
        out.append(f"\n### float32 against float64 on the GPU\n\nIntroduction model, standardized targets, 8 chains, "
                   f"{f32['draws']} draws per dtype (independent seeds): largest |mean32 - mean64| = {f32['max_z']:.2f} "
                   f"combined MCSE ({f32['worst']}), median {f32['median_z']:.2f}; posterior sd differ by at most "
                   f"{100 * f32['max_sd_ratio']:.1f}%. Raw scale in float32 (seed 12): {f32['raw']}. "
                   f"({f32.get('date', '')})")
    return "\n".join(out)


POINTS = os.path.join(HERE, "gpu_points.json")


def merge_rows(old, new):
    """A section's rows after a new run: new rows replace old ones with the same model, size,
    chains and dtype; other old rows stay (each keeps its own date). Dict sections are replaced."""
    if not (isinstance(old, list) and isinstance(new, list)):
        return new

    def key(row):
        return tuple(row.get(k) for k in ("model", "J", "chains", "dtype"))

    fresh = {key(r) for r in new}
    rows = [r for r in old if key(r) not in fresh] + list(new)
    return sorted(rows, key=lambda r: (r.get("dtype") == "float32", r.get("J", 0), r.get("chains", 0)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--allow-cpu", action="store_true", help="run even without a GPU (to test the script)")
    parser.add_argument("--json", default=None, help="also write this run's numbers to this JSON file")
    parser.add_argument("--points", default=POINTS, help="JSON file of measured sections (merged, then reported)")
    parser.add_argument("--measure-r", action="store_true", help="on the CPU machine: time R's pan at J = 100,000")
    parser.add_argument("--merge", nargs="*", default=[], help="JSON files of earlier runs (--json) to merge in")
    parser.add_argument("--steady-rows", type=int, nargs="*", default=None, help="indices into STEADY")
    parser.add_argument("--only", nargs="+", default=["device", "chains", "steady", "bandwidth", "float32"])
    args = parser.parse_args(argv)
    os.environ.setdefault("MITML_JAX_COMPILATION_CACHE", "0")  # compile times are real
    import jax

    import mitml_jax  # noqa: F401  (enables x64)

    points = {}
    if os.path.exists(args.points):
        with open(args.points) as handle:
            points = json.load(handle)
    for path in args.merge:
        with open(path) as handle:
            points.update({k: v for k, v in json.load(handle).items() if k in SECTIONS})
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {}

    def save():
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=1, default=str)
        if args.points and not args.quick:
            with open(args.points, "w") as handle:
                json.dump(points, handle, indent=1, default=str)

    if args.measure_r:
        points["r_100k"] = measure_r()
        save()
    elif jax.default_backend() != "gpu" and not args.allow_cpu:
        if not points:
            print(f"No GPU (JAX backend: {jax.default_backend()}) and no measured points; nothing to report.")
            return 75
        print(f"(This machine has no GPU; the rows were measured on the GPU named below, with their dates.)\n")
    else:
        def guarded(name, fn):
            t0 = time.perf_counter()
            try:
                value = fn()
            except Exception as err:  # a section that fails must not lose the others
                traceback.print_exc()
                print(f"[{name}: FAILED after {time.perf_counter() - t0:.1f} s]", flush=True)
                return
            print(f"[{name}: {time.perf_counter() - t0:.1f} s]", flush=True)
            stamp = lambda d: dict(d, date=date) if isinstance(d, dict) else d  # noqa: E731
            results[name] = [stamp(v) for v in value] if isinstance(value, list) else stamp(value)
            points[name] = merge_rows(points.get(name), results[name])
            save()

        guarded("device", lambda: device_section(args.quick))
        bw = points["device"]["copy_gb_s"]
        if "chains" in args.only:
            guarded("chains", lambda: [point(spec) for spec in plan(args.quick)])
        if "steady" in args.only:
            guarded("steady", lambda: steady_section(args.quick, args.steady_rows))
        if "bandwidth" in args.only:
            guarded("bandwidth", lambda: [bandwidth_section(args.quick, bw, dt) for dt in ("float64", "float32")])
        if "float32" in args.only:
            import scale

            guarded("float32", lambda: scale.float32_check(chains=8, n_burn=100 if args.quick else 500,
                                                           n_iter=100 if args.quick else 500))
    print(report(points))
    return 0


SECTIONS = ("device", "chains", "steady", "bandwidth", "float32", "r_100k")

if __name__ == "__main__":
    sys.exit(main())
