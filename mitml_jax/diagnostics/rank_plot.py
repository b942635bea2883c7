"""Rank plots for multi-chain runs (Vehtari et al. 2021, Fig. 3; ArviZ's ``plot_rank`` style).

All draws of an entry are ranked together; each chain's ranks are binned into a histogram drawn
as bars on its own baseline. Well-mixed chains give flat, similar histograms; a chain stuck
elsewhere piles up at the low or high ranks.
"""

from __future__ import annotations

import numpy as np

from .entries import entry_draws

__all__ = ["rank_plot"]

MAX_PANELS = 30
MAX_CHAINS = 20


def rank_plot(imp, entries, phase: str = "imputation", thin: int = 1, bins: int | None = None):
    """One Figure with a rank-histogram panel per entry (at most 30 entries, 20 chains).

    Args:
        imp: :class:`~mitml_jax.Imputations` with two or more chains.
        entries: :class:`~mitml_jax.diagnostics.entries.Entry` list to show.
        phase: ``"imputation"`` or ``"burnin"``.
        thin: keep every ``thin``-th draw.
        bins: histogram bins (default ``min(20, draws // 5)``, at least 2).

    Returns:
        matplotlib Figure.
    """
    from matplotlib.figure import Figure
    from scipy.stats import rankdata

    shown = entries[:MAX_PANELS]
    x = entry_draws(imp, shown, phase)[:, thin - 1 :: thin]  # (C, D, E)
    chains, draws = x.shape[0], x.shape[1]
    nshow = min(chains, MAX_CHAINS)
    bins = bins or max(2, min(20, draws // 5))
    ncol = min(3, len(shown))
    nrow = int(np.ceil(len(shown) / ncol))
    fig = Figure(figsize=(3.4 * ncol, 0.9 + 0.16 * nshow * nrow + 0.9 * nrow),
                 layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False)
    edges = np.linspace(0, chains * draws, bins + 1)
    for k, e in enumerate(shown):
        ax = axes.flat[k]
        ranks = rankdata(x[:, :, k].ravel()).reshape(chains, draws)
        expected = draws / bins
        for c in range(nshow):
            counts, _ = np.histogram(ranks[c], bins=edges)
            height = counts / (2.2 * expected)
            ax.stairs(c + height, edges, baseline=c, fill=True, color=f"C{c % 10}")
            ax.axhline(c + 1 / 2.2, color="0.3", lw=0.5, ls="--")
        ax.set_yticks(np.arange(nshow) + 0.25)
        ax.set_yticklabels([str(c + 1) for c in range(nshow)], fontsize=6)
        ax.set_xticks([])
        ax.set_title(e.title.split(":")[0] + ":" + e.title.split(":", 1)[1][:40]
                     if ":" in e.title else e.title, fontsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    cut = [f"first {nshow} of {chains} chains"] if nshow < chains else []
    if len(shown) < len(entries):
        cut.append(f"first {len(shown)} of {len(entries)} entries")
    more = f" ({'; '.join(cut)})" if cut else ""
    fig.suptitle(f"Rank plots, {phase} phase{more}: chain (rows) vs pooled rank", fontsize=9)
    return fig
