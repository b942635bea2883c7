"""``imp.summary()``: mitml's convergence summary plus across-chain diagnostics.

mitml's statistics (spec 3.4) are computed on the imputation-phase draws of **each chain**:
segment R-hat on ``n_rhat`` segments (``.GelmanRubin``), SDprop (``goodness_of_appr``), and the
lag-1 / smoothed lag-k / lag-2k ACF (``autocorrelation``, k = ``n_iter``). With several chains,
each parameter row reports the **mean over chains** (the typical chain; the maximum of a noisy
statistic over many chains grows with their number), and ``rhat_segments_max`` keeps the worst
chain's segment R-hat; with one chain these are exactly mitml's numbers.

Beyond mitml, every parameter gets across-chain diagnostics (Vehtari et al. 2021; ArviZ's
definitions, see :mod:`mitml_jax.diagnostics.rank`): rank-normalised split R-hat (needs >= 2
chains), bulk and tail ESS, MCSE of the mean, and, with 8 or more chains, nested R-hat over 4
superchains of consecutive chains (Margossian et al. 2024).

The printed text follows ``print.mitml.summary`` (verified layout, spec 1.2), then adds a section
``Across chains``; :meth:`ImputationSummary.to_frame` gives one row per parameter entry.
"""

from __future__ import annotations

import html
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import MitmlError, MitmlTypeError, MitmlWarning
from ..sampling.arguments import check_count, check_flag
from .entries import BLOCK_TITLES, entry_chunks, gather_draws, parameter_entries
from .mitml_stats import reduced_acf, sd_prop, segment_moments, segment_rhat_from_moments
from .nested import default_superchains, rhat_nested_from_moments
from .numpy_sort import hint_slow_sort
from .printing import format_header, format_numeric_table, format_text_table
from .ess_geyer import row_dot
from .rank import diagnose_chunk, diagnostic_threads
from .rank_normal import first_draw_shift, scratch

__all__ = ["ImputationSummary", "summarize", "missing_rates", "check_n_rhat"]

_GATHER = 8  # entries gathered together (one cache line of float64 draws)

COLUMNS = (
    "block", "row", "col", "group", "group_label", "row_label", "col_label", "name",
    "mean", "sd", "rhat_segments", "sd_prop", "acf_lag1", "acf_lagk", "acf_lag2k",
    "rhat_rank", "ess_bulk", "ess_tail", "mcse_mean", "rhat_nested", "rhat_segments_max",
)


@dataclass
class ImputationSummary:
    """Result of :func:`summarize`; ``print`` it, or call :meth:`to_frame`."""

    header: str
    frame: pd.DataFrame
    missing: pd.Series
    stats: tuple
    keep_chains: str
    chains: int
    draws: int
    n_rhat: int | None
    extra: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per parameter entry (1-based ``row``, ``col``, ``group`` as in mitml)."""
        return self.frame.copy()

    def __str__(self) -> str:
        return _format_summary(self)

    def __repr__(self) -> str:
        return _format_summary(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(_format_summary(self))}</pre>"


def missing_rates(data: pd.DataFrame) -> pd.Series:
    """Percent missing per column as mitml prints it (``"%.1f"``, ``"0.0"`` shown as ``"0"``)."""
    rates = data.isna().mean(axis=0) * 100
    text = [f"{v:.1f}" for v in rates]
    return pd.Series(["0" if t == "0.0" else t for t in text], index=data.columns, dtype=object)


def check_n_rhat(n_rhat):
    """``n_rhat`` as an int >= 2, or None when the segment R-hat is off (None or a whole number
    below 2, as mitml's ``n.Rhat >= 2``); whole floats such as ``3.0`` count as ints. Anything
    else (fractions, NaN/inf, bools, strings) is a MitmlTypeError naming ``'n_rhat'``."""
    if n_rhat is None:
        return None
    try:
        return check_count("n_rhat", n_rhat, 2)
    except MitmlTypeError as err:
        raise MitmlTypeError(f"{err} None or a whole number below 2 skips the segment R-hat.") from None
    except MitmlError:  # a whole number below 2: off, as in mitml
        return None


def summarize(imp, n_rhat=3, goodness_of_appr=False, autocorrelation=False) -> ImputationSummary:
    """Convergence summary of an Imputations object (mitml's ``summary.mitml`` and more).

    Args:
        imp: :class:`~mitml_jax.Imputations`.
        n_rhat: segments for mitml's within-chain R-hat (a whole number; ``3.0`` counts as 3);
            None or < 2 disables it.
        goodness_of_appr: compute SDprop (Hoff 2009); True or False.
        autocorrelation: compute ACF at lags 1, k = n_iter and 2k (smoothed); True or False.
            Each of the three sections is skipped, with a MitmlWarning, when the chains have
            too few imputation-phase draws for it (R-hat: 2 per segment; the others: 3).

    Returns:
        :class:`ImputationSummary`.
    """
    n_rhat = check_n_rhat(n_rhat)
    goodness_of_appr = check_flag("goodness_of_appr", goodness_of_appr)
    autocorrelation = check_flag("autocorrelation", autocorrelation)
    entries = parameter_entries(imp)
    e = len(entries)
    source = imp.imputation[entries[0].block] if e else next(iter(imp.imputation.values()))
    c, d = source.shape[:2]
    hint_slow_sort(c * d * e)
    cols = {name: np.full(e, np.nan) for name in COLUMNS[8:]}
    stats = []
    if n_rhat is not None and e:
        if d // n_rhat >= 2:
            stats.append("Rhat")
        else:
            warnings.warn(
                f"Too few imputation-phase draws ({d}) for n_rhat={n_rhat} segments; "
                "segment R-hat skipped.", MitmlWarning, stacklevel=2)
    for flag, stat, name in ((goodness_of_appr, "SDprop", "goodness_of_appr"),
                             (autocorrelation, "ACF", "autocorrelation")):
        if flag and e and d > 2:
            stats.append(stat)
        elif flag and e:  # say why a section that was asked for is missing
            warnings.warn(
                f"Too few imputation-phase draws per chain ({d}) for {name}=True (it needs at "
                "least 3); that section is skipped. More imputations per chain (m / chains) or "
                "a larger n_iter give more draws.", MitmlWarning, stacklevel=2)
    chain_mean = np.full((e, c), np.nan)
    chain_var = np.zeros((e, c))
    shift = np.zeros(e)
    if e and d:
        per_entry = _per_entry_statistics(imp, entries, n_rhat, stats, c, d)
        chain_mean, chain_var = per_entry.pop("chain_mean"), per_entry.pop("chain_var")
        shift = per_entry.pop("shift")  # chain means are relative to it (all shift-invariant)
        cols.update(per_entry)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if e and d:  # pooled mean and sd from the chains' moments (also used by nested R-hat)
            cols["mean"] = chain_mean.mean(axis=1) + shift
            if c * d > 1:
                dev = chain_mean - chain_mean.mean(axis=1, keepdims=True)
                squares = (d - 1) * chain_var + d * dev**2
                cols["sd"] = np.sqrt(squares.sum(axis=1) / (c * d - 1))
        if e and d >= 4:  # ArviZ's mcse_mean: sd of all draws / sqrt(ESS of the mean)
            cols["mcse_mean"] = cols["sd"] / np.sqrt(cols.pop("ess_mean"))
        cols.pop("ess_mean", None)
        nested = c >= 8 and e > 0 and d >= 1
        if nested:
            cols["rhat_nested"] = rhat_nested_from_moments(chain_mean, chain_var,
                                                           default_superchains(c, 4))
    frame = pd.DataFrame({
        "block": [en.block for en in entries],
        "row": [en.row + 1 for en in entries],
        "col": [en.col + 1 for en in entries],
        "group": [en.group + 1 for en in entries],
        "group_label": [en.group_label for en in entries],
        "row_label": [en.row_label for en in entries],
        "col_label": [en.col_label for en in entries],
        "name": [f"{BLOCK_TITLES[en.block]} {en.position}" for en in entries],
        **cols,
    }, columns=list(COLUMNS))
    return ImputationSummary(
        header=format_header(imp, for_summary=True), frame=frame,
        missing=missing_rates(imp.data), stats=tuple(stats), keep_chains=imp.keep_chains,
        chains=c, draws=d, n_rhat=n_rhat, extra={"nested": nested},
    )


def _per_entry_statistics(imp, entries, n_rhat, stats, c: int, d: int) -> dict:
    """Chain moments, mitml's statistics and the rank diagnostics of every entry, (E, ...) arrays.

    Entries are gathered a few at a time (neighbours in memory together) into a per-thread
    buffer and processed one by one while their draws are in cache, on several threads.
    """
    e = len(entries)
    # chain means relative to each entry's first (finite) draw, so that a mean large against the
    # spread keeps its digits in the pooled sd and nested R-hat
    out = {"chain_mean": np.empty((e, c)), "chain_var": np.zeros((e, c)), "shift": np.zeros(e)}
    names = ["rhat_segments", "rhat_segments_max", "sd_prop", "acf_lag1", "acf_lagk",
             "acf_lag2k", "rhat_rank", "ess_bulk", "ess_tail", "ess_mean"]
    out.update({name: np.full(e, np.nan) for name in names})
    which = ("rhat", "ess_bulk", "ess_tail", "ess_mean")
    chunks = entry_chunks(imp, entries, size=_GATHER)
    local = threading.local()

    def process(chunk) -> None:
        rows, source, flat = chunk
        work = getattr(local, "work", None)
        if work is None:
            work = local.work = {}
        buf = scratch(work, "gather", (_GATHER, c, d))
        x = gather_draws(source, flat, buf[: len(flat)])
        for i, row in enumerate(rows):
            _entry_statistics(x[i : i + 1], row, out, n_rhat, stats, which, imp.n_iter, work)

    workers = diagnostic_threads(len(chunks))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if workers > 1 and c * d * e >= 2**20:  # NumPy releases the GIL in the heavy steps
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(process, chunks))
        else:
            for chunk in chunks:
                process(chunk)
    return out


def _entry_statistics(x, row, out, n_rhat, stats, which, n_iter, work) -> None:
    """All per-entry statistics of one entry's draws x (1, C, D), written to ``out[...][row]``."""
    with np.errstate(all="ignore"):  # NumPy's error state is per thread
        _write_entry_statistics(x, row, out, n_rhat, stats, which, n_iter, work)


def _write_entry_statistics(x, row, out, n_rhat, stats, which, n_iter, work) -> None:
    c, d = x.shape[1:]
    first = float(first_draw_shift(x[0, 0, 0]))
    out["shift"][row] = first
    if "Rhat" in stats:  # segment moments give mitml's R-hat and, with the rest, chain moments
        # (C, n_rhat) each; the means relative to each chain's first draw (shift, (C,))
        xbar, s2, n, shift = segment_moments(x[0], n_rhat, work, shifted=True)
        seg = segment_rhat_from_moments(xbar, s2, n)  # (C,)
        out["rhat_segments"][row] = np.nanmean(seg)
        out["rhat_segments_max"][row] = np.nanmax(seg)
        rest = x[0, :, n * n_rhat :] - shift[:, None]
        mean = (n * xbar.sum(axis=1) + rest.sum(axis=1)) / d
        between = n * ((xbar - mean[:, None]) ** 2).sum(axis=1)
        squares = (n - 1) * s2.sum(axis=1) + between + ((rest - mean[:, None]) ** 2).sum(axis=1)
        out["chain_mean"][row] = mean + (shift - first)  # shift - first: exact, or nearly
        out["chain_var"][row] = squares / (d - 1)
    else:
        dev = np.subtract(x[0], first, out=scratch(work, "centred", (c, d)))
        mean = dev.mean(axis=1)
        out["chain_mean"][row] = mean
        if d > 1:
            dev -= mean[:, None]
            out["chain_var"][row] = row_dot(dev, dev) / (d - 1)
    if "SDprop" in stats:
        out["sd_prop"][row] = np.nanmean(sd_prop(x)[0])
    if "ACF" in stats:
        out["acf_lag1"][row], out["acf_lagk"][row], out["acf_lag2k"][row] = (
            reduced_acf(x, n_iter)[0].mean(axis=0))
    if d >= 4:
        rd = diagnose_chunk(x, which, work)
        out["rhat_rank"][row] = rd["rhat"][0]
        for name in ("ess_bulk", "ess_tail", "ess_mean"):
            out[name][row] = rd[name][0]


# -- printing ----------------------------------------------------------------------------------
def _blocks(frame):
    return [b for b in BLOCK_TITLES if (frame["block"] == b).any()]


def _largest(frame, column, blocks, absolute=False) -> str:
    parts = []
    for b in blocks:
        sub = frame[frame["block"] == b]
        vals = sub[column].to_numpy(dtype=float)
        vals = np.abs(vals) if absolute else vals
        if np.all(np.isnan(vals)):
            parts.append(f"{BLOCK_TITLES[b]}: [NA]")
            continue
        k = int(np.nanargmax(vals))
        parts.append(f"{BLOCK_TITLES[b]}: [{sub['row'].iloc[k]},{sub['col'].iloc[k]}]")
    return ", ".join(parts) + "\n"


def _quantile_table(frame, column, blocks) -> str:
    rows, values = [], []
    for b in blocks:
        v = frame.loc[frame["block"] == b, column].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        rows.append(BLOCK_TITLES[b] + ":")
        if v.size == 0:
            values.append([np.nan] * 6)
            continue
        q = np.quantile(v, [0.25, 0.5, 0.75])
        values.append([v.min(), q[0], v.mean(), q[1], q[2], v.max()])
    return format_numeric_table(rows, ["Min", "25%", "Mean", "Median", "75%", "Max"], values)


def _acf_cell(v: float) -> str:
    if np.isnan(v):
        return "   NA"
    s = f"{v:.3f}"
    if v < 0:
        return s.replace("-0", "-", 1) if s.startswith("-0") else s
    return " " + s[1:] if s.startswith("0") else s


def _finite_stat(fn, values: np.ndarray) -> float:
    """``fn`` (``np.nanmean``, ``np.nanmax``) of the non-NaN values, NaN (printed NA) when there are
    none (lag 2k beyond the draws), without NumPy's empty-slice warning."""
    values = values[~np.isnan(values)]
    return float(fn(values)) if values.size else np.nan


def _format_summary(s: ImputationSummary) -> str:
    f = s.frame
    blocks = _blocks(f)
    out = s.header
    if s.stats and s.keep_chains != "full":
        out += ("\nNote: Convergence criteria were calculated from a reduced set of\n"
                f"parameters (setting: {s.keep_chains}).\n")
    for stat in s.stats:
        if stat in ("Rhat", "SDprop"):
            column = "rhat_segments" if stat == "Rhat" else "sd_prop"
            title = ("Potential scale reduction (Rhat, imputation phase):" if stat == "Rhat"
                     else "Goodness of approximation (imputation phase):")
            out += f"\n{title}\n \n" + _quantile_table(f, column, blocks)
            out += ("\nLargest potential scale reduction:\n" if stat == "Rhat"
                    else "\nPoorest approximation:\n") + _largest(f, column, blocks)
        else:
            cells = [[" Lag1", " Lagk", "Lag2k", " Lag1", " Lagk", "Lag2k"]]
            for b in blocks:
                sub = f[f["block"] == b]
                columns = [sub[c].to_numpy(dtype=float) for c in ("acf_lag1", "acf_lagk", "acf_lag2k")]
                means = [_finite_stat(np.nanmean, v) for v in columns]
                maxes = [_finite_stat(np.nanmax, v) for v in columns]
                cells.append([_acf_cell(v) for v in means + maxes])
            rows = [""] + [BLOCK_TITLES[b] + ":" for b in blocks]
            out += "\nAutocorrelation (ACF, imputation phase):\n\n"
            out += format_text_table(rows, [" Mean", "", "", " Max", "", ""], cells)
            out += "\nLargest autocorrelation at lag k:\n" + _largest(f, "acf_lagk", blocks, True)
    md = s.missing
    out += "\nMissing data per variable:\n"
    out += format_text_table(["MD%"], list(map(str, md.index)), [list(md.to_numpy())])
    out += _format_across(s, blocks)
    return out + "\n"


def _format_across(s: ImputationSummary, blocks) -> str:
    f = s.frame
    if f.empty:
        return ""
    cols = ["Max Rhat", "Min ESS-bulk", "Min ESS-tail", "Max MCSE/SD"]
    if s.extra.get("nested"):
        cols.append("Max nRhat")
    rows, values = [], []
    for b in blocks:
        sub = f[f["block"] == b]
        ratio = (sub["mcse_mean"] / sub["sd"]).to_numpy(dtype=float)
        row = [sub["rhat_rank"].max(), sub["ess_bulk"].min(), sub["ess_tail"].min(),
               np.nanmax(ratio) if np.isfinite(ratio).any() else np.nan]
        if s.extra.get("nested"):
            row.append(sub["rhat_nested"].max())
        rows.append(BLOCK_TITLES[b] + ":")
        values.append(row)
    values = np.asarray(values, dtype=float)
    values[:, 1:3] = np.round(values[:, 1:3])
    chain_word = "chain" if s.chains == 1 else "chains"
    draw_word = "draw" if s.draws == 1 else "draws"
    out = (f"\nAcross chains ({s.chains} {chain_word} x {s.draws} {draw_word}, imputation phase;\n"
           "rank-normalised split Rhat, bulk/tail ESS, MCSE of the mean):\n\n")
    out += format_numeric_table(rows, cols, values, per_column=True)  # our own table: ESS as integers
    if s.chains > 1:
        out += "\nLargest rank-normalised Rhat:\n" + _largest(f, "rhat_rank", blocks)
    return out
