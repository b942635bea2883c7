"""``test_models``: pooled model comparisons D1 to D4 (mitml's ``testModels``, spec 4.2-4.6)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mitml_jax.analysis import pooling
from mitml_jax.analysis.adapters import as_fits
from mitml_jax.analysis.adapters import r_term_name
from mitml_jax.analysis.estimates import check_df_com, extract_estimates
from mitml_jax.analysis.printing import df_footer, format_call, format_table, table_lines
from mitml_jax.errors import MitmlError, MitmlWarning

__all__ = ["test_models", "ModelsResult", "TEST_COLUMNS", "test_frame", "loglik_values",
           "pooled_loglik_values", "stacked_loglik", "is_reml"]

TEST_COLUMNS = ["F.value", "df1", "df2", "P(>F)", "RIV"]
TEST_SNAKE = ["f_value", "df1", "df2", "p_value", "riv"]
METHODS = ("D1", "D2", "D3", "D4")


def test_frame(test: dict, index=None) -> pd.DataFrame:
    """One-row mitml test table from a :mod:`pooling` result dict."""
    return pd.DataFrame([[test[k] for k in TEST_SNAKE]], columns=TEST_COLUMNS, index=index)


def is_reml(fit) -> bool:
    """Whether a protocol fit maximised the restricted likelihood (False for fits that give
    only ``mitml_coef`` and ``mitml_vcov``, enough for the Wald tests)."""
    method = getattr(fit, "mitml_is_reml", None)
    return bool(method()) if method is not None else False


def _class_name(fit) -> str:
    return getattr(fit, "class_name", type(fit).__name__)


class ModelsResult:
    """Result of :func:`test_models` (mitml's ``mitml.testModels``).

    Attributes:
        test: one-row DataFrame ``F.value, df1, df2, P(>F), RIV``.
        m, method, use, ariv, adj_df, df_com, data, reml, refit, call: as in mitml.
    """

    def __init__(self, test, m, method, use, ariv, df_com, data, reml, refit, call):
        self.test, self.m, self.method, self.use, self.ariv = test, m, method, use, ariv
        self.df_com, self.adj_df = df_com, df_com is not None
        self.data, self.reml, self.refit, self.call = data, reml, refit, call

    def to_frame(self) -> pd.DataFrame:
        """The test with snake_case columns (f_value, df1, df2, p_value, riv)."""
        return self.test.rename(columns=dict(zip(TEST_COLUMNS, TEST_SNAKE)))

    def _method_text(self) -> str:
        text = self.method
        if self.method == "D2":
            text += f" ({self.use})"
        if self.method == "D4" and self.ariv == "robust":
            text += " (robust)"
        return text

    def __str__(self) -> str:
        out = (f"\nCall:\n\n{self.call}\n\nModel comparison calculated from {self.m} imputed "
               f"data sets.\nCombination method: {self._method_text()}\n\n")
        out += table_lines(format_table(self.test.to_numpy(), None, TEST_COLUMNS,
                                        digits=[3, 0, 3, 3, 3]), indent=True) + "\n"
        footer = []
        if self.method == "D1":
            footer.append(df_footer(self.df_com))
        if self.method == "D4":
            footer.append(_stacking_text(self.data))
        if self.reml:
            footer.append("Models originally fitted with REML were refitted using ML." if self.refit
                          else "Models fitted with REML were used as is.")
        if footer:
            out += "\n".join(footer) + "\n\n"
        return out

    __repr__ = __str__
    summary = __str__


def _stacking_text(data: bool) -> str:
    return ("Data for stacking were extracted from the `data` argument." if data else
            "Data for stacking were automatically extracted from the fitted models.")


def loglik_values(fits):
    """``(log-likelihoods (m,), number of parameters)`` of a list of protocol fits."""
    values = [fit.mitml_loglik() for fit in fits]
    ll = np.array([v[0] for v in values], dtype=float)
    if not np.all(np.isfinite(ll)):
        imps = ", ".join(str(i + 1) for i in np.nonzero(~np.isfinite(ll))[0])
        raise MitmlError(f"The fitted models' log-likelihood is not finite in imputation(s) "
                         f"{imps}; check those fits, or use method 'D1'.")
    return ll, int(values[0][1])


def pooled_loglik_values(fits) -> np.ndarray:
    """D3: each data set's log-likelihood at the parameters averaged over imputations."""
    params = [fit.mitml_params() for fit in fits]
    pooled = {key: np.mean([np.asarray(p[key], dtype=float) for p in params], axis=0)
              for key in params[0]}
    return np.array([fit.mitml_loglik_at(pooled) for fit in fits], dtype=float)


def stacked_loglik(fits, data=None) -> float:
    """D4: log-likelihood of the model refitted on the stacked data, divided by m."""
    if data is None:
        return float(fits[0].mitml_stacked_loglik(fits))
    if not isinstance(data, (list, tuple)) or len(data) != len(fits) or not all(
            isinstance(d, pd.DataFrame) for d in data):
        raise MitmlError("The 'data' argument must be a list of imputed data sets (DataFrames) "
                         "that correspond to the fitted model objects, one per imputation.")
    method = getattr(fits[0], "mitml_stacked_loglik_data", None)
    if method is None:
        raise MitmlError(f"The 'data' argument is not supported for fitted models of class "
                         f"'{_class_name(fits[0])}'; leave it out to stack the models' own data.")
    return float(method(list(data)))


def _check_lists(model, null_model):
    if not isinstance(model, (list, tuple)) or not isinstance(null_model, (list, tuple)):
        raise MitmlError("The 'model' and 'null_model' arguments must be lists of fitted "
                         "statistical models.")
    if len(model) != len(null_model):
        raise MitmlError("The 'model' and 'null_model' arguments must be lists with the same length.")


def _choice(value, name, choices):
    if value not in choices:
        raise MitmlError(f"'{name}' must be one of {', '.join(map(repr, choices))} (got {value!r}).")
    return value


def test_models(model, null_model, method: str = "D1", use: str = "wald", ariv: str = "default",
                df_com=None, data=None, *, _call: str | None = None):
    """Compare nested models fitted to every imputed data set (mitml's ``testModels``).

    Args:
        model, null_model: lists of fitted models (full and restricted), one per imputation.
        method: ``"D1"`` (pooled Wald), ``"D2"`` (pooled chi-square), ``"D3"`` (Meng-Rubin
            likelihood ratio) or ``"D4"`` (Chan-Meng stacked likelihood ratio).
        use: D2 only, ``"wald"`` or ``"likelihood"``.
        ariv: ``"default"``, ``"positive"`` (D2, D3, D4) or ``"robust"`` (D4).
        df_com: D1 only, complete-data df for Reiter's small-sample df.
        data: D4 only, list of the imputed data sets to stack.

    Returns:
        :class:`ModelsResult`.
    """
    _check_lists(model, null_model)
    _choice(method, "method", METHODS)
    _choice(use, "use", ("wald", "likelihood"))
    _choice(ariv, "ariv", ("default", "positive", "robust"))
    if df_com is not None and method != "D1":
        warnings.warn(f"Complete-data degrees of freedom are not available for use with "
                      f"'{method}' and were ignored.", MitmlWarning, stacklevel=2)
    if use == "likelihood" and method != "D2":
        warnings.warn(f"The 'likelihood' option is not available with method '{method}' and was "
                      "ignored.", MitmlWarning, stacklevel=2)
    if data is not None and method != "D4":
        warnings.warn(f"The 'data' argument is not used with method '{method}' and was ignored.",
                      MitmlWarning, stacklevel=2)
    if ariv == "positive" and method == "D1":
        warnings.warn("The 'positive' option is not available with method 'D1' and was ignored.",
                      MitmlWarning, stacklevel=2)
    if ariv == "robust" and method != "D4":
        warnings.warn(f"The 'robust' option is not available with method '{method}' and was "
                      "ignored.", MitmlWarning, stacklevel=2)
    if method == "D1":
        df_com = None if df_com is None else float(check_df_com(df_com, [], single=True)[0])
    fits, nulls = as_fits(model, "model"), as_fits(null_model, "null_model")
    m = len(fits)
    if m < 2:
        raise MitmlError("Pooling needs at least two imputed data sets (got m = 1).")
    if _class_name(fits[0]) != _class_name(nulls[0]):
        warnings.warn("The 'model' and 'null_model' arguments appear to include objects of "
                      "different classes. Results may not be trustworthy.", MitmlWarning,
                      stacklevel=2)
    reml = any(is_reml(f) for f in fits + nulls)
    likelihood = (method == "D2" and use == "likelihood") or method in ("D3", "D4")
    if likelihood:
        _warn_different_rows(fits, nulls, method if method != "D2" else "D2 (likelihood)")
    refit = reml and likelihood
    if refit:
        fits = [f.mitml_refit_ml() for f in fits]
        nulls = [f.mitml_refit_ml() for f in nulls]

    if method == "D1" or (method == "D2" and use == "wald"):
        q, u = _differing(fits, nulls)
        if method == "D1":
            test = pooling.d1(q, u, df_com=df_com)
        else:
            d = np.array([qi @ np.linalg.solve(ui, qi) for qi, ui in zip(q, u)])
            test = pooling.d2(d, q.shape[1], ariv=ariv)
    elif method == "D2":
        ll, df = loglik_values(fits)
        ll0, df0 = loglik_values(nulls)
        diff = ll0 - ll
        diff[np.isclose(ll, ll0, rtol=1.5e-8, atol=0.0)] = 0.0
        k = _k(df, df0)
        if np.any(diff > 0):
            bad = ", ".join(str(i + 1) for i in np.nonzero(diff > 0)[0])
            warnings.warn(f"The 'null_model' fits better than 'model' in imputation(s) {bad} "
                          "(a larger log-likelihood): the models are not nested, or a fit did "
                          "not converge. D2's statistic is then undefined (NaN).", MitmlWarning,
                          stacklevel=2)
        with np.errstate(invalid="ignore"):
            test = pooling.d2(-2.0 * diff, k, ariv=ariv)
    elif method == "D3":
        ll, df = loglik_values(fits)
        ll0, df0 = loglik_values(nulls)
        test = pooling.d3(ll, ll0, pooled_loglik_values(fits), pooled_loglik_values(nulls),
                          _k(df, df0), ariv=ariv)
    else:
        ll, df = loglik_values(fits)
        ll0, df0 = loglik_values(nulls)
        test = pooling.d4(ll, ll0, stacked_loglik(fits, data), stacked_loglik(nulls, data),
                          _k(df, df0), df, ariv=ariv)
    if method in ("D3", "D4"):
        use = "likelihood"
    call = _call or format_call("test_models", ["model", "null_model"],
                                method=None if method == "D1" else method,
                                use=None if use == "wald" or method != "D2" else use,
                                ariv=None if ariv == "default" else ariv, df_com=df_com,
                                data=None if data is None else f"<{len(data)} data sets>")
    return ModelsResult(test_frame(test), m, method, use, ariv, df_com if method == "D1" else None,
                        data is not None and method == "D4", reml, refit, call)


def _nobs(fit):
    """Number of observations a fit used (``nobs`` of the fit or of its statsmodels result), or
    None when the fit does not tell."""
    n = getattr(fit, "nobs", None)
    if n is None:
        n = getattr(getattr(fit, "result", None), "nobs", None)
    if callable(n):
        n = n()
    try:
        return int(n)
    except (TypeError, ValueError):
        return None


def _warn_different_rows(fits, nulls, method: str) -> None:
    """Warn when a full and a null model were fitted to different numbers of observations.

    Their log-likelihoods then refer to different data, and D2 (likelihood), D3 and D4 are not
    valid (mitml computes them without a word; e.g. missing values in a predictor of the full
    model only: R's ``lm``/``lmer`` and our fits drop those rows from the full model alone).
    """
    for i, (fit, null) in enumerate(zip(fits, nulls), start=1):
        n_full, n_null = _nobs(fit), _nobs(null)
        if n_full is not None and n_null is not None and n_full != n_null:
            warnings.warn(
                f"The 'model' and 'null_model' fits use different numbers of observations "
                f"({n_full} and {n_null} in imputation {i}), e.g. because of missing values in "
                f"variables of one model only; the likelihood-based comparison {method} is then "
                "not valid. Fit both models to the same rows (drop incomplete rows first) or "
                "use method 'D1'.", MitmlWarning, stacklevel=3)
            return


def _k(df_full, df_null) -> int:
    k = int(df_full) - int(df_null)
    if k <= 0:
        raise MitmlError("The 'model' and 'null_model' appear not to be nested or include the "
                         "same set of parameters (the full model must have more parameters).")
    return k


def _canonical(name) -> str:
    """A term name as R spells it, so that ``Intercept`` (statsmodels) matches ``(Intercept)``
    (lmer) and ``Sex[T.Girl]`` matches ``SexGirl``."""
    return r_term_name(str(name))


def _differing(fits, nulls):
    """Estimates (m, k) and covariances (m, k, k) of the parameters in the full model only.

    Names are compared in R's spelling. Parameters of the null model that the full model lacks
    (the models are not nested) are warned about: the Wald test then tests the full model's
    extra parameters only, as mitml does without comment.
    """
    names, q, u = extract_estimates(fits)
    null_names = [str(n) for n in nulls[0].mitml_coef().index]
    null_set = {_canonical(n) for n in null_names}
    idx = [i for i, n in enumerate(names) if _canonical(n) not in null_set]
    if not idx:
        raise MitmlError("The 'model' and 'null_model' appear not to be nested or include the "
                         "same set of parameters.")
    full_set = {_canonical(n) for n in names}
    extra = [n for n in null_names if _canonical(n) not in full_set]
    if extra:
        warnings.warn(f"The 'null_model' has parameters that 'model' lacks "
                      f"({', '.join(map(repr, extra))}): the models are not nested, and the test "
                      "covers only the parameters of 'model' that 'null_model' lacks. Compare "
                      "nested models.", MitmlWarning, stacklevel=3)
    q, u = q[:, idx], u[:, idx][:, :, idx]
    _check_finite([names[i] for i in idx], q, u)
    _check_identified([names[i] for i in idx], u)
    return q, u


def _check_finite(names, q, u) -> None:
    """Refuse non-finite estimates or (co)variances of the tested parameters, naming the
    imputations (the Wald statistic would be NaN)."""
    bad = ~(np.all(np.isfinite(q), axis=1) & np.all(np.isfinite(u), axis=(1, 2)))
    if bad.any():
        imps = ", ".join(str(i + 1) for i in np.nonzero(bad)[0])
        raise MitmlError(f"The fitted models have non-finite estimates or variances of the "
                         f"tested parameters {names} in imputation(s) {imps}; check those fits "
                         "(e.g. separation in a logistic model).")


def _check_identified(names, u) -> None:
    """Refuse tested parameters whose covariance matrix is singular in some imputation (a
    parameter with zero variance, or collinear predictors whose estimates statsmodels' pseudo-
    inverse does not identify): the Wald statistic would be arbitrary."""
    bad = [i for i, ui in enumerate(u, start=1) if pooling.is_singular_covariance(ui)]
    if bad:
        raise MitmlError(
            f"The covariance matrix of the tested parameters {names} is singular in imputation(s) "
            f"{', '.join(map(str, bad[:10]))}{' ...' if len(bad) > 10 else ''}: some of them are "
            "not identified (e.g. collinear predictors, or a parameter with zero variance). Drop "
            "the redundant terms from the model.")


test_models.__test__ = False
