"""mitml's Level-2 vignette in Python.

    python examples/level2.py            # the vignette's settings (m = 20)
    python examples/level2.py --quick    # a short run for tests

Imputes missing values at level 1 (JOBSAT, NEGLEAD and the categorical WLOAD) and at level 2
(COHES, the work group's cohesion) in the leadership data with jomo's two-part model, checks that
the level-2 imputations are constant within groups, and pools a random-intercept model.
"""

from __future__ import annotations

import argparse
import time

import mitml_jax as mj


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (for tests)")
    parser.add_argument("--chains", type=int, default=4, help="parallel chains (4)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    leadership = mj.load_leadership()
    n_burn, n_iter, m = (200, 20, 8) if args.quick else (5000, 250, 20)

    fml = ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"]
    imp = mj.jomo_impute(leadership, formula=fml, n_burn=n_burn, n_iter=n_iter, m=m,
                         chains=args.chains, seed=123, progress=not args.quick)
    print(imp.summary())

    implist = mj.mitml_complete(imp, "all")
    spread = max(d.groupby("GRPID")["COHES"].nunique().max() for d in implist)
    print(f"Distinct COHES values within a work group (should be 1): {spread}")

    # centre NEGLEAD within groups and fit JOBSAT on it, WLOAD and COHES
    implist = implist.within(lambda d: {
        "NEGLEAD.cwc": d["NEGLEAD"] - mj.cluster_means(d["NEGLEAD"], d["GRPID"]),
    })
    fit = implist.lmer("JOBSAT ~ 1 + NEGLEAD.cwc + WLOAD + COHES + (1|GRPID)")
    print(mj.test_estimates(fit, extra_pars=True))

    print(f"Total wall time: {time.perf_counter() - start:.1f} s")
    return imp


if __name__ == "__main__":
    main()
