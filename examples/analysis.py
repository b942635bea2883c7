"""mitml's Analysis vignette in Python.

    python examples/analysis.py            # the vignette's settings (m = 20)
    python examples/analysis.py --quick    # a short run for tests

Imputes ReadDis and SES with Sex as predictor, adds the cluster mean of SES (G.SES) and the
deviation from it (I.SES), fits MathAchiev ~ 1 + Sex + I.SES + G.SES + (1|ID) on every data set,
then pools estimates, compares it with the model without I.SES and G.SES (D1, D1 with df_com,
D3 as in the vignette; D4 and anova beyond it), tests constraints and reports the multilevel R2.
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

    studentratings = mj.load_studentratings()
    n_burn, n_iter, m = (200, 20, 8) if args.quick else (5000, 200, 20)

    fml = "ReadDis + SES ~ 1 + Sex + (1|ID)"
    imp = mj.pan_impute(studentratings, formula=fml, n_burn=n_burn, n_iter=n_iter, m=m,
                        chains=args.chains, seed=123, progress=not args.quick)
    print(imp)

    implist = mj.mitml_complete(imp, "all")
    # within(implist, {G.SES <- clusterMeans(SES, ID); I.SES <- SES - G.SES})
    implist = implist.within(lambda d: {
        "G.SES": mj.cluster_means(d["SES"], d["ID"]),
        "I.SES": d["SES"] - mj.cluster_means(d["SES"], d["ID"]),
    })

    fit = implist.lmer("MathAchiev ~ 1 + Sex + I.SES + G.SES + (1|ID)")
    fit_null = implist.lmer("MathAchiev ~ 1 + Sex + (1|ID)")

    print(mj.test_estimates(fit))
    print(mj.test_estimates(fit, extra_pars=True, df_com=46))
    print(mj.test_models(fit, fit_null))
    print(mj.test_models(fit, fit_null, df_com=46))
    print(mj.test_models(fit, fit_null, method="D3"))
    print(mj.test_models(fit, fit_null, method="D4"))
    print(mj.test_constraints(fit, constraints=["I.SES", "G.SES"]))
    print(mj.test_constraints(fit, constraints=["G.SES - I.SES"]))
    print(mj.anova(fit, fit_null))
    print("Multilevel R2 (RB1, RB2: Raudenbush & Bryk; SB: Snijders & Bosker; MVP: LaHuis et al.):")
    print(mj.multilevel_r2(fit).to_string())

    print(f"Total wall time: {time.perf_counter() - start:.1f} s")
    return fit


if __name__ == "__main__":
    main()
