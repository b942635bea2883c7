"""``imp.plot()``: mitml's per-parameter convergence plots (spec 3.5), for one or many chains.

One matplotlib Figure per parameter entry in mitml's 2x2 layout (widths 5:1, heights 1.13:1):
trace (upper left) with a smoothed trend line, ACF (lower left), sideways density (upper right,
same y-range as the trace) and a posterior summary panel (lower right: EAP, MAP, SD, 2.5%,
97.5%, Rhat, ACF-k; with several chains also the rank-normalised R-hat and bulk ESS). With
``trace="all"`` the burn-in is shaded grey and a blue line marks the start of the imputation
phase. Several chains are overlaid in different colours (at most the first 20 are drawn, and the
title says so; the trend line, ACF, density and summaries use all of them). For multi-chain runs a rank plot (rank histograms per chain, Vehtari et al. 2021) is
appended.

Differences from mitml, on purpose: the x-axis shows true iteration numbers for any ``thin``
(bug B17), a trend window of 0 draws nothing instead of failing (B17), and a numeric ``group``
selects both the label and the array slice of those groups (bug B6). Figures are built without
pyplot (no global state, headless-safe) and never shown; ``export`` writes them to ``folder``
with mitml's file names (the rank plot as ``RANKS``, with the selected blocks, position or groups
appended when ``print``, ``pos`` or ``group`` select fewer).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import MitmlError, MitmlTypeError, MitmlWarning
from ..sampling.arguments import check_count
from .density import kernel_density
from .entries import file_stem, group_labels, parameter_entries
from .mitml_stats import autocorrelation, segment_rhat, smoothed_acf
from .rank import rank_diagnostics
from .summary import check_n_rhat

__all__ = ["plot_imputations", "moving_average"]

BLOCKS = ("beta", "beta2", "psi", "sigma")
MAX_CHAINS_DRAWN = 20


def moving_average(x, half_window: int) -> np.ndarray:
    """mitml's centred moving average (window ``2B+1``; shrinking symmetric windows at the ends).

    ``half_window`` 0 returns the series itself (mitml misbehaves there, B17); windows longer
    than the series are shortened to fit.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    b = int(min(max(half_window, 0), (n - 1) // 2))
    if b == 0:
        return x.copy()
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(n)
    half = np.minimum(np.minimum(i, n - 1 - i), b)
    return (c[i + half + 1] - c[i - half]) / (2 * half + 1)


def _check_print(print_) -> list:
    """The blocks named by ``print`` (a block name or a list of them), duplicates dropped."""
    if isinstance(print_, str):
        blocks = [print_]
    elif isinstance(print_, (list, tuple, np.ndarray, set, frozenset)) and np.ndim(print_) <= 1:
        blocks = list(print_)
    else:
        raise MitmlTypeError(f"'print' must be a block name or a list of them among {BLOCKS}, "
                             f"got {print_!r}.")
    bad = [b for b in blocks if not isinstance(b, str) or b not in BLOCKS]
    if bad:
        raise MitmlError(f"'print' must name blocks among {BLOCKS}, got {bad}.")
    if not blocks:
        raise MitmlError(f"'print' must name at least one block among {BLOCKS}, got {print_!r}.")
    return [b for b in BLOCKS if b in blocks]


def _check_args(imp, print_, pos, group, trace, thin, smooth, n_rhat, export):
    blocks = _check_print(print_)
    if trace not in ("imputation", "burnin", "all"):
        raise MitmlError(f"'trace' must be 'imputation', 'burnin' or 'all', got {trace!r}.")
    thin = check_count("thin", thin, 1)
    if smooth is not None and (not isinstance(smooth, (int, float, np.integer, np.floating))
                               or np.isnan(smooth) or smooth < 0):
        raise MitmlError(f"'smooth' must be a non-negative number or None, got {smooth!r}.")
    n_rhat = check_n_rhat(n_rhat)
    if export in (None, "none"):
        export = None
    elif export not in ("png", "pdf"):
        raise MitmlError(f"'export' must be None, 'png' or 'pdf', got {export!r}.")
    if isinstance(group, str):
        if group != "all":
            raise MitmlError(f"'group' must be 'all' or group numbers (1-based), got {group!r}.")
        groups = list(range(imp.n_groups))
    else:
        groups = _check_groups(group, imp.n_groups)
    if pos is not None and len(blocks) > 1:
        warnings.warn("The 'pos' argument may only be used when 'print' names exactly one block "
                      "('beta', 'beta2', 'psi' or 'sigma').", MitmlWarning, stacklevel=3)
        pos = None
    if pos is not None:
        pos = _check_pos(pos)
    return blocks, pos, groups, export, thin, n_rhat


def _check_groups(group, n_groups: int) -> list:
    """0-based group indices from 1-based group numbers (ints or whole floats, as R's doubles)."""
    message = f"'group' must be 'all' or whole numbers between 1 and {n_groups}, got {group!r}."
    try:
        values = [group] if np.ndim(group) == 0 else list(group)
    except TypeError:
        raise MitmlTypeError(message) from None
    if not values:
        raise MitmlError(message)
    groups = []
    for g in values:
        try:
            g = check_count("group", g, 1)
        except MitmlTypeError:
            raise MitmlTypeError(message) from None
        except MitmlError:
            raise MitmlError(message) from None
        if g > n_groups:
            raise MitmlError(message)
        if g - 1 not in groups:  # a group named twice is plotted once
            groups.append(g - 1)
    return groups


def _check_thin(imp, blocks, trace, thin) -> None:
    """Every panel needs at least one draw of the phase it summarises after thinning (mitml
    stops with R's "wrong sign in 'by' argument" there)."""
    if not blocks:
        return
    phase = "burnin" if trace == "burnin" else "imputation"
    draws = int((imp.burnin if phase == "burnin" else imp.imputation)[blocks[0]].shape[1])
    if draws == 0:
        raise MitmlError(f"trace={trace!r}: the run kept no burn-in draws to plot; use "
                         f"trace='imputation'." if phase == "burnin" else
                         "There are no imputation-phase draws to plot.")
    if thin > draws:
        raise MitmlError(f"'thin' ({thin}) is larger than the {draws} {phase}-phase draws per "
                         f"chain; use a 'thin' of at most {draws}.")


def _check_pos(pos) -> tuple:
    """1-based ``(row, col)`` as ints (whole floats accepted, as R's doubles)."""
    if isinstance(pos, str) or np.ndim(pos) != 1 or len(pos) != 2:
        raise MitmlTypeError(f"'pos' must be (row, col), two whole numbers >= 1, got {pos!r}.")
    return tuple(check_count("pos", v, 1) for v in pos)


def _select_pos(entries, block, pos, imp):
    """Entries at 1-based ``pos`` (checked ints); transposed psi/sigma positions are fixed with a
    warning."""
    i, j = pos
    hit = [e for e in entries if (e.row + 1, e.col + 1) == (i, j)]
    if not hit and block in ("psi", "sigma"):
        alt = [e for e in entries if (e.row + 1, e.col + 1) == (j, i)]
        if alt:
            warnings.warn(f"Could not use entry [{i},{j}] in '{block}'. Used [{j},{i}] instead.",
                          MitmlWarning, stacklevel=3)
            return alt
    if not hit:
        hint = ""
        if block in ("psi", "sigma") and imp.keep_chains == "diagonal":
            hint = (f" With keep_chains='diagonal' only the diagonal is kept, as entries [i,1] "
                    f"(as in mitml): the variance [{i},{i}] is pos=({i}, 1).")
        raise MitmlError(f"There is no entry [{i},{j}] in '{block}'.{hint}")
    return hit


def _series(imp, e, phase, thin):
    """(chain, draw) thinned draws and their iteration numbers (1-based, true iterations)."""
    burn = imp.burnin[e.block][:, :, e.group, e.row, e.col]
    imput = imp.imputation[e.block][:, :, e.group, e.row, e.col]
    if phase == "burnin":
        full, offset = burn, 0
    elif phase == "imputation":
        full, offset = imput, burn.shape[1]
    else:
        full, offset = np.concatenate([burn, imput], axis=1), 0
    keep = np.arange(thin - 1, full.shape[1], thin)
    return np.asarray(full[:, keep], dtype=float), keep + 1 + offset


def _figure(imp, e, trace, thin, smooth, n_rhat, rank_stats):
    from matplotlib.figure import Figure

    trc, iters = _series(imp, e, trace, thin)
    drw, _ = _series(imp, e, "burnin" if trace == "burnin" else "imputation", thin)
    chains = trc.shape[0]
    shown = min(chains, MAX_CHAINS_DRAWN)
    fig = Figure(figsize=(8.0, 5.2))
    # fixed margins: a constrained layout costs ~0.4 s per figure and gives the same picture
    gs = fig.add_gridspec(2, 2, width_ratios=(5, 1), height_ratios=(1.13, 1), left=0.085, right=0.985,
                          bottom=0.085, top=0.95, wspace=0.04, hspace=0.28)
    ax_tr, ax_acf = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[1, 0])
    ax_den, ax_txt = fig.add_subplot(gs[0, 1], sharey=ax_tr), fig.add_subplot(gs[1, 1])
    lo, hi = np.nanmin(trc), np.nanmax(trc)
    pad = (hi - lo) * 0.03 if hi > lo else 0.5
    colors = ["black"] if chains == 1 else [f"C{c % 10}" for c in range(shown)]
    n_burn = imp.burnin[e.block].shape[1]
    if trace == "all" and n_burn:
        ax_tr.axvspan(iters[0] - 0.5, n_burn + 0.5, color="0.92", zorder=0)
    for c in range(shown):
        y = trc[c]
        if trace == "all" and chains == 1:
            burn = iters <= n_burn
            ax_tr.plot(iters[burn], y[burn], color="0.75", lw=0.8)
            ax_tr.plot(iters[iters >= n_burn], y[iters >= n_burn], color="black", lw=0.8)
        else:
            ax_tr.plot(iters, y, color=colors[c], lw=0.8, alpha=1.0 if chains == 1 else 0.7)
    if smooth:
        ratio = imp.n_iter / (smooth * thin)  # inf for a subnormal smooth: the widest window
        half = int(np.floor(ratio)) if np.isfinite(ratio) else trc.shape[1]
        ax_tr.plot(iters, moving_average(trc.mean(axis=0), half), color="0.6" if chains == 1
                   else "black", lw=1.2)
    if trace == "all" and n_burn:
        ax_tr.axvline(n_burn, color="blue", lw=1)
    ax_tr.set_ylim(lo - pad, hi + pad)
    ax_tr.set_xlabel("Iteration", fontweight="bold")
    ax_tr.set_ylabel("Trace", fontweight="bold")
    title = e.title + (f"  ({chains} chains" + (f", first {shown} drawn)" if shown < chains
                                                else ")") if chains > 1 else "")
    ax_tr.set_title(title, fontsize=10)
    # ACF of the summary draws, averaged over chains
    lag = int(np.ceil(imp.n_iter / thin))
    rho = autocorrelation(drw, lag + 2).mean(axis=0)
    lags = np.arange(1, lag + 1)
    ax_acf.vlines(lags, 0, rho[1 : lag + 1], color="black", lw=1.2)
    ax_acf.axhline(0, color="black", lw=0.6)
    ax_acf.axhline(0.1, color="blue", lw=0.8)
    ax_acf.axhline(-0.1, color="blue", lw=0.8)
    ax_acf.set_ylim(-0.1, 1)
    ax_acf.set_yticks([0, 0.5, 1])
    from matplotlib.ticker import MaxNLocator

    ax_acf.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acf.set_xlabel("Lag", fontweight="bold")
    ax_acf.set_ylabel("ACF", fontweight="bold")
    # density drawn sideways
    grid, dens = kernel_density(drw)
    if chains > 1:
        for c in range(shown):
            g, d = kernel_density(drw[c])
            ax_den.plot(d, g, color=colors[c], lw=0.6, alpha=0.6)
    ax_den.plot(dens, grid, color="black", lw=1)
    ax_den.set_xticks([])
    ax_den.tick_params(labelleft=False)
    # posterior summary panel
    pooled = drw.ravel()
    q = np.quantile(pooled, [0.025, 0.975]) if pooled.size else (np.nan, np.nan)
    try:
        per_chain = segment_rhat(drw, n_rhat) if n_rhat else np.array([np.nan])
        per_chain = per_chain[~np.isnan(per_chain)]  # mean of the chains that have one
        rhat_seg = float(per_chain.mean()) if per_chain.size else np.nan
    except MitmlError:
        rhat_seg = np.nan
    lines = [("EAP:", pooled.mean()), ("MAP:", grid[np.argmax(dens)]),
             ("SD:", pooled.std(ddof=1) if pooled.size > 1 else np.nan),
             ("2.5%:", q[0]), ("97.5%:", q[1]), ("Rhat:", rhat_seg),
             ("ACF-k:", smoothed_acf(rho, lag))]
    if chains > 1 and rank_stats is not None:
        lines += [("rRhat:", rank_stats[0]), ("ESS:", rank_stats[1])]
    text = "\n".join(f"{k:<7}{_panel_number(v, 0 if k == 'ESS:' else 3)}" for k, v in lines)
    ax_txt.axis("off")
    ax_txt.text(0.0, 0.5, text, family="monospace", fontweight="bold", fontsize=7.5,
                va="center", ha="left", transform=ax_txt.transAxes)
    return fig


def _panel_number(value, digits: int) -> str:
    """A number of the summary panel as R prints it: ``NA`` for NaN, ``Inf``/``-Inf``."""
    value = float(value)
    if np.isnan(value):
        return "NA"
    if np.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return f"{value:.{digits}f}"


def plot_imputations(imp, print=("beta", "beta2", "psi", "sigma"), pos=None,  # noqa: A002
                     group="all", trace="imputation", thin=1, smooth=3, n_rhat=3, export=None,
                     folder="mitmlPlots"):
    """Convergence plots of an Imputations object (mitml's ``plot.mitml``).

    Args:
        imp: :class:`~mitml_jax.Imputations`.
        print: block(s) to plot, among ``"beta"``, ``"beta2"``, ``"psi"``, ``"sigma"`` (a name
            or a non-empty list; plotted in that order, each once, as mitml).
        pos: 1-based ``(row, col)`` of one entry; only with a single block in ``print``.
        group: ``"all"`` or 1-based group number(s) (whole floats such as ``1.0`` count).
        trace: ``"imputation"``, ``"burnin"`` or ``"all"`` (part of the chain in the trace).
        thin: keep every ``thin``-th draw (an integer from 1 to the number of draws per chain
            of the phase summarised; ``2.0`` counts as 2).
        smooth: trend line window parameter (half-window ``floor(n_iter / (smooth * thin))``);
            0 or None disables it.
        n_rhat: segments for the R-hat in the summary panel (as in ``summary``: None or a whole
            number below 2 leaves it out).
        export: None (default), ``"png"`` or ``"pdf"``: also write each figure to ``folder``.
        folder: directory for exported files (created if needed; a MitmlError says when it
            cannot be written).

    Returns:
        list of matplotlib Figures: one per entry, then a rank plot when there are >= 2 chains.
        Blocks in ``print`` that the run does not have are left out, as in mitml (``"beta2"``
        exists only for jomo models with level-2 targets); when none is left the list is empty,
        with a MitmlWarning.
    """
    blocks, pos, groups, export, thin, n_rhat = _check_args(imp, print, pos, group, trace, thin, smooth,
                                                            n_rhat, export)
    present = [b for b in blocks if b in imp.imputation]
    if not present:  # e.g. print="beta2" for a pan run: nothing to plot, as in mitml
        warnings.warn(f"'print' names only blocks this run does not have ({', '.join(blocks)}); "
                      f"nothing is plotted. Its blocks are {', '.join(imp.blocks)}.",
                      MitmlWarning, stacklevel=3)
        return []
    _check_thin(imp, present, trace, thin)
    entries = parameter_entries(imp, blocks=present, groups=groups)
    if pos is not None and present:
        entries = _select_pos(entries, present[0], pos, imp)
    rank_stats = {}
    if imp.chains > 1 and entries:
        from .entries import entry_draws

        phase = "burnin" if trace == "burnin" else "imputation"
        x = entry_draws(imp, entries, phase)[:, thin - 1 :: thin]
        if x.shape[1] >= 4:
            rd = rank_diagnostics(x, which=("rhat", "ess_bulk"))
            rank_stats = {e: (rd["rhat"][k], rd["ess_bulk"][k]) for k, e in enumerate(entries)}
    figures = [_figure(imp, e, trace, thin, smooth, n_rhat, rank_stats.get(e)) for e in entries]
    names = [e.file_stem for e in entries]
    if imp.chains > 1 and entries:
        from .rank_plot import rank_plot

        phase = "burnin" if trace == "burnin" else "imputation"
        figures.append(rank_plot(imp, entries, phase=phase, thin=thin))
        names.append(_rank_plot_name(imp, present, groups, entries, pos))
    if export:
        _export(figures, names, export, folder)
    return figures


def _rank_plot_name(imp, blocks, groups, entries, pos) -> str:
    """File name of the rank plot: ``RANKS`` for every block and group; otherwise the selection
    is added (``RANKS_PSI``, ``RANKS_BETA_Group-2``, ``RANKS_BETA_ReadDis_ON_Intercept``), so
    that exporting one block after another does not overwrite the earlier rank plots."""
    if pos is not None and len(entries) == 1:
        return "RANKS_" + entries[0].file_stem
    parts = ["RANKS"]
    if set(blocks) != set(imp.blocks):
        parts.append("-".join(b.upper() for b in blocks))
    if pos is not None:
        parts.append(f"{pos[0]}-{pos[1]}")
    if imp.n_groups > 1 and len(groups) < imp.n_groups:
        labels = group_labels(imp)
        parts.append("Group-" + "-".join(labels[g] for g in groups))
    return file_stem("_".join(parts))


def _export(figures, names, export, folder) -> None:
    """Write the figures to ``folder`` (created if needed) as ``<name>.<export>``."""
    if not isinstance(folder, (str, os.PathLike)):
        raise MitmlTypeError(f"'folder' must be a directory path (str or path-like), got {folder!r}.")
    try:
        os.makedirs(folder, exist_ok=True)
        for fig, name in zip(figures, names):
            fig.savefig(os.path.join(folder, f"{name}.{export}"), dpi=110)
    except OSError as exc:
        raise MitmlError(f"export={export!r}: could not write the plots to folder {os.fspath(folder)!r} "
                         f"({exc.strerror or exc}); pass folder=<a writable directory>.") from None

