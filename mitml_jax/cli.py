"""Command-line interface: ``mitml-jax impute | summary | plot``.

Examples::

    mitml-jax impute data.csv --formula "ReadDis + SES ~ 1 + Sex + (1|ID)" --m 20 --chains 4 \\
        --n-burn 5000 --n-iter 100 --seed 1 --out imputed.csv --save-run run.pkl
    mitml-jax summary data.csv --formula "ReadDis + SES ~ 1 + Sex + (1|ID)" --n-burn 500 --m 5
    mitml-jax summary --run run.pkl
    mitml-jax plot --run run.pkl --folder plots --export png

``impute`` writes the m completed data sets in long format (columns ``.imp`` = 1..m and ``.id`` =
the row's 0-based position in the data file) as CSV or parquet, chosen by the extension of
``--out``: ``ImputedList.from_mice_long(pd.read_csv(out))`` or ``read_implist(out)`` (parquet)
read them back with ``.id`` as the index. It can also save the whole run
(``--save-run run.pkl``, written by ``Imputations.save``, read by ``Imputations.load``) for
``summary``/``plot`` later. pan is used unless ``--method jomo`` or ``--formula-l2`` is given.
Output paths are checked before the sampler starts; an output path may not be the data file.
Errors in the input are reported in one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

__all__ = ["main", "build_parser"]


def _read_table(path: str):
    """The data file as a DataFrame; every failure is a ValueError naming the file."""
    import pandas as pd

    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file {path!r} does not exist.")
    if os.path.isdir(path):
        raise ValueError(f"Data file {path!r} is a directory; give a .csv or .parquet file.")
    lower = path.lower()
    if lower.endswith(".parquet") or lower.endswith(".pq"):
        reader = pd.read_parquet
    elif lower.endswith(".csv") or lower.endswith(".txt"):
        reader = pd.read_csv
    else:
        raise ValueError(f"Cannot read {path!r}: use a .csv or .parquet file.")
    if reader is pd.read_parquet and not _have_parquet():
        raise ValueError(f"Cannot read {path!r}: {_PARQUET_NEEDS}.")
    try:
        return reader(path)
    except ImportError:  # a pyarrow that is installed but cannot be imported
        raise ValueError(f"Cannot read {path!r}: {_PARQUET_NEEDS}.") from None
    except (ValueError, OSError) as error:  # pandas' parser errors, pyarrow's ArrowInvalid
        raise ValueError(f"Cannot read data file {path!r}: {error}") from None


def _same_file(first: str, second: str | None) -> bool:
    """Whether two paths name one file (links included; paths that do not exist yet by name)."""
    if not second:
        return False
    if os.path.exists(first) and os.path.exists(second):
        return os.path.samefile(first, second)
    return os.path.abspath(first) == os.path.abspath(second)


#: What reading or writing parquet files needs (pandas' own message names pyarrow and fastparquet).
_PARQUET_NEEDS = ("parquet files need pyarrow, which is not installed: pip install "
                  "'mitml-jax[parquet]', or use a .csv file")


def _have_parquet() -> bool:
    """Whether pandas can read and write parquet files: pyarrow (or fastparquet) imports. An
    import, not only a lookup, so that a broken install is found before sampling too."""
    for name in ("pyarrow.parquet", "fastparquet"):
        if importlib.util.find_spec(name.split(".")[0]) is None:
            continue
        try:
            importlib.import_module(name)
        except Exception:  # a broken install: ImportError, or e.g. a binary built for another NumPy
            continue
        return True
    return False


def _check_output_file(path: str, option: str, data: str | None, extensions=None) -> None:
    """Refuse an output path that cannot be written, before any sampling is done (a run can take
    hours, and its imputations would be lost at the end)."""
    if os.path.isdir(path):
        example = os.path.join(path, "imputed.csv" if extensions else "run.pkl")
        raise ValueError(f"{option} {path!r} is a directory; give a file name in it, "
                         f"e.g. {example!r}.")
    if extensions and not path.lower().endswith(extensions):
        raise ValueError(f"{option} {path!r}: use a .csv or .parquet file name.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path!r}: the folder {folder!r} does not exist; "
                         "create it first.")
    if _same_file(path, data):
        raise ValueError(f"{option} {path!r} is the data file; the input is never overwritten: "
                         "give another file name.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path!r}: the folder {folder!r} is not writable; give a file "
                         "name in a folder you may write to.")
    if extensions and os.path.exists(path) and not os.access(path, os.W_OK):  # --out: opened
        raise ValueError(f"{option} {path!r} exists and is read-only; give another file name or "
                         "make it writable.")
    if extensions and path.lower().endswith((".parquet", ".pq")) and not _have_parquet():
        raise ValueError(f"{option} {path!r}: {_PARQUET_NEEDS} name.")


def _formula_argument(args):
    if args.formula_l2:
        return [args.formula, args.formula_l2]
    return args.formula


def _type_argument(args, data):
    if args.type is None:
        return None
    try:
        codes = [int(code) for code in args.type.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"--type {args.type!r} must be whole-number type codes separated by "
                         "spaces or commas, e.g. '-2 0 1 1 2'.") from None
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
    if args.type is not None and args.formula_l2 is not None:
        raise ValueError("--formula-l2 goes with --formula; --type takes one vector of codes "
                         "(a level-1 model): write both levels as --formula and --formula-l2.")
    if args.method == "pan" and args.formula_l2 is not None:
        raise ValueError("--formula-l2 (level-2 targets) needs jomo: drop --method pan "
                         "or use --method jomo.")
    use_jomo = args.method == "jomo" or args.formula_l2 is not None
    if not use_jomo and args.random_l1 != "none":
        raise ValueError(f"--random-l1 {args.random_l1} is a jomo option: add --method jomo.")
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


def _load_run(path: str):
    """A run saved by ``impute --save-run`` (``Imputations.save``); older plain pickles too."""
    import pickle

    from . import Imputations

    try:
        return Imputations.load(path)
    except Exception as error:  # noqa: BLE001 - unpickling other files can raise anything
        try:  # earlier versions of --save-run wrote a plain pickle of the object
            with open(path, "rb") as handle:
                run = pickle.load(handle)  # noqa: S301 - trusted files only, as Imputations.load
        except Exception:  # noqa: BLE001 - not a pickle either: report the loader's message
            run = None
        if isinstance(run, Imputations):
            return run
        message = str(error) if str(error).startswith("load:") else (
            f"{path!r} is not a run saved with impute --save-run ({error})")
        raise ValueError(f"--run: {message}") from None


def _load_or_run(args):
    if args.run:
        if args.data or args.formula or args.type or args.formula_l2:
            raise ValueError("Give either --run FILE or a data file with --formula/--type, "
                             "not both.")
        return _load_run(args.run)
    return _run_imputation(args)


def _command_impute(args) -> int:
    out = args.out
    _check_output_file(out, "--out", args.data, extensions=(".csv", ".parquet", ".pq"))
    if args.save_run:
        _check_output_file(args.save_run, "--save-run", args.data)
        if _same_file(args.save_run, out):
            raise ValueError("--save-run and --out name the same file; give two file names.")
    imp = _run_imputation(args)
    long = imp.complete("all").to_long()
    if out.lower().endswith((".parquet", ".pq")):
        long.to_parquet(out, index=False)  # pyarrow checked before sampling
    else:
        long.to_csv(out, index=False)
    if args.save_run:
        imp.save(args.save_run)
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
    if os.path.exists(args.folder) and not os.path.isdir(args.folder):
        raise ValueError(f"--folder {args.folder!r} is a file; give a folder for the plots.")
    blocks = tuple(part.strip() for part in args.print.split(",") if part.strip())
    imp = _load_or_run(args)
    figures = imp.plot(
        print=blocks,
        trace=args.trace,
        export=args.export,
        folder=args.folder,
    )
    if not args.quiet:
        print(f"Wrote {len(figures)} plots to {args.folder}", file=sys.stderr)
    return 0


def _add_model_arguments(parser, data_required=True):
    parser.add_argument("data", nargs=None if data_required else "?",
                        help="CSV or parquet file with the incomplete data")
    parser.add_argument("--formula", help='imputation model, e.g. "y1 + y2 ~ 1 + x + (1|id)"')
    parser.add_argument("--formula-l2", help="level-2 model for jomo, e.g. 'z ~ 1' (selects jomo)")
    parser.add_argument("--type", help="mitml type codes, one per column (e.g. '-2 1 1 2 0'); "
                        "instead of --formula")
    parser.add_argument("--method", choices=("pan", "jomo"), default=None,
                        help="sampler (default: pan, or jomo with --formula-l2)")
    parser.add_argument("--random-l1", choices=("none", "mean", "full"), default="none",
                        help="jomo's cluster-specific level-1 covariance (none)")
    parser.add_argument("--group", help="grouping column: separate models per group")
    parser.add_argument("--m", type=int, default=10, help="number of imputations (10)")
    parser.add_argument("--chains", type=int, default=1, help="parallel chains (1)")
    parser.add_argument("--n-burn", type=int, default=5000, help="burn-in iterations (5000)")
    parser.add_argument("--n-iter", type=int, default=100,
                        help="iterations between imputations (100)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, "
                        "shown in the summary's call)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mitml-jax", description="Multiple imputation for multilevel data (mitml in JAX)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    impute = commands.add_parser("impute", help="impute and write long-format data")
    _add_model_arguments(impute)
    impute.add_argument("--out", required=True,
                        help="output file (.csv or .parquet; replaced if it exists)")
    impute.add_argument("--save-run", help="also save the whole run (Imputations.save) for "
                        "summary/plot --run")
    impute.set_defaults(handler=_command_impute)

    summary = commands.add_parser("summary", help="print the run and its convergence summary")
    _add_model_arguments(summary, data_required=False)
    summary.add_argument("--run", help="a run saved with impute --save-run (instead of data)")
    summary.add_argument("--n-rhat", type=int, default=3,
                         help="segments for mitml's R-hat (3; below 2 leaves it out)")
    summary.add_argument("--goodness-of-appr", action="store_true",
                         help="also mitml's goodness of approximation")
    summary.add_argument("--autocorrelation", action="store_true",
                         help="also mitml's autocorrelations")
    summary.set_defaults(handler=_command_summary)

    plot = commands.add_parser("plot", help="write convergence plots")
    _add_model_arguments(plot, data_required=False)
    plot.add_argument("--run", help="a run saved with impute --save-run (instead of data)")
    plot.add_argument("--print", default="beta,beta2,psi,sigma",
                      help="blocks to plot, comma-separated (beta,beta2,psi,sigma)")
    plot.add_argument("--trace", choices=("imputation", "burnin", "all"), default="all",
                      help="part of the chains in the trace panel (all)")
    plot.add_argument("--export", choices=("png", "pdf"), default="png", help="file type (png)")
    plot.add_argument("--folder", default="mitmlPlots",
                      help="folder for the plots, created if needed (mitmlPlots)")
    plot.set_defaults(handler=_command_plot)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("summary", "plot") and not args.run and not args.data:
        parser.error("give a data file (with --formula or --type) or --run FILE")
    try:
        return args.handler(args)
    except (ValueError, TypeError, KeyError, OSError) as error:
        print(f"mitml-jax: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mitml-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
