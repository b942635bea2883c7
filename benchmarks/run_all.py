"""Run every benchmark script and write benchmarks/results.md.

    python benchmarks/run_all.py            # all benchmarks, full sizes
    python benchmarks/run_all.py --quick    # smaller sizes (each script's --quick)
    python benchmarks/run_all.py --only pan_speed lmm_speed

Each script in this folder prints a Markdown table (ms per iteration, chains, data size, ratio to
R when ``Rscript`` with mitml is installed). This driver runs them one after another in fresh
processes (so compilation and memory are measured per script), records the date, the machine
(CPU, cores, JAX backend and devices) and the wall time of each, and collects the tables and any
PNG plots the scripts wrote into ``benchmarks/results.md``. Scripts run with the persistent
compilation cache off (``MITML_JAX_COMPILATION_CACHE=0`` unless set), so compile times are real.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = [
    "pan_speed",
    "jomo_speed",
    "lmm_speed",
    "summary_speed",
    "scale",
    "end_to_end",
    "gpu",
]


def machine_description() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    rscript = shutil.which("Rscript")
    return (
        f"{cpu}; {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"jax {jax.__version__} on {jax.default_backend()} ({devices}); "
        f"R: {'Rscript found' if rscript else 'not installed'}"
    )


#: scripts that accept --reuse (keep points measured earlier, each with its own date)
REUSABLE = {"scale"}


def run_script(name: str, quick: bool, reuse: bool = False) -> tuple[str, float, int]:
    path = os.path.join(HERE, f"{name}.py")
    command = [sys.executable, path] + (["--quick"] if quick else [])
    command += ["--reuse"] if (reuse and name in REUSABLE) else []
    command += ["--cached-only"] if (reuse == "cached-only" and name in REUSABLE) else []
    start = time.perf_counter()
    # "compile s" columns must be compile times: no persistent compilation cache unless the user
    # chose one (end_to_end.py sets its own per run: cold and cached)
    env = dict(os.environ)
    env.setdefault("MITML_JAX_COMPILATION_CACHE", "0")
    result = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(HERE), env=env)
    elapsed = time.perf_counter() - start
    output = result.stdout
    if result.returncode != 0:
        output += "\n\nFAILED (exit %d):\n%s" % (result.returncode, result.stderr[-3000:])
    return output, elapsed, result.returncode


def previous_sections(path: str) -> tuple[str, dict]:
    """(stamp line, script name -> section text) of an existing results.md (for --only runs)."""
    if not os.path.exists(path):
        return "", {}
    with open(path) as handle:
        text = handle.read()
    stamp = next((line for line in text.splitlines() if line.startswith("Measured ")), "")
    sections = {}
    for chunk in text.split("\n## ")[1:]:
        name, _, body = chunk.partition("\n")
        if name.strip() in SCRIPTS:
            sections[name.strip()] = body.strip()
    return stamp, sections


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="scale.py keeps points already measured (scale_points.json, dated rows)")
    parser.add_argument("--cached-only", action="store_true",
                        help="scale.py measures nothing and reports the points of scale_points.json")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    args = parser.parse_args(argv)

    names = [n for n in SCRIPTS if os.path.exists(os.path.join(HERE, f"{n}.py"))]
    if args.only:
        names = [n for n in names if n in args.only]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"Measured {stamp} on: {machine_description()}.",
        f"Command: `python benchmarks/run_all.py{' --quick' if args.quick else ''}"
        f"{' --only ' + ' '.join(args.only) if args.only else ''}{' --reuse' if args.reuse else ''}"
        f"{' --cached-only' if args.cached_only else ''}`.",
        "",
    ]
    old_stamp, old = previous_sections(args.out) if args.only else ("", {})
    failed = 0
    for name in [n for n in SCRIPTS if n in old and n not in names]:
        body = old[name]
        if not body.startswith("(Kept from"):  # kept twice: keep the stamp of the run that measured it
            body = f"(Kept from the previous results.md; {old_stamp.rstrip('.')}.)\n\n" + body
        lines += [f"## {name}", "", body, ""]
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        output, elapsed, code = run_script(name, args.quick, "cached-only" if args.cached_only else args.reuse)
        failed += code != 0
        lines += [f"## {name}", "", f"Wall time of the script: {elapsed:.1f} s.", "", output.strip(), ""]
    pngs = sorted(f for f in os.listdir(HERE) if f.endswith(".png"))
    if pngs:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in pngs] + [""]
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
