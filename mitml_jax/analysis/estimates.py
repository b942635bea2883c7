"""``test_estimates``: Rubin's rules for fitted models or for arrays of estimates (mitml's
``testEstimates``, spec 1.5 and 4.1), with ``coef``, ``vcov`` and ``confint``.

Input conventions for ``qhat``/``uhat`` (as mitml, plus the p = 1 fix of bug B9):

* ``qhat``: a 2-D array of shape (p, m) (parameters in rows, imputations in columns; a
  DataFrame's index names the parameters), a 1-D array of length m (one parameter), or a list of
  m vectors / Series / scalars.
* ``uhat``: None (pool point estimates only); a (p, p, m) array of covariance matrices; a (p, m)
  array of variances (diagonal only; then no full ``T``); for p = 1 a length-m array of variances;
  or a list of m scalars, vectors (variances) or (p, p) matrices.
* Imputation-first arrays, ``qhat`` (m, p) with ``uhat`` (m, p, p), are accepted when only that
  reading matches the shapes (mitml's layout is tried first, so with m = p it wins).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mitml_jax.analysis import pooling
from mitml_jax.analysis.adapters import as_fits
from mitml_jax.analysis.printing import df_footer, format_call, format_table, table_lines
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

__all__ = ["test_estimates", "EstimatesResult", "extract_estimates", "arrays_from_qhat_uhat"]

COLUMNS = ["Estimate", "Std.Error", "t.value", "df", "P(>|t|)", "RIV", "FMI"]
SNAKE = ["estimate", "std_error", "t_value", "df", "p_value", "riv", "fmi"]


def _stacked(fits: list):
    """The fits' optional ``mitml_stack(fits)`` (all estimates at once), or None."""
    stack = getattr(type(fits[0]), "mitml_stack", None)
    return None if stack is None else stack(fits)


def extract_estimates(fits: list):
    """Stack the fits' ``mitml_coef``/``mitml_vcov`` into ``(names, qhat (m, p), uhat (m, p, p))``.

    Fits whose class has ``mitml_stack(fits)`` (e.g. the batched lmer) give all of them at once.
    """
    stacked = _stacked(fits)
    if stacked is not None:
        return stacked[:3]
    coefs = [fit.mitml_coef() for fit in fits]
    names = list(coefs[0].index)
    for i, coef in enumerate(coefs[1:], start=2):
        if sorted(coef.index) != sorted(names):
            raise MitmlError(
                f"Fitted model {i} has parameters {list(coef.index)}, but model 1 has {names}; "
                "all models in 'model' must be the same analysis model.")
    qhat = np.stack([c.reindex(names).to_numpy(dtype=float) for c in coefs])
    uhat = np.stack([fit.mitml_vcov().reindex(index=names, columns=names).to_numpy(dtype=float)
                     for fit in fits])
    return names, qhat, uhat


def _qhat_array(qhat):
    """(names or None, (m, p) array) from mitml-style ``qhat``."""
    if isinstance(qhat, pd.DataFrame):
        return [str(n) for n in qhat.index], qhat.to_numpy(dtype=float).T
    if isinstance(qhat, (list, tuple)):
        if len(qhat) == 0:
            raise MitmlError("'qhat' is empty; give one estimate vector per imputed data set.")
        names = list(qhat[0].index) if isinstance(qhat[0], pd.Series) else None
        rows = [np.atleast_1d(np.asarray(q, dtype=float)).ravel() for q in qhat]
        if len({r.size for r in rows}) != 1:
            raise MitmlError("All elements of 'qhat' must have the same length.")
        return names, np.stack(rows)
    if isinstance(qhat, (np.ndarray, pd.Series)):
        arr = np.asarray(qhat, dtype=float)
        if arr.ndim == 1:
            return None, arr[:, None]
        if arr.ndim == 2:
            return None, arr.T
    raise MitmlTypeError("The 'qhat' argument must be a (p, m) array or a list of m estimate "
                         f"vectors; got {type(qhat).__name__}.")


def _uhat_array(uhat, m: int, p: int):
    """((m, p, p) array, diagonal_only) from mitml-style ``uhat``."""
    if isinstance(uhat, (list, tuple)):
        if len(uhat) != m:
            raise MitmlError(f"'uhat' has {len(uhat)} elements but 'qhat' has {m} imputations.")
        mats, diagonal = [], False
        for u in uhat:
            arr = np.asarray(u, dtype=float)
            if arr.ndim <= 1:
                diagonal = True
                arr = np.diag(np.atleast_1d(arr).ravel())
            mats.append(arr)
        out = np.stack(mats) if len({a.shape for a in mats}) == 1 else None
    else:
        arr = np.asarray(uhat, dtype=float)
        diagonal = arr.ndim <= 2
        if arr.ndim == 3:
            out = np.moveaxis(arr, 2, 0)
        elif arr.ndim == 2:
            out = np.stack([np.diag(arr[:, i]) for i in range(arr.shape[1])])
        elif arr.ndim == 1 and p == 1:
            out = arr[:, None, None]
        else:
            out = None
    if out is None or out.shape != (m, p, p):
        raise MitmlError("Dimensions of 'qhat' and 'uhat' do not match: expected covariance "
                         f"matrices (p, p, m) = ({p}, {p}, {m}) or variances (p, m).")
    if not np.all(np.isfinite(out)):
        raise MitmlError("Missing values in 'uhat' are not allowed.")
    return out, diagonal


def arrays_from_qhat_uhat(qhat, uhat, require_uhat: bool = False):
    """mitml-style ``qhat``/``uhat`` as ``(names, qhat (m, p), uhat (m, p, p) | None, diagonal)``."""
    names, q = _qhat_array(qhat)
    m, p = q.shape
    if isinstance(qhat, np.ndarray) and isinstance(uhat, np.ndarray) and qhat.ndim == 2 \
            and uhat.ndim == 3 and uhat.shape != (p, p, m) and uhat.shape == qhat.shape + qhat.shape[1:]:
        q, uhat = qhat.astype(float), np.moveaxis(uhat, 0, 2)  # imputation-first layout
        m, p = q.shape
    if uhat is None:
        if require_uhat:
            raise MitmlError("Either 'model' or both 'qhat' and 'uhat' must be supplied.")
        return names, q, None, True
    u, diagonal = _uhat_array(uhat, m, p)
    return names, q, u, diagonal


class EstimatesResult:
    """Pooled estimates (mitml's ``mitml.testEstimates``).

    Attributes:
        estimates: DataFrame with mitml's columns ``Estimate, Std.Error, t.value, df, P(>|t|),
            RIV, FMI`` (only ``Estimate`` when no ``uhat`` was given), rows named by parameter.
        extra_pars: DataFrame with column ``Estimate`` (pooled variance components) or None.
        T: full pooled covariance matrix (DataFrame) or None (no uhat, or variances only).
        m, adj_df, df_com, cls_method, call: as in mitml.
    """

    def __init__(self, estimates, extra_pars, T, m, df_com, cls_method, call):
        self.estimates = estimates
        self.extra_pars = extra_pars
        self.T = T
        self.m = m
        self.df_com = df_com
        self.adj_df = df_com is not None
        self.cls_method = cls_method
        self.call = call

    def to_frame(self) -> pd.DataFrame:
        """The estimates with snake_case columns.

        Columns: estimate, std_error, t_value, df, p_value, riv, fmi.
        """
        return self.estimates.rename(columns=dict(zip(COLUMNS, SNAKE)))

    def coef(self) -> pd.Series:
        """Pooled estimates (mitml's ``coef``)."""
        return self.estimates["Estimate"].copy()

    def vcov(self) -> pd.DataFrame:
        """Pooled covariance ``T``; with variances only, SE^2 on the diagonal and NaN elsewhere."""
        if self.T is not None:
            return self.T.copy()
        if "Std.Error" in self.estimates:
            warnings.warn("Could find only diagonal elements of the pooled variance-covariance "
                          "matrix.", MitmlWarning, stacklevel=2)
            se = self.estimates["Std.Error"].to_numpy()
            out = np.full((se.size, se.size), np.nan)
            np.fill_diagonal(out, se**2)
            return pd.DataFrame(out, index=self.estimates.index, columns=self.estimates.index)
        raise MitmlError("Could not find the pooled variance-covariance matrix (pass 'uhat').")

    def confint(self, level: float = 0.95, parm=None) -> pd.DataFrame:
        """Confidence intervals ``Estimate +/- t_{1-a/2}(df) SE`` with the per-parameter df.

        Args:
            level: confidence level in (0, 1).
            parm: parameter names or integer positions (default all).
        """
        from scipy import special

        if "Std.Error" not in self.estimates:
            raise MitmlError("Confidence intervals need standard errors: pass 'uhat'.")
        if not 0.0 < level < 1.0:
            raise MitmlError(f"'level' must be between 0 and 1 (got {level}).")
        est = self.estimates
        if parm is not None:
            parm = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
            positions = all(isinstance(x, (int, np.integer)) for x in parm)
            est = est.iloc[parm] if positions else est.loc[parm]
        alpha = 1.0 - level
        df = est["df"].to_numpy(dtype=float)
        finite = np.isfinite(df)
        q = np.where(finite, special.stdtrit(np.where(finite, df, 1.0), 1.0 - alpha / 2.0),
                     special.ndtri(1.0 - alpha / 2.0))
        half = q * est["Std.Error"].to_numpy()
        lower, upper = _percent_labels(alpha)
        return pd.DataFrame({lower: est["Estimate"].to_numpy() - half,
                             upper: est["Estimate"].to_numpy() + half}, index=est.index)

    def __str__(self) -> str:
        out = (f"\nCall:\n\n{self.call}\n\nFinal parameter estimates and inferences obtained "
               f"from {self.m} imputed data sets.\n\n")
        est = self.estimates
        out += table_lines(format_table(est.to_numpy(), list(est.index), list(est.columns)))
        if self.extra_pars is not None:
            ext = self.extra_pars
            out += "\n" + table_lines(format_table(ext.to_numpy(), list(ext.index), list(ext.columns)))
        return out + "\n" + df_footer(self.df_com) + "\n\n"

    def __repr__(self) -> str:
        return str(self)

    summary = __str__


def _percent_labels(alpha: float):
    """R's ``format(100 * c(a/2, 1 - a/2), digits = 3)`` + " %"."""
    values = [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)]
    decimals = 0
    for v in values:
        if v == 0:
            continue
        sig = float(f"{v:.3g}")
        text = f"{sig:.15f}".rstrip("0").rstrip(".")
        decimals = max(decimals, len(text.split(".")[1]) if "." in text else 0)
    return tuple(f"{v:.{decimals}f} %" for v in values)


def _df_com_by_name(df_com, names) -> list:
    """``df_com`` given per parameter name (dict or Series) as a list in the order of ``names``."""
    given = dict(df_com.items())
    missing = [n for n in names if n not in given]
    unknown = [k for k in given if k not in set(names)]
    if missing or unknown:
        parts = ([f"no value for {missing!r}"] if missing else []) + (
            [f"unknown parameter(s) {unknown!r}"] if unknown else [])
        raise MitmlError(f"'df_com' by name needs exactly the model's parameters {list(names)!r}: "
                         f"{'; '.join(parts)}.")
    return [given[n] for n in names]


def test_estimates(model=None, qhat=None, uhat=None, extra_pars: bool = False, df_com=None, *,
                   var_comp=None):
    """Pool parameter estimates by Rubin's rules (mitml's ``testEstimates``).

    Args:
        model: list of fitted models, one per imputed data set (e.g. an ``AnalysisList``).
        qhat, uhat: alternatively, estimates and their (co)variances (see the module docstring).
        extra_pars: also pool variance components etc. by their mean (``model`` only).
        df_com: complete-data degrees of freedom for the Barnard-Rubin small-sample df: a
            scalar, one per parameter in the order of the model's parameters, or a dict / pandas
            Series keyed by parameter name (safer with statsmodels, which puts factor terms
            first: ``{"NEGLEAD": 20, "WLOAD[T.high]": 30, ...}``).
        var_comp: deprecated name of ``extra_pars`` (as in mitml: used with a warning).

    Returns:
        :class:`EstimatesResult`.
    """
    if var_comp is not None:
        warnings.warn("The 'var_comp' argument is deprecated. Please use 'extra_pars' instead.",
                      MitmlWarning, stacklevel=2)
        extra_pars = bool(var_comp)
    if (model is None) == (qhat is None):
        raise MitmlError("Either 'model' or 'qhat' must be supplied (not both).")
    extra = None
    if model is not None:
        fits = as_fits(model)
        stacked = _stacked(fits)  # once for the estimates and the extra parameters
        names, q, u = extract_estimates(fits) if stacked is None else stacked[:3]
        diagonal = False
        cls_method = fits[0].class_name if hasattr(fits[0], "class_name") else type(fits[0]).__name__
        if extra_pars:
            extra = _pool_extra(fits, stacked)
    else:
        names, q, u, diagonal = arrays_from_qhat_uhat(qhat, uhat)
        cls_method = None
        if extra_pars:
            warnings.warn("The 'extra_pars' argument is ignored when 'qhat' is used.",
                          MitmlWarning, stacklevel=2)
    m, p = q.shape
    if m < 2:
        raise MitmlError("Pooling needs at least two imputed data sets (got m = 1).")
    if names is None:
        names = [f"Parameter.{i + 1}" for i in range(p)]
    if isinstance(df_com, (dict, pd.Series)):
        df_com = _df_com_by_name(df_com, names)
    if df_com is not None:
        dfc = np.atleast_1d(np.asarray(df_com, dtype=float))
        if dfc.size not in (1, p):
            raise MitmlError(f"'df_com' must be one number or one per parameter ({p}); got {dfc.size}.")
        if np.any(np.isnan(dfc)) or np.any(dfc <= 0):
            raise MitmlError(f"'df_com' must be positive (complete-data degrees of freedom), got {df_com!r}.")
    res = pooling.rubin(q, u, df_com=df_com)
    if u is None:
        estimates = pd.DataFrame({"Estimate": res["estimate"]}, index=names)
        T = None
    else:
        estimates = pd.DataFrame(np.column_stack([res[k] for k in SNAKE]), index=names, columns=COLUMNS)
        T = None if diagonal else pd.DataFrame(res["T"], index=names, columns=names)
    call = format_call("test_estimates", ["model"] if model is not None else
                       (["qhat", "uhat"] if uhat is not None else ["qhat"]),
                       extra_pars=extra_pars or None, df_com=df_com)
    return EstimatesResult(estimates, extra, T, m, df_com, cls_method, call)


def _pool_extra(fits, stacked):
    """Mean of the extra parameters: from ``stacked`` (the fits' ``mitml_stack``) when not None,
    else from every fit's ``mitml_extra``."""
    if stacked is not None:
        frame = stacked[3]
        return pd.DataFrame({"Estimate": frame.mean(axis=1)})
    series = [fit.mitml_extra() for fit in fits]
    if any(s is None for s in series):
        return None
    frame = pd.concat(series, axis=1)
    return pd.DataFrame({"Estimate": frame.mean(axis=1).reindex(series[0].index)})


test_estimates.__test__ = False
