"""Adapters that give fitted statsmodels results the fitted-model protocol (``as_fit``).

``as_fit(obj)`` returns ``obj`` unchanged when it already implements the protocol
(has ``mitml_coef``), otherwise wraps supported statsmodels results:
OLS/WLS (``RegressionResults``), GLM (``GLMResults``) and MixedLM (``MixedLMResults``).
statsmodels is imported lazily.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError, MitmlTypeError

__all__ = ["as_fit", "as_fits"]


_PROTOCOL_HINT = (
    "implement the fitted-model protocol (methods mitml_coef() -> pd.Series and "
    "mitml_vcov() -> pd.DataFrame at least; see mitml_jax.analysis.analysis_list.FittedModel "
    "and docs/design.md) or pass a statsmodels OLS/WLS, GLM or MixedLM result"
)


def as_fit(obj, data=None):
    """Return ``obj`` as an object implementing the fitted-model protocol.

    Args:
        obj: a fitted model. Objects with a ``mitml_coef`` method are returned as is;
            statsmodels OLS/WLS, GLM and MixedLM results are wrapped.
        data: optional data frame the model was fitted to (used by D4 stacking when the
            model's own data cannot be recovered).

    Raises:
        MitmlTypeError: for unsupported types; the message names the class and what to implement.
    """
    if hasattr(obj, "mitml_coef"):
        return obj
    model = getattr(obj, "model", None)
    if model is not None and type(obj).__module__.startswith("statsmodels"):
        wrapped = _wrap_statsmodels(obj, data)
        if wrapped is not None:
            return wrapped
    raise MitmlTypeError(
        f"Fitted models of class '{type(obj).__name__}' are not supported by the pooling "
        f"functions: {_PROTOCOL_HINT}."
    )


def as_fits(model, argument: str = "model") -> list:
    """Turn a list of fitted models (e.g. an ``AnalysisList``) into a list of protocol objects.

    Args:
        model: a list/tuple of fitted models, one per imputed data set.
        argument: the argument name, for error messages.

    Raises:
        MitmlTypeError: if ``model`` is not a non-empty list of fitted models.
    """
    if not isinstance(model, (list, tuple)) or len(model) == 0:
        raise MitmlTypeError(
            f"The '{argument}' argument must be a list of fitted statistical models "
            f"(one per imputed data set, e.g. an AnalysisList); got {type(model).__name__}."
        )
    datas = getattr(model, "data", None)
    if datas is not None and len(datas) != len(model):
        raise MitmlError(f"'{argument}.data' must hold one data frame per fitted model.")
    return [as_fit(fit, None if datas is None else datas[i]) for i, fit in enumerate(model)]


def _wrap_statsmodels(obj, data):
    """Wrap a statsmodels result, or return None for unsupported model classes."""
    kind = type(obj.model).__name__
    if kind in ("OLS", "WLS"):
        return _StatsmodelsFit(obj, data)
    if kind == "GLM":
        return _StatsmodelsFit(obj, data)
    if kind == "MixedLM":
        return _StatsmodelsFit(obj, data)
    return None


class _StatsmodelsFit:
    """Protocol wrapper around a statsmodels result (coefficients and covariance)."""

    def __init__(self, result, data=None):
        self.result = result
        self.data = data

    def _k(self) -> int:
        return int(getattr(self.result.model, "k_fe", len(self.result.params)))

    def mitml_coef(self) -> pd.Series:
        names = list(self.result.model.exog_names)[: self._k()]
        return pd.Series(np.asarray(self.result.params)[: self._k()], index=names, dtype=float)

    def mitml_vcov(self) -> pd.DataFrame:
        names = list(self.result.model.exog_names)[: self._k()]
        cov = np.asarray(self.result.cov_params())[: self._k(), : self._k()]
        return pd.DataFrame(cov, index=names, columns=names)
