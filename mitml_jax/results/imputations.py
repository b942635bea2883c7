"""The result of ``pan_impute`` / ``jomo_impute`` (mitml's class ``mitml``).

Host-side only (NumPy/pandas). The samplers fill it once, at the seam where draws leave the
device; everything else (completion, summaries, plots, ArviZ export) reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import MitmlError

__all__ = ["Imputations"]

BLOCKS = ("beta", "beta2", "psi", "sigma")


@dataclass(eq=False)
class Imputations:
    """Imputations and parameter draws of one sampler run.

    Attributes:
        data: a copy of the caller's DataFrame, original row order, index and dtypes.
        spec: the :class:`~mitml_jax.spec.model_spec.ModelSpec` of the imputation model.
        kind: ``"pan"`` or ``"jomo"``.
        call: the call as text, for printing.
        n_burn, n_iter, m, chains: iteration counts (every chain burns in ``n_burn`` iterations,
            then saves an imputation every ``n_iter`` iterations).
        seed: the seed the run started from.
        prior: per group, a dict of NumPy prior arrays (pan: a, Binv, c, Dinv; jomo: Binv, Dinv, a).
        keep_chains: ``"full"`` or ``"diagonal"``.
        random_L1: ``"none"``, ``"mean"`` or ``"full"`` (jomo; ``"none"`` for pan).
        replacement: (n_miss, m) imputed values; categorical targets hold integer codes into
            ``spec.categories[column]``.
        index: (n_miss, 2) integer (row position in ``data``, column position in ``data.columns``),
            column-major over targets as in mitml's ``index.mat`` (0-based here).
        burnin, imputation: block name -> draws of shape (chain, draw, group, rows, cols), for the
            burn-in and the imputation phase; ``"diagonal"`` keeps (chain, draw, group, rows, 1).
        labels: block name -> (row labels, column labels) used by summaries and plots.
        imputation_source: (m, 2) integer (chain, imputation-phase draw) each imputation comes from.
        failures: name -> (chain,) boolean or count arrays of numerical-failure flags.
        state: the last sampler state of every chain (for ``extend``), or None.
        extra: anything else a sampler wants to keep (dtype, save_pred frame, ...);
            ``extra["draws_dropped"]`` marks an object saved with ``save(path, drop=True)``.
    """

    data: pd.DataFrame
    spec: Any
    kind: str
    call: str
    n_burn: int
    n_iter: int
    m: int
    chains: int
    seed: Any
    prior: list
    keep_chains: str
    random_L1: str
    replacement: np.ndarray
    index: np.ndarray
    burnin: Mapping[str, np.ndarray]
    imputation: Mapping[str, np.ndarray]
    labels: Mapping[str, tuple]
    imputation_source: np.ndarray
    failures: Mapping[str, np.ndarray] = field(default_factory=dict)
    state: Any = None
    extra: dict = field(default_factory=dict)

    # -- views -----------------------------------------------------------------------------
    @property
    def blocks(self) -> tuple:
        """Parameter blocks present, in mitml's order (beta, beta2, psi, sigma)."""
        return tuple(b for b in BLOCKS if b in self.imputation)

    @property
    def n_groups(self) -> int:
        return int(next(iter(self.imputation.values())).shape[2])

    @property
    def draws_dropped(self) -> bool:
        """True for an object loaded from a file saved with ``save(path, drop=True)``: its
        parameter draws (``burnin``, ``imputation``) hold zero draws."""
        return bool(self.extra.get("draws_dropped"))

    def _require_draws(self, method: str) -> None:
        """A MitmlError for ``method`` when the parameter draws were dropped when saved."""
        if self.draws_dropped:
            raise MitmlError(
                f"{method}: this Imputations object has no parameter draws; they were dropped "
                "when it was saved with save(path, drop=True). Save the run without drop=True "
                "to keep them (its imputations and completed data are still available)."
            )

    # -- delegations to the modules that own each capability --------------------------------
    def complete(self, print="all", force_list=False):
        """Completed data sets (mitml's ``mitmlComplete``); see :func:`mitml_jax.mitml_complete`."""
        from .complete import mitml_complete

        return mitml_complete(self, print=print, force_list=force_list)

    def summary(self, n_rhat=3, goodness_of_appr=False, autocorrelation=False):
        """Convergence summary (mitml's ``summary.mitml`` plus rank-normalised R-hat and ESS).

        Args:
            n_rhat: segments of each chain for mitml's R-hat (default 3; None or a whole number
                below 2 leaves it out).
            goodness_of_appr: also mitml's goodness of approximation (SDprop).
            autocorrelation: also mitml's autocorrelations at lags 1, ``n_iter`` and
                ``2 * n_iter``.

        Returns:
            :class:`~mitml_jax.diagnostics.summary.ImputationSummary` (prints as mitml's
            summary; ``.to_frame()`` gives the table). See
            :func:`mitml_jax.diagnostics.summary.summarize`.
        """
        self._require_draws("summary")
        from ..diagnostics.summary import summarize

        return summarize(
            self,
            n_rhat=n_rhat,
            goodness_of_appr=goodness_of_appr,
            autocorrelation=autocorrelation,
        )

    def plot(self, **kwargs):
        """Trace, ACF, density and summary panels per parameter (mitml's ``plot.mitml``).

        Keyword arguments (all optional; see
        :func:`mitml_jax.diagnostics.plotting.plot_imputations`): ``print`` (blocks, default
        ``("beta", "beta2", "psi", "sigma")``), ``pos`` (1-based ``(row, col)`` of one entry),
        ``group`` (``"all"`` or 1-based group numbers), ``trace`` (``"imputation"`` (default),
        ``"burnin"`` or ``"all"``), ``thin`` (1), ``smooth`` (3), ``n_rhat`` (3), ``export``
        (None, ``"png"`` or ``"pdf"``) and ``folder`` (``"mitmlPlots"``).

        Returns:
            list of matplotlib Figures: one per entry, then a rank plot when there are two or
            more chains.
        """
        self._require_draws("plot")
        from ..diagnostics.plotting import plot_imputations

        return plot_imputations(self, **kwargs)

    def to_arviz(self):
        """ArviZ data with dims (chain, draw, ...); needs the ``arviz`` extra."""
        self._require_draws("to_arviz")
        from ..diagnostics.arviz_export import to_arviz

        return to_arviz(self)

    def posterior_summary(self):
        """DataFrame ``par, row, col, group, mean, sd, mcse`` with mitml's 1-based positions."""
        self._require_draws("posterior_summary")
        from .posterior import posterior_summary

        return posterior_summary(self)

    # -- continuation and persistence (results/extend.py, results/checkpoint.py) -------------
    def extend(self, m=1, *, n_iter=None, progress=True, callback=None):
        """``m`` more imputations from the same chains, continuing from ``state``.

        With the same ``n_iter`` the draws equal those of an uninterrupted run with more saves
        per chain, bit for bit (e.g. ``pan_impute(m=4)`` vs ``pan_impute(m=2).extend(m=2)``).
        Ctrl-C raises :class:`~mitml_jax.results.extend.InterruptedRun` whose ``partial`` keeps
        the imputations completed so far. Returns a new object; this one is not changed.
        See :func:`mitml_jax.results.extend.extend_imputations`.

        Args:
            m: imputations to add (default 1); ``imp.extend(4)`` adds four.
            n_iter: iterations between the new imputations (default None: the run's ``n_iter``);
                this and the other options are keyword-only.
            progress: show a progress bar.
            callback: optional ``callback(saves_done)`` called after every block of iterations.
        """
        self._require_draws("extend")
        from .extend import extend_imputations

        return extend_imputations(self, m=m, n_iter=n_iter, progress=progress, callback=callback)

    def save(self, path, drop=False):
        """Write this object (draws, imputations, sampler state) to ``path`` (a pickle file; see
        :mod:`mitml_jax.results.checkpoint`); :meth:`load` reads it back.

        ``drop=True`` (mitml's ``write.mitml(..., drop = TRUE)``) leaves out the parameter draws
        of the burn-in and imputation phases for a smaller file: the loaded object keeps its
        imputations and completed data, but ``summary``, ``plot``, ``posterior_summary``,
        ``to_arviz`` and ``extend`` then raise a MitmlError. This object is not changed.
        """
        from .checkpoint import save_imputations

        return save_imputations(self, path, drop=drop)

    @classmethod
    def load(cls, path):
        """Read an object written by :meth:`save` (trusted files only: pickle)."""
        from .checkpoint import load_imputations

        return load_imputations(path)

    def __repr__(self) -> str:
        try:
            from ..diagnostics.printing import format_imputations

            return format_imputations(self)
        except ImportError:  # printing module not available yet
            return f"<Imputations {self.kind}: m={self.m}, chains={self.chains}>"
