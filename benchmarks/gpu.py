"""pan_impute on one GPU: the large study with many chains, the chains sweep, float32 accuracy and
the memory-bandwidth arithmetic of the sweep.

    python benchmarks/gpu.py [--quick] [--json OUT.json] [--allow-cpu] [--only ...]

Sections (each printed as a Markdown table as soon as it is measured):

``device``     the card (``device_kind``, memory), JAX's version, and the card's measured
               device-to-device copy bandwidth (``y = x * a`` over a 2 GiB array, bytes read plus
               bytes written over the median of 20 calls): the ceiling the sweep is held against.
``J``          J = 1,000 / 10,000 / 100,000 clusters x 20 rows, 5 targets, a random slope (the data of
               ``scale.py``), 1 and 64 chains, float64; J = 100,000 also 256 chains and float32.
``chains``     the Introduction model (studentratings), 1 to 4,096 chains.
``bandwidth``  the J = 100,000, 64-chain sweep alone: one jitted step (all chains) timed over 20
               calls; XLA's own count of the bytes the compiled step reads and writes
               (``cost_analysis()["bytes accessed"]``); the least any sweep must move (each chain's
               completed targets read once and its missing cells written once, the shared
               design read once); each over the measured bandwidth gives a floor, and the step's
               time over the floor is the factor to the bandwidth limit.
``float32``    scale.py's float32 check (standardized Introduction targets, 8 chains, float32
               against float64 posterior means in units of their combined Monte Carlo error),
               and whether the raw-scale float32 run with seed 12 finishes.

Every point runs in this process (the GPU and JAX start once): ``pan_impute`` with the same shapes
first as a warm-up that compiles, then timed from the arrival times of the blocks of iterations
(``scale.run_point``); ``device peak MB`` is the device allocator's peak so far
(``memory_stats()["peak_bytes_in_use"]``, monotone over the run: the points run in increasing size).
R's time per iteration for the J = 100,000 model on 2 CPU cores is measured on the CPU machine
(R is not on the GPU machine) and passed with ``--r-ms-100k``; the ratio is R's ms per iteration
over ours per chain-iteration.

Without a GPU the script says so and exits 0; ``--allow-cpu --quick`` runs it on the CPU (to test
the script itself).
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
    J_pts, chain_pts = [], []
    if quick:
        for J, c in ((100, 1), (100, 8), (1000, 8)):
            J_pts.append(dict(model="sim", J=J, r=5, chains=c, n_short=10, n_long=30))
        for c in (1, 8, 64):
            chain_pts.append(dict(model="intro", J=50, r=3, chains=c, n_short=20, n_long=60))
        return J_pts, chain_pts
    for J, c, short, long in ((1000, 1, 50, 300), (1000, 64, 25, 100), (10000, 1, 50, 200),
                              (10000, 64, 10, 40), (100000, 1, 20, 60), (100000, 64, 10, 30)):
        J_pts.append(dict(model="sim", J=J, r=5, chains=c, n_short=short, n_long=long))
    J_pts.append(dict(model="sim", J=100000, r=5, chains=64, n_short=10, n_long=30, dtype="float32"))
    J_pts.append(dict(model="sim", J=100000, r=5, chains=256, n_short=5, n_long=15, dtype="float32"))
    for c in (1, 8, 64, 256, 1024, 4096):
        short, long = (100, 400) if c <= 256 else (50, 150)
        chain_pts.append(dict(model="intro", J=50, r=3, chains=c, n_short=short, n_long=long))
    return J_pts, chain_pts


def pan_step(J, chains, dtype):
    """(jitted one-iteration step over all chains, its arguments, the data's sizes) for scale.py's
    simulated model, built as ``pan_impute`` builds it."""
    import jax

    from mitml_jax.api_pan import _dtype
    from mitml_jax.arrays.build import build_arrays
    from mitml_jax.kernels import pan
    from mitml_jax.kernels.threefry import fold_in
    from mitml_jax.priors import check_pan_prior, to_pan_prior
    from mitml_jax.sampling.keys import chain_keys, seed_key
    from mitml_jax.sampling.run import _chain_layout
    from mitml_jax.spec.model_spec import build_spec
    from pan_speed import simulated_data
    from scale import sim_formula

    data = simulated_data(n_clusters=J, n_targets=5)
    dt = _dtype(dtype)
    spec = build_spec(data, formula=sim_formula(5), kind="pan")
    arrays, layout = build_arrays(spec.design(data), dtype=dt)
    dims = layout.dims
    prior = to_pan_prior(check_pan_prior(None, dims["r"], dims["q"]), dims["G"], dt)
    pa = pan.prepare_pan_arrays(arrays, spec.fixed_names)
    s0 = pan.init(pa, prior)
    s0 = jax.tree_util.tree_map(lambda a: np.repeat(np.asarray(a)[None], chains, axis=0), s0)
    step, enter, leave = _chain_layout(pan.build_kernel())
    keys = chain_keys(seed_key(1), np.arange(chains))
    state = jax.jit(enter)(s0, pa)
    jitted = jax.jit(lambda k, t, s, a, p: step(fold_in(k, t), s, a, p))
    sizes = dict(n=int(len(data)), r=5, n_miss=int(dims["n_miss"]), p=2, q=2,
                 itemsize=int(np.dtype(dt).itemsize))
    return jitted, (keys, state, pa, prior), sizes


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
    return out


def fmt_points(rows, r_ms):
    head = ("| model | J | rows | chains | dtype | ms/iter (all chains) | ms/iter/chain | R ms/iter | R / ours per chain-iter "
            "| compile s | device peak MB |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['J']:,} | | {r['chains']} | {r.get('dtype') or 'float64'} | "
                         f"ERROR: {r['error'][:120]} | | | | | |")
            continue
        rr = r_ms if (r["model"] == "sim" and r["J"] == 100000) else float("nan")
        ratio = rr / r["ms_iter_chain"] if np.isfinite(rr) else float("nan")
        lines.append(
            f"| {r['model']} | {r['J']:,} | {r['rows']:,} | {r['chains']} | {r.get('dtype') or 'float64'} | "
            f"{r['ms_iter']:.3f} | {r['ms_iter_chain']:.4f} | {'' if not np.isfinite(rr) else f'{rr:.0f}'} | "
            f"{'' if not np.isfinite(ratio) else f'{ratio:.0f}x'} | {r['compile_s']:.1f} | {r['device_peak_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--allow-cpu", action="store_true", help="run even without a GPU (to test the script)")
    parser.add_argument("--json", default=None, help="write every measured number to this JSON file")
    parser.add_argument("--r-ms-100k", type=float, default=R_MS_100K,
                        help="R's panImpute ms per iteration at J = 100,000 on the CPU machine")
    parser.add_argument("--only", nargs="+", default=["device", "J", "chains", "bandwidth", "float32"])
    args = parser.parse_args(argv)
    os.environ.setdefault("MITML_JAX_COMPILATION_CACHE", "0")  # compile times are real
    import jax

    import mitml_jax  # noqa: F401  (enables x64)

    if jax.default_backend() != "gpu" and not args.allow_cpu:
        print(f"No GPU (JAX backend: {jax.default_backend()}); nothing measured. Use --allow-cpu to test the script.")
        return 0
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}

    def dump():
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=1, default=str)

    def guarded(name, fn):
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as err:  # a section that fails must not lose the others
            traceback.print_exc()
            value = {"error": f"{type(err).__name__}: {err}"}
        print(f"[{name}: {time.perf_counter() - t0:.1f} s]", flush=True)
        results[name] = value
        dump()
        return value

    dev = guarded("device", lambda: device_section(args.quick))
    bw = dev.get("copy_gb_s", float("nan"))
    print(f"\n## GPU: {dev.get('device_kind')} (JAX {dev.get('jax')}, {dev.get('backend')}), measured "
          f"{results['date']}\n\nnvidia-smi: {dev.get('nvidia_smi')}; device memory for JAX "
          f"{dev.get('bytes_limit_gb', 0):.1f} GB; copy bandwidth (read + write) {bw:.0f} GB/s over a "
          f"{dev.get('copy_gib', 0):.2f} GiB array.\n", flush=True)
    J_pts, chain_pts = plan(args.quick)
    for name, pts in (("J", J_pts), ("chains", chain_pts)):
        if name not in args.only:
            continue
        rows = []
        for spec in pts:
            rows.append(guarded(f"{name} {json.dumps(spec)}", lambda spec=spec: point(spec)) | dict(spec))
        results[name] = rows
        print(fmt_points(rows, args.r_ms_100k), flush=True)
        if name == "chains":
            by = {r["chains"]: r for r in rows if "error" not in r}
            if 8 in by and 256 in by:
                print(f"\n256 chains cost {by[256]['ms_iter'] / by[8]['ms_iter']:.2f} x the wall time per iteration "
                      f"of 8 chains (CPU target <= 4).", flush=True)
    if "bandwidth" in args.only:
        rows = [guarded(f"bandwidth {dt}", lambda dt=dt: bandwidth_section(args.quick, bw, dt))
                for dt in ("float64", "float32")]
        print("\n| J | chains | dtype | step ms | XLA bytes GB | floor ms (XLA bytes) | x floor | least bytes GB "
              "| floor ms (least bytes) | x floor | achieved GB/s |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b in rows:
            if "error" in b:
                print(f"| | | | ERROR: {b['error'][:160]} | | | | | | | |")
                continue
            print(f"| {b['J']:,} | {b['chains']} | {b['dtype']} | {b['step_ms']:.2f} | {b['xla_gb']:.2f} | "
                  f"{b['xla_floor_ms']:.2f} | {b['factor_xla']:.1f} | {b['minimal_gb']:.2f} | "
                  f"{b['minimal_floor_ms']:.2f} | {b['factor_minimal']:.1f} | {b['achieved_gb_s']:.0f} |", flush=True)
    if "float32" in args.only:
        import scale

        f32 = guarded("float32", lambda: scale.float32_check(chains=8, n_burn=100 if args.quick else 500,
                                                             n_iter=100 if args.quick else 500))
        if "error" not in f32:
            print(f"\nfloat32 vs float64 (Introduction model, standardized targets, {f32['draws']} draws per dtype): "
                  f"largest |mean32 - mean64| = {f32['max_z']:.2f} combined MCSE ({f32['worst']}), median "
                  f"{f32['median_z']:.2f}, sd differ by at most {100 * f32['max_sd_ratio']:.1f}%; wall float64 "
                  f"{f32['t64']:.1f} s, float32 {f32['t32']:.1f} s; raw scale float32 seed 12: {f32['raw']}.", flush=True)
    dump()
    return 0


if __name__ == "__main__":
    sys.exit(main())
