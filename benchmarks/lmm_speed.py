"""Speed of the batched ``lmer`` against statsmodels MixedLM (and lme4 when R is present).

    python benchmarks/lmm_speed.py            # m = 20 and m = 100
    python benchmarks/lmm_speed.py --quick    # m = 20 only, fewer statsmodels fits
    python benchmarks/lmm_speed.py --full-statsmodels   # fit statsmodels to every data set

Model: the Introduction analysis model ``ReadAchiev ~ 1 + ReadDis + (1 | ID)`` (REML) on
studentratings (750 students, 50 schools). The m completed data sets are made by filling the 153
missing ``ReadDis`` values with random draws from the observed values (the analysis cost does not
depend on how the values were imputed).

Reported per m (one Markdown table; seconds for all m fits):
- ``lmer, first call`` / ``lmer, warm``: ``lmer`` as a user calls it: batches this small are
  fitted by the NumPy optimiser (``batch.use_host``), nothing is compiled. Warm is the median of
  repeated calls (the whole call: stacking the data frames, model matrices, cross-products, the
  batched fit, results);
- ``lmer XLA path, first call`` / ``warm``: the same with the compiled path forced
  (``batch.HOST_MAX_WORK = -1``, as for larger batches); the first call with this m in the
  process includes tracing and XLA compilation;
- ``statsmodels MixedLM``: ``smf.mixedlm(...).fit(reml=True)`` per data set; by default timed on
  at most 20 data sets and scaled to m (marked "extrapolated");
- ``lme4 (R)``: ``lmer`` in a loop over the data sets when ``Rscript`` with lme4 is installed,
  otherwise n/a.
The last column compares the optima: >= 0 means lmer found a REML log-likelihood at least as high
(statsmodels' default L-BFGS fit occasionally stops at a worse point). The machine is shared:
timings are noisy, the ratios are what matter.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

FORMULA = "ReadAchiev ~ 1 + ReadDis + (1|ID)"


def make_imputations(m: int, seed: int = 1):
    from mitml_jax.datasets import load_studentratings

    data = load_studentratings()
    rng = np.random.default_rng(seed)
    observed = data["ReadDis"].dropna().to_numpy()
    missing = data["ReadDis"].isna().to_numpy()
    out = []
    for _ in range(m):
        frame = data.copy()
        values = frame["ReadDis"].to_numpy(copy=True)
        values[missing] = rng.choice(observed, missing.sum())
        frame["ReadDis"] = values
        out.append(frame)
    return out


def time_lmer(implist, repeats: int, compiled: bool = False):
    """(first call s, median warm s, fits); ``compiled`` forces the XLA path."""
    from mitml_jax.analysis.lmer import batch, lmer

    saved = batch.HOST_MAX_WORK
    batch.HOST_MAX_WORK = -1 if compiled else saved
    try:
        start = time.perf_counter()
        fits = lmer(FORMULA, implist)
        first = time.perf_counter() - start
        warm = []
        for _ in range(repeats):
            start = time.perf_counter()
            fits = lmer(FORMULA, implist)
            warm.append(time.perf_counter() - start)
    finally:
        batch.HOST_MAX_WORK = saved
    return first, float(np.median(warm)), fits


def time_statsmodels(implist, n_fits: int):
    import statsmodels.formula.api as smf

    logliks = []
    start = time.perf_counter()
    for frame in implist[:n_fits]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = smf.mixedlm("ReadAchiev ~ 1 + ReadDis", frame, groups="ID").fit(reml=True)
        logliks.append(float(result.llf))
    elapsed = time.perf_counter() - start
    return elapsed * len(implist) / n_fits, np.array(logliks)


def time_lme4(implist):
    """Seconds for lme4 to fit all data sets, or None without Rscript/lme4."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "imps.csv")
        long = pd.concat([f.assign(imp=i) for i, f in enumerate(implist)], ignore_index=True)
        long[["imp", "ID", "ReadAchiev", "ReadDis"]].to_csv(path, index=False)
        code = (
            "suppressMessages(library(lme4)); d <- read.csv(commandArgs(TRUE)[1]); "
            "s <- split(d, d$imp); invisible(lmer(ReadAchiev ~ 1 + ReadDis + (1|ID), s[[1]])); "
            "t <- system.time(for (x in s) lmer(ReadAchiev ~ 1 + ReadDis + (1|ID), x))[['elapsed']]; "
            "cat(t)"
        )
        try:
            out = subprocess.run([rscript, "-e", code, path], capture_output=True, text=True,
                                 timeout=600, check=True)
            return float(out.stdout.strip().split()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError):
            return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="m = 20 only, 5 statsmodels fits")
    parser.add_argument("--full-statsmodels", action="store_true",
                        help="fit statsmodels to every data set instead of extrapolating")
    parser.add_argument("--repeats", type=int, default=7, help="warm lmer calls per m")
    args = parser.parse_args(argv)

    import jax

    sizes = [20] if args.quick else [20, 100]
    rows = []
    for m in sizes:
        implist = make_imputations(m)
        first, warm, fits = time_lmer(implist, args.repeats)
        xla_first, xla_warm, _ = time_lmer(implist, args.repeats, compiled=True)
        n_sm = m if args.full_statsmodels else min(m, 5 if args.quick else 20)
        sm_time, sm_loglik = time_statsmodels(implist, n_sm)
        diff = np.array([f.loglik for f in fits[:n_sm]]) - sm_loglik
        agree = (float(diff.min()), float(diff.max()))
        lme4 = time_lme4(implist)
        rows.append((m, first, warm, xla_first, xla_warm, sm_time, n_sm, lme4, agree))

    print(f"lmer speed: `{FORMULA}`, REML, studentratings (n = 750, J = 50); "
          f"JAX {jax.__version__} on {jax.default_backend()} ({os.cpu_count()} CPU cores visible); "
          "seconds for all m fits")
    print()
    print("| m | lmer, first call | lmer, warm | lmer XLA path, first call | lmer XLA path, warm "
          "| statsmodels MixedLM | lme4 (R) | statsmodels / lmer warm "
          "| REML logLik lmer - statsmodels (min, max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, first, warm, xla_first, xla_warm, sm_time, n_sm, lme4, agree in rows:
        sm_text = f"{sm_time:.2f}" + ("" if n_sm == m else f" (extrapolated from {n_sm} fits)")
        lme4_text = "n/a (no Rscript/lme4)" if lme4 is None else f"{lme4:.3f}"
        print(f"| {m} | {first:.3f} | {warm:.4f} | {xla_first:.2f} | {xla_warm:.4f} | {sm_text} "
              f"| {lme4_text} | {sm_time / warm:.0f}x | {agree[0]:.1e}, {agree[1]:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
