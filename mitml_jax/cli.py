"""Command-line interface: ``mitml-jax impute | summary | plot``.

Examples::

    mitml-jax impute data.csv --formula "ReadDis + SES ~ 1 + Sex + (1|ID)" --m 20 --chains 4 \\
        --n-burn 5000 --n-iter 100 --seed 1 --out imputed.csv
    mitml-jax summary data.csv --formula "..." --n-burn 500 --n-iter 50 --m 5
    mitml-jax plot data.csv --formula "..." --folder plots --export png

``impute`` writes the m completed data sets in long format (columns ``.imp`` = 1..m and ``.id`` =
row number, readable with ``ImputedList.from_long``) as CSV or parquet, chosen by the extension of
``--out``, and can save the whole run (``--save-run run.pkl``) for ``summary``/``plot`` later.
Errors in the input are reported in one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys

__all__ = ["main", "build_parser"]


def _read_table(path: str):
    import pandas as pd

    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file {path!r} does not exist.")
    lower = path.lower()
    if lower.endswith(".parquet") or lower.endswith(".pq"):
        return pd.read_parquet(path)
    if lower.endswith(".csv") or lower.endswith(".txt"):
        return pd.read_csv(path)
    raise ValueError(f"Cannot read {path!r}: use a .csv or .parquet file.")


def _formula_argument(args):
    if args.formula_l2:
        return [args.formula, args.formula_l2]
    return args.formula


def _type_argument(args, data):
    if args.type is None:
        return None
    codes = [int(code) for code in args.type.replace(",", " ").split()]
    if len(codes) != data.shape[1]:
        raise ValueError(
            f"--type has {len(codes)} codes but the data have {data.shape[1]} columns; "
            "give one code per column."
        )
    return codes


def _run_imputation(args):
    from . import jomo_impute, pan_impute

    data = _read_table(args.data)
    if (args.formula is None) == (args.type is None):
        raise ValueError("Give exactly one of --formula or --type.")
    common = dict(
        n_burn=args.n_burn,
        n_iter=args.n_iter,
        m=args.m,
        group=args.group,
        seed=args.seed,
        chains=args.chains,
        progress=not args.quiet,
    )
    type_codes = _type_argument(args, data)
    use_jomo = args.method == "jomo" or args.formula_l2 is not None
    if use_jomo:
        return jomo_impute(
            data,
            formula=_formula_argument(args) if type_codes is None else None,
            type=type_codes,
            random_L1=args.random_l1,
            **common,
        )
    return pan_impute(
        data,
        formula=args.formula if type_codes is None else None,
        type=type_codes,
        **common,
    )


def _load_or_run(args):
    if getattr(args, "run", None):
        with open(args.run, "rb") as handle:
            return pickle.load(handle)
    return _run_imputation(args)


def _command_impute(args) -> int:
    imp = _run_imputation(args)
    long = imp.complete("all").to_long()
    out = args.out
    if out.lower().endswith((".parquet", ".pq")):
        long.to_parquet(out, index=False)
    elif out.lower().endswith(".csv"):
        long.to_csv(out, index=False)
    else:
        raise ValueError(f"--out {out!r}: use a .csv or .parquet file name.")
    if args.save_run:
        with open(args.save_run, "wb") as handle:
            pickle.dump(imp, handle)
    if not args.quiet:
        print(f"Wrote {imp.m} imputed data sets ({len(long)} rows) to {out}", file=sys.stderr)
    return 0


def _command_summary(args) -> int:
    imp = _load_or_run(args)
    print(
        imp.summary(
            n_rhat=args.n_rhat,
            goodness_of_appr=args.goodness_of_appr,
            autocorrelation=args.autocorrelation,
        )
    )
    return 0


def _command_plot(args) -> int:
    imp = _load_or_run(args)
    figures = imp.plot(
        print=tuple(args.print.split(",")),
        trace=args.trace,
        export=args.export,
        folder=args.folder,
    )
    print(f"Wrote {len(figures)} plots to {args.folder}", file=sys.stderr)
    return 0


def _add_model_arguments(parser, data_required=True):
    parser.add_argument("data", nargs=None if data_required else "?", help="CSV or parquet file")
    parser.add_argument("--formula", help='imputation model, e.g. "y1 + y2 ~ 1 + x + (1|id)"')
    parser.add_argument("--formula-l2", help="level-2 model for jomo, e.g. 'z ~ 1'")
    parser.add_argument("--type", help="mitml type codes, one per column (e.g. '-2 1 1 2 0')")
    parser.add_argument("--method", choices=("pan", "jomo"), default="pan")
    parser.add_argument("--random-l1", choices=("none", "mean", "full"), default="none")
    parser.add_argument("--group", help="grouping column: separate models per group")
    parser.add_argument("--m", type=int, default=10, help="number of imputations (10)")
    parser.add_argument("--chains", type=int, default=1, help="parallel chains (1)")
    parser.add_argument("--n-burn", type=int, default=5000, help="burn-in iterations (5000)")
    parser.add_argument("--n-iter", type=int, default=100, help="iterations between imputations")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mitml-jax", description="Multiple imputation for multilevel data (mitml in JAX)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    impute = commands.add_parser("impute", help="impute and write long-format data")
    _add_model_arguments(impute)
    impute.add_argument("--out", required=True, help="output file (.csv or .parquet)")
    impute.add_argument("--save-run", help="also pickle the whole run for summary/plot")
    impute.set_defaults(handler=_command_impute)

    summary = commands.add_parser("summary", help="print the run and its convergence summary")
    _add_model_arguments(summary, data_required=False)
    summary.add_argument("--run", help="a run saved with impute --save-run")
    summary.add_argument("--n-rhat", type=int, default=3)
    summary.add_argument("--goodness-of-appr", action="store_true")
    summary.add_argument("--autocorrelation", action="store_true")
    summary.set_defaults(handler=_command_summary)

    plot = commands.add_parser("plot", help="write convergence plots")
    _add_model_arguments(plot, data_required=False)
    plot.add_argument("--run", help="a run saved with impute --save-run")
    plot.add_argument("--print", default="beta,beta2,psi,sigma")
    plot.add_argument("--trace", choices=("imputation", "burnin", "all"), default="all")
    plot.add_argument("--export", choices=("png", "pdf"), default="png")
    plot.add_argument("--folder", default="mitmlPlots")
    plot.set_defaults(handler=_command_plot)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("summary", "plot") and not args.run and not args.data:
        parser.error("give a data file (with --formula or --type) or --run FILE")
    try:
        return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as error:
        print(f"mitml-jax: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mitml-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
