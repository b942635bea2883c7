"""``AnalysisList``: fitted analysis models, one per imputed data set (mitml's ``mitml.result``).

Also defines :class:`FittedModel`, the protocol that pooling functions need from each fit
(docs/design.md, "Fitted-model protocol"). statsmodels results are wrapped into this protocol by
:func:`mitml_jax.analysis.adapters.as_fit`; the batched ``lmer`` results implement it natively.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

__all__ = ["AnalysisList", "FittedModel"]


@runtime_checkable
class FittedModel(Protocol):
    """What pooling needs from one fitted analysis model.

    Only ``mitml_coef`` and ``mitml_vcov`` are needed by ``test_estimates``, ``test_constraints``
    and the Wald tests (D1, D2-wald); a fit without ``mitml_is_reml`` counts as not REML, and
    one without ``mitml_extra`` has no extra parameters (``extra_pars=True`` warns once). The
    other methods serve the likelihood-based tests and the variance-component summaries; an
    implementation that cannot support one raises :class:`~mitml_jax.errors.MitmlError` naming
    the method and its class.

    Methods:
        mitml_coef: fixed effects / coefficients as a ``pd.Series`` named by term.
        mitml_vcov: their covariance, a ``pd.DataFrame`` with the same names on both axes.
        mitml_extra: variance components as a ``pd.Series`` with mitml's names
            (``"Intercept~~Intercept|ID"``, ``"Intercept~~x|ID"``, ``"Residual~~Residual"``,
            ``"ICC|ID"``), or None when the model has none.
        mitml_df_com: complete-data degrees of freedom, or None.
        mitml_loglik: ``(log-likelihood at the estimates, number of parameters)``.
        mitml_is_reml: whether the fit maximised the restricted likelihood.
        mitml_refit_ml: the same model refitted by maximum likelihood (a ``FittedModel``).
        mitml_params: the parameters D3 averages across imputations, a dict of arrays on the
            scale where they are averaged (e.g. ``beta``, ``tau``, ``sigma2``).
        mitml_loglik_at: log-likelihood of this fit's data at given parameters (same dict layout).
        mitml_stacked_loglik: given the list of fits (one per imputation, this one among them),
            the log-likelihood of the model refitted on the stacked data, divided by m.
        mitml_r2: dict of the multilevel R-squared parts named in ``which``
            (``"RB1"``, ``"RB2"``, ``"SB"``, ``"MVP"``).

    Optional extras used when present: ``class_name`` (attribute; the class reported in
    results and class-mismatch warnings), ``mitml_formula()`` (model text for ``anova``) and
    ``mitml_stacked_loglik_data(datalist)`` (D4 with the ``data`` argument).
    """

    def mitml_coef(self) -> pd.Series: ...

    def mitml_vcov(self) -> pd.DataFrame: ...

    def mitml_extra(self) -> pd.Series | None: ...

    def mitml_df_com(self) -> float | None: ...

    def mitml_loglik(self) -> tuple[float, int]: ...

    def mitml_is_reml(self) -> bool: ...

    def mitml_refit_ml(self) -> "FittedModel": ...

    def mitml_params(self) -> dict: ...

    def mitml_loglik_at(self, params: dict) -> float: ...

    def mitml_stacked_loglik(self, fits: list) -> float: ...

    def mitml_r2(self, which) -> dict: ...


class AnalysisList(list):
    """Fitted analysis models, one per imputed data set (R's ``mitml.result``).

    A plain ``list`` subclass: index, iterate and slice it as a list. The pooling functions
    (``test_estimates``, ``test_models``, ``test_constraints``, ``anova``, ``multilevel_r2``)
    accept it directly.

    Args:
        fits: the fitted models (statsmodels results, ``lmer`` fits, or anything
            implementing :class:`FittedModel`).
        data: optional list of the data frames the models were fitted to (kept when an
            analysis is run with ``include_data=True``; D4 stacks them).
        call: optional text of the analysis expression, for printing.
    """

    def __init__(self, fits=(), data=None, call: str | None = None):
        super().__init__(fits)
        self.data = None if data is None else list(data)
        self.call = call

    def __getitem__(self, item):
        out = super().__getitem__(item)
        if isinstance(item, slice):
            data = None if self.data is None else self.data[item]
            return AnalysisList(out, data=data, call=self.call)
        return out

    def __repr__(self) -> str:
        classes = sorted({type(fit).__name__ for fit in self})
        kinds = ", ".join(classes) if classes else "no fits"
        text = f"AnalysisList of {len(self)} fitted model(s) ({kinds})"
        if self.call:
            text += f"\n  analysis: {self.call}"
        if self.data is not None:
            text += f"\n  data kept for {len(self.data)} imputed data set(s)"
        return text
