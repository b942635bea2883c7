"""mitml's Introduction vignette in Python.

    python examples/introduction.py            # the vignette's settings (m = 100)
    python examples/introduction.py --quick    # a short run for tests

Imputes ReadAchiev, ReadDis and SchClimate in studentratings with a two-level model, checks
convergence, completes the data, fits ReadAchiev ~ 1 + ReadDis + (1|ID) to every imputed data
set at once (batched lmer) and pools the results by Rubin's rules.
"""

from __future__ import annotations

import argparse
import os
import time

import mitml_jax as mj


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (for tests)")
    parser.add_argument("--chains", type=int, default=1,
                        help="parallel chains (1, as panImpute; try 4 for R-hat across chains)")
    parser.add_argument("--plots", default="mitmlPlots", help="folder for the convergence plot")
    parser.add_argument("--statsmodels", action="store_true",
                        help="also analyse with statsmodels MixedLM (slow: ~0.4 s per fit)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    studentratings = mj.load_studentratings()
    n_burn, n_iter, m = (200, 20, 10) if args.quick else (5000, 100, 100)

    # 1. Impute: panImpute(studentratings, formula = fml, n.burn = 5000, n.iter = 100, m = 100)
    fml = "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)"
    imp = mj.pan_impute(studentratings, formula=fml, n_burn=n_burn, n_iter=n_iter, m=m,
                        chains=args.chains, seed=123, progress=not args.quick)

    # 2. Convergence: summary(imp); plot(imp, trace = "all", print = "beta", pos = c(1, 2))
    print(imp.summary())
    os.makedirs(args.plots, exist_ok=True)
    imp.plot(trace="all", print=("beta",), pos=(1, 2), export="png", folder=args.plots)
    print(f"Convergence plot written to {args.plots}/")

    # 3. Complete: implist <- mitmlComplete(imp, "all")
    implist = mj.mitml_complete(imp, "all")

    # 4. Analyse: with(implist, lmer(ReadAchiev ~ 1 + ReadDis + (1|ID)))
    fit = implist.lmer("ReadAchiev ~ 1 + ReadDis + (1|ID)")

    # 5. Pool: testEstimates(fit, extra.pars = TRUE)
    pooled = mj.test_estimates(fit, extra_pars=True)
    print("Pooled estimates of the batched lmer fits (Rubin's rules):")
    print(pooled)

    if args.statsmodels:
        import statsmodels.formula.api as smf

        sm_fit = implist.analyse(
            lambda d: smf.mixedlm("ReadAchiev ~ 1 + ReadDis", d, groups=d["ID"]).fit(reml=True)
        )
        print("The same model fitted by statsmodels MixedLM, pooled:")
        print(mj.test_estimates(sm_fit, extra_pars=True))

    print(f"Total wall time: {time.perf_counter() - start:.1f} s")
    return pooled


if __name__ == "__main__":
    main()
