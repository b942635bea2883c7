"""Adapters that give fitted statsmodels results the fitted-model protocol (``as_fit``).

``as_fit(obj)`` returns ``obj`` unchanged when it already implements the protocol
(has ``mitml_coef``; see :class:`~mitml_jax.analysis.analysis_list.FittedModel`), otherwise
wraps statsmodels results: OLS/WLS (:class:`LinearFit`), GLM (:class:`GLMFit`), MixedLM
(:class:`~mitml_jax.analysis.adapters_mixedlm.MixedLMFit`) and, for coefficients, covariance and
log-likelihood only, any other statsmodels likelihood result (:class:`StatsmodelsFit`).
Term names are the model's own (``Intercept``, ``Sex[T.Girl]``); :func:`r_term_name` maps them
to R's spelling (``(Intercept)``, ``SexGirl``). statsmodels is never imported here at module
import time.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

__all__ = ["as_fit", "as_fits", "r_term_name", "StatsmodelsFit", "LinearFit", "GLMFit"]

_PROTOCOL_HINT = (
    "implement the fitted-model protocol (methods mitml_coef() -> pd.Series and "
    "mitml_vcov() -> pd.DataFrame at least; see mitml_jax.analysis.analysis_list.FittedModel "
    "and docs/design.md) or pass a statsmodels OLS/WLS, GLM or MixedLM result"
)


def r_term_name(name: str) -> str:
    """Spell a statsmodels/patsy term name as R's ``model.matrix`` would.

    ``Intercept`` -> ``(Intercept)``, ``Sex[T.Girl]`` -> ``SexGirl``,
    ``C(g)[T.b]:x`` -> ``C(g)b:x``, ``Q("I.SES")`` -> ``I.SES``.
    """
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r'Q\(["\']([^"\']*)["\']\)', r"\1", name)
    return re.sub(r"\[T\.([^\]]*)\]", r"\1", name)


def as_fit(obj, data=None):
    """Return ``obj`` as an object implementing the fitted-model protocol.

    Args:
        obj: a fitted model. Objects with a ``mitml_coef`` method are returned as is;
            statsmodels OLS/WLS, GLM and MixedLM results are wrapped; other statsmodels
            likelihood results get coefficients, covariance and log-likelihood only.
        data: optional data frame the model was fitted to (kept on the wrapper).

    Raises:
        MitmlTypeError: for unsupported types; the message names the class and what to implement.
    """
    if hasattr(obj, "mitml_coef"):
        return obj
    model = getattr(obj, "model", None)
    if model is not None and type(obj).__module__.startswith("statsmodels"):
        kind = type(model).__name__
        if kind in ("OLS", "WLS"):
            return LinearFit(obj, data)
        if kind == "GLM":
            return GLMFit(obj, data)
        if kind == "MixedLM":
            from mitml_jax.analysis.adapters_mixedlm import MixedLMFit

            return MixedLMFit(obj, data)
        if hasattr(obj, "params") and hasattr(obj, "cov_params"):
            return StatsmodelsFit(obj, data)
    if isinstance(obj, (list, tuple)):
        raise MitmlTypeError(
            f"Each fitted model must be one fit, got a {type(obj).__name__} of {len(obj)}: the "
            "analysis function returned a list per data set (for the batched lmer, fit all data "
            "sets at once with implist.lmer(formula), or return lmer(formula, [df])[0]).")
    raise MitmlTypeError(
        f"Fitted models of class '{type(obj).__name__}' are not supported by the pooling "
        f"functions: {_PROTOCOL_HINT}."
    )


def as_fits(model, argument: str = "model") -> list:
    """Turn a list of fitted models (e.g. an ``AnalysisList``) into a list of protocol objects.

    Raises:
        MitmlTypeError: if ``model`` is not a non-empty list of fitted models.
    """
    if not isinstance(model, (list, tuple)) or len(model) == 0:
        raise MitmlTypeError(
            f"The '{argument}' argument must be a list of fitted statistical models "
            f"(one per imputed data set, e.g. an AnalysisList); got "
            f"{'an empty ' if isinstance(model, (list, tuple)) else ''}{type(model).__name__}."
        )
    datas = getattr(model, "data", None)
    if datas is not None and len(datas) != len(model):
        raise MitmlError(f"'{argument}.data' must hold one data frame per fitted model.")
    fits = []
    for i, fit in enumerate(model):
        try:
            fits.append(as_fit(fit, None if datas is None else datas[i]))
        except MitmlTypeError as err:
            raise MitmlTypeError(f"'{argument}' element {i + 1} of {len(model)} (index {i}): "
                                 f"{err}") from None
    return fits


def unsupported(fit, method: str, reason: str = "") -> MitmlError:
    """The error raised by protocol methods a fitted-model class cannot support."""
    text = f"'{method}' is not supported for fitted models of class '{fit.class_name}'"
    return MitmlError(text + (f": {reason}" if reason else "."))


class StatsmodelsFit:
    """Protocol wrapper for a statsmodels likelihood result (coefficients, covariance, logLik).

    Attributes:
        result: the wrapped statsmodels result.
        data: the data frame given to :func:`as_fit`, or None.
    """

    def __init__(self, result, data=None):
        self.result = result
        self.data = data

    @property
    def class_name(self) -> str:
        return type(self.result.model).__name__

    def _names(self) -> list:
        params = self.result.params
        if np.ndim(params) == 2:  # one column per equation (MNLogit): "level:term", R's order
            levels = getattr(params, "columns", range(np.shape(params)[1]))
            cov = self.result.cov_params()
            if isinstance(getattr(cov, "index", None), pd.MultiIndex):
                return [f"{a}:{b}" for a, b in cov.index]
            terms = [str(n) for n in self.result.model.exog_names]
            return [f"{level}:{term}" for level in levels for term in terms]
        return [str(n) for n in self.result.model.exog_names]

    def mitml_coef(self) -> pd.Series:
        # equation by equation (column-major), the order of cov_params
        params = np.asarray(self.result.params, dtype=float)
        return pd.Series(params.T.ravel(), index=self._names())

    def mitml_vcov(self) -> pd.DataFrame:
        names = self._names()
        return pd.DataFrame(np.asarray(self.result.cov_params(), dtype=float),
                            index=names, columns=names)

    def mitml_extra(self):
        warnings.warn(
            f"Computation of variance components not supported for objects of class "
            f"'{self.class_name}'; extra parameters are omitted.",
            MitmlWarning,
            stacklevel=3,
        )
        return None

    def mitml_df_com(self):
        df = getattr(self.result, "df_resid", None)
        return None if df is None else float(df)

    def _n_params(self) -> int:
        return int(np.size(self.result.params))

    def mitml_loglik(self):
        reason = ("the model is not fitted by maximum likelihood" if self.class_name in _NOT_ML
                  else None)
        llf = getattr(self.result, "llf", None) if reason is None else None
        if reason is None and (llf is None or not np.isfinite(float(llf))):
            reason = "its results give no finite log-likelihood"
        if reason is not None:
            raise unsupported(self, "mitml_loglik (likelihood-based tests: D2 with "
                              "use='likelihood', D3, D4, anova)",
                              f"{reason}; use method 'D1' or 'D2' (use='wald')")
        return float(llf), self._n_params()

    def mitml_is_reml(self) -> bool:
        return False

    def mitml_refit_ml(self):
        return self

    def _d3_hint(self) -> str:
        return ("D3 needs the likelihood at given parameters; use "
                + ("method 'D1' or 'D2' (use='wald')" if self.class_name in _NOT_ML else "D2 or D4"))

    def mitml_params(self) -> dict:
        raise unsupported(self, "mitml_params (method D3)", self._d3_hint())

    def mitml_loglik_at(self, params: dict) -> float:
        raise unsupported(self, "mitml_loglik_at (method D3)", self._d3_hint())

    def mitml_stacked_loglik(self, fits: list) -> float:
        model = self.result.model
        endog, exog = _stack([f.result.model.endog for f in fits], [f.result.model.exog for f in fits])
        try:
            try:
                refit = type(model)(endog, exog).fit(disp=0)
            except TypeError:
                refit = type(model)(endog, exog).fit()
        except Exception as err:  # noqa: BLE001 - any model class: say what failed and what to do
            raise unsupported(self, "mitml_stacked_loglik (method D4)",
                              f"refitting {self.class_name} on the stacked data failed "
                              f"({type(err).__name__}: {err}); use method 'D1', 'D2' or 'D3'"
                              ) from None
        return float(refit.llf) / len(fits)

    def mitml_r2(self, which):
        raise unsupported(self, "multilevel_r2",
                          "multilevel R-squared needs a mixed model (MixedLM or lmer)")

    def mitml_formula(self) -> str:
        formula = getattr(self.result.model, "formula", None)
        return str(formula) if formula is not None else self.class_name

    def mitml_stacked_loglik_data(self, datalist: list) -> float:
        """D4 with ``data=``: refit the model's formula on the stacked data sets, logLik / m."""
        formula = getattr(self.result.model, "formula", None)
        if formula is None:
            raise unsupported(self, "the 'data' argument of D4",
                              "the model was not fitted from a formula; leave 'data' out")
        stacked = pd.concat(list(datalist), ignore_index=True)
        return float(self._refit_formula(str(formula), stacked).llf) / len(datalist)

    def _refit_formula(self, formula, data):
        model = self.result.model
        if type(model).__name__ == "WLS":
            raise unsupported(self, "the 'data' argument of D4",
                              "WLS weights cannot be recovered from data; leave 'data' out")
        formula_model = type(model).from_formula(formula, data)
        try:
            return formula_model.fit(disp=0)  # discrete models print their convergence otherwise
        except TypeError:
            return formula_model.fit()


# statsmodels classes whose ``llf`` is not the log-likelihood maximised by the fit
_NOT_ML = ("GEE", "NominalGEE", "OrdinalGEE", "QuantReg")


def _stack(endogs, exogs):
    return np.concatenate([np.asarray(e) for e in endogs]), np.vstack([np.asarray(x) for x in exogs])


class LinearFit(StatsmodelsFit):
    """OLS/WLS results (R's ``lm``): residual variance as extra parameter, D3 and D4."""

    def _weights(self):
        w = getattr(self.result.model, "weights", None)
        n = len(self.result.model.endog)
        return np.ones(n) if w is None else np.broadcast_to(np.asarray(w, dtype=float), (n,))

    def mitml_extra(self):
        return pd.Series({"Residual~~Residual": float(self.result.scale)})

    def _n_params(self) -> int:
        return int(self.result.model.rank) + 1

    def mitml_params(self) -> dict:
        model = self.result.model
        resid = np.asarray(model.wendog) - np.asarray(model.wexog) @ np.asarray(self.result.params)
        return {"beta": np.asarray(self.result.params, dtype=float),
                "sigma2": float(resid @ resid / len(resid))}

    def mitml_loglik_at(self, params: dict) -> float:
        """Gaussian log-likelihood at ``beta`` and ``sigma2`` (spec 4.4, with WLS weights)."""
        model = self.result.model
        resid = np.asarray(model.wendog) - np.asarray(model.wexog) @ np.asarray(params["beta"])
        n, sigma2 = len(resid), float(params["sigma2"])
        return float(-0.5 * n * np.log(2.0 * np.pi * sigma2) - resid @ resid / (2.0 * sigma2)
                     + 0.5 * np.sum(np.log(self._weights())))

    def mitml_stacked_loglik(self, fits: list) -> float:
        model = self.result.model
        endog, exog = _stack([f.result.model.endog for f in fits], [f.result.model.exog for f in fits])
        if type(model).__name__ == "WLS":
            weights = np.concatenate([f._weights() for f in fits])
            refit = type(model)(endog, exog, weights=weights).fit()
        else:
            refit = type(model)(endog, exog).fit()
        return float(refit.llf) / len(fits)


_DISPERSION_FAMILIES = ("Gaussian", "Gamma", "InverseGaussian", "Tweedie")


class GLMFit(StatsmodelsFit):
    """GLM results (R's ``glm``): D2-likelihood and D4; D3 is not available (as in mitml)."""

    @property
    def family_name(self) -> str:
        return type(self.result.model.family).__name__

    def mitml_extra(self):
        if self.family_name == "Gaussian":
            return pd.Series({"Residual~~Residual": float(self.result.scale)})
        return super().mitml_extra()

    def _n_params(self) -> int:
        rank = int(np.linalg.matrix_rank(np.asarray(self.result.model.exog)))
        return rank + int(self.family_name in _DISPERSION_FAMILIES)

    def mitml_stacked_loglik(self, fits: list) -> float:
        from statsmodels.genmod.generalized_linear_model import GLM

        models = [f.result.model for f in fits]
        if any(np.ndim(m.endog) != 1 or np.any(getattr(m, "n_trials", 1) != 1) for m in models):
            raise unsupported(self, "mitml_stacked_loglik (method D4)",
                              "binomial models with several trials per row cannot be stacked")
        endog, exog = _stack([m.endog for m in models], [m.exog for m in models])
        kwargs = {}
        for key in ("offset", "exposure"):
            values = [getattr(m, key, None) for m in models]
            if all(v is not None for v in values):
                kwargs[key] = np.concatenate([np.asarray(v) for v in values])
                if key == "exposure":
                    kwargs[key] = np.exp(kwargs[key])  # statsmodels stores log(exposure)
        for key in ("freq_weights", "var_weights"):
            kwargs[key] = np.concatenate([np.asarray(getattr(m, key)) for m in models])
        refit = GLM(endog, exog, family=models[0].family, **kwargs).fit()
        return float(refit.llf) / len(fits)

    def _refit_formula(self, formula, data):
        from statsmodels.genmod.generalized_linear_model import GLM

        model = self.result.model
        if getattr(model, "offset", None) is not None or getattr(model, "exposure", None) is not None:
            raise unsupported(self, "the 'data' argument of D4",
                              "offsets cannot be recovered from data; leave 'data' out")
        return GLM.from_formula(formula, data, family=model.family).fit()
