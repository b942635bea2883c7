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
* A ``qhat`` DataFrame with a default row index (0, 1, ...) and labelled columns, such as
  ``pd.DataFrame([fit.params for fit in fits])``, has imputations in rows and parameters in
  columns; otherwise its index names the parameters (mitml's layout).
* A list of Series (``qhat``) and of Series / DataFrames (``uhat``) is aligned by name, in the
  order of the first Series.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mitml_jax.analysis import pooling
from mitml_jax.analysis.adapters import as_fits
from mitml_jax.analysis.printing import df_footer, format_call, format_table, table_lines
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning
from mitml_jax.sampling.arguments import check_flag

__all__ = ["test_estimates", "EstimatesResult", "extract_estimates", "arrays_from_qhat_uhat",
           "check_df_com"]

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
    repeated = sorted({str(n) for n in names if names.count(n) > 1})
    if repeated:
        raise MitmlError(f"The fitted models name several parameters {', '.join(map(repr, repeated))}; "
                         "parameter names must be unique (rename the duplicated predictor "
                         "columns).")
    for i, coef in enumerate(coefs[1:], start=2):
        if sorted(coef.index) != sorted(names):
            raise MitmlError(
                f"Fitted model {i} has parameters {list(coef.index)}, but model 1 has {names}; "
                "all models in 'model' must be the same analysis model (a factor level that "
                "is absent from some imputed data sets changes the terms: fix the levels, "
                "e.g. with pd.Categorical(x, categories=[...]) in ImputedList.within).")
    qhat = np.stack([c.reindex(names).to_numpy(dtype=float) for c in coefs])
    uhat = np.stack([fit.mitml_vcov().reindex(index=names, columns=names).to_numpy(dtype=float)
                     for fit in fits])
    return names, qhat, uhat


def _floats(value, name: str) -> np.ndarray:
    """``value`` as a float array, or a MitmlTypeError naming the argument."""
    if isinstance(value, (str, bytes)):
        raise MitmlTypeError(f"'{name}' must hold numbers, got the text {value!r}.")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise MitmlTypeError(f"'{name}' must hold numbers (estimates, variances or covariance "
                             f"matrices); got {type(value).__name__} {value!r:.80}.") from None


def _qhat_array(qhat):
    """(names or None, (m, p) array) from mitml-style ``qhat``.

    A list of Series is aligned by name (the first Series gives the order); Series with other
    names are refused.
    """
    if isinstance(qhat, pd.DataFrame):
        if _imputation_rows(qhat):  # pd.DataFrame([fit.params for fit in fits])
            return [str(n) for n in qhat.columns], _floats(qhat, "qhat")
        return [str(n) for n in qhat.index], _floats(qhat, "qhat").T
    if isinstance(qhat, (list, tuple)):
        if len(qhat) == 0:
            raise MitmlError("'qhat' is empty; give one estimate vector per imputed data set.")
        names = list(qhat[0].index) if isinstance(qhat[0], pd.Series) else None
        if names is not None:
            for i, q in enumerate(qhat[1:], start=2):
                if not isinstance(q, pd.Series) or sorted(map(str, q.index)) != sorted(
                        map(str, names)) or len(q.index) != len(names):
                    given = list(q.index) if isinstance(q, pd.Series) else type(q).__name__
                    raise MitmlError(f"'qhat' element {i} has names {given}, but element 1 has "
                                     f"{names}; give the same parameters in every imputation.")
            qhat = [q.reindex(names) for q in qhat]
        rows = [np.atleast_1d(_floats(q, "qhat")).ravel() for q in qhat]
        if len({r.size for r in rows}) != 1:
            raise MitmlError("All elements of 'qhat' must have the same length.")
        return names, np.stack(rows)
    if isinstance(qhat, (np.ndarray, pd.Series)):
        arr = _floats(qhat, "qhat")
        if arr.ndim == 1:
            return None, arr[:, None]
        if arr.ndim == 2:
            return None, arr.T
    raise MitmlTypeError("The 'qhat' argument must be a (p, m) array or a list of m estimate "
                         f"vectors; got {type(qhat).__name__}.")


def _imputation_rows(frame: pd.DataFrame) -> bool:
    """Whether a ``qhat`` DataFrame has imputations in rows: a default (0, 1, ...) row index
    and labelled columns, as ``pd.DataFrame([fit.params for fit in fits])`` gives. mitml's
    layout (parameters in rows) has the names in the index."""
    default = pd.RangeIndex(len(frame.index))
    return frame.index.equals(default) and not frame.columns.equals(pd.RangeIndex(len(frame.columns)))


def _aligned(u, names):
    """A Series / DataFrame element of ``uhat`` reordered to the parameter ``names``."""
    if names is None:
        return u
    if isinstance(u, pd.DataFrame) and sorted(map(str, u.index)) == sorted(map(str, names)):
        return u.reindex(index=names, columns=names)
    if isinstance(u, pd.Series) and sorted(map(str, u.index)) == sorted(map(str, names)):
        return u.reindex(names)
    return u


def _uhat_array(uhat, m: int, p: int, names=None):
    """((m, p, p) array, diagonal_only) from mitml-style ``uhat`` (Series / DataFrame elements
    are aligned to ``names``)."""
    if isinstance(uhat, (list, tuple)):
        if len(uhat) != m:
            raise MitmlError(f"'uhat' has {len(uhat)} elements but 'qhat' has {m} imputations.")
        mats, diagonal = [], False
        for u in uhat:
            arr = _floats(_aligned(u, names), "uhat")
            if arr.ndim <= 1:
                diagonal = True
                arr = np.diag(np.atleast_1d(arr).ravel())
            mats.append(arr)
        out = np.stack(mats) if len({a.shape for a in mats}) == 1 else None
    else:
        arr = _floats(uhat, "uhat")
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
    _check_variances(out, names if names is not None else
                     [f"Parameter.{i + 1}" for i in range(p)], "'uhat'")
    return out, diagonal


def _follow_qhat_order(u, qhat, uhat, names):
    """Reorder the unlabelled ``uhat`` matrices of the ``qhat`` Series that :func:`_qhat_array`
    aligned by name (a Series in another order than the first): such a matrix is in its own
    Series' order (e.g. ``fit.cov_params().to_numpy()``), and left as it was it paired the
    estimates with other parameters' variances. Labelled elements were aligned by
    :func:`_aligned` already."""
    if names is None or not isinstance(qhat, (list, tuple)):
        return u
    u = u.copy()
    for i, q in enumerate(qhat):
        own = [str(n) for n in q.index]
        if own == [str(n) for n in names]:
            continue
        element = uhat[i] if isinstance(uhat, (list, tuple)) else None
        if isinstance(element, (pd.Series, pd.DataFrame)) and sorted(
                map(str, element.index)) == sorted(map(str, names)):
            continue
        pos = [own.index(str(n)) for n in names]
        u[i] = u[i][np.ix_(pos, pos)]
    return u


def _check_variances(u, names, what: str) -> None:
    """Refuse negative variances (the diagonal of each (p, p) matrix in ``u``)."""
    diag = np.diagonal(u, axis1=1, axis2=2)
    bad = np.argwhere(diag < 0)
    if bad.size:
        imps = sorted({int(i) + 1 for i in bad[:, 0]})
        pars = [names[j] for j in sorted({int(j) for j in bad[:, 1]})]
        raise MitmlError(f"{what} has negative variances for {', '.join(map(repr, pars))} in "
                         f"imputation(s) {', '.join(map(str, imps))}; a covariance matrix has "
                         "a non-negative diagonal. Check those fits or the values passed.")


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
    try:
        u, diagonal = _uhat_array(uhat, m, p, names)
        u = _follow_qhat_order(u, qhat, uhat, names)
    except MitmlError as err:
        # a DataFrame with a default row index and labelled columns was read as imputations in
        # rows; mitml's layout (parameters in rows, e.g. columns "imp1".."imp5") is meant when
        # only that reading matches 'uhat'
        if not (isinstance(qhat, pd.DataFrame) and _imputation_rows(qhat)
                and str(err).startswith("Dimensions")):
            raise
        q = _floats(qhat, "qhat").T
        try:
            u, diagonal = _uhat_array(uhat, *q.shape, None)
        except MitmlError:
            raise err from None
        names = None
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
        if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, float, np.number)):
            raise MitmlTypeError(f"'level' must be a number between 0 and 1, got {level!r}.")
        if not 0.0 < level < 1.0:
            raise MitmlError(f"'level' must be between 0 and 1 (got {level}).")
        est = self.estimates
        if parm is not None:
            est = est.iloc[self._positions(parm)]
        alpha = 1.0 - level
        df = est["df"].to_numpy(dtype=float)
        finite = np.isfinite(df)
        q = np.where(finite, special.stdtrit(np.where(finite, df, 1.0), 1.0 - alpha / 2.0),
                     special.ndtri(1.0 - alpha / 2.0))
        q = np.where(np.isnan(df), np.nan, q)  # undefined df: no interval (R's qt gives NaN)
        half = q * est["Std.Error"].to_numpy()
        lower, upper = _percent_labels(alpha)
        return pd.DataFrame({lower: est["Estimate"].to_numpy() - half,
                             upper: est["Estimate"].to_numpy() + half}, index=est.index)

    def _positions(self, parm) -> list:
        """Row positions of ``parm`` (names, R spellings such as ``(Intercept)``, or 0-based
        positions), or a MitmlError naming the unknown ones and the parameters."""
        from mitml_jax.analysis.adapters import r_term_name

        names = [str(n) for n in self.estimates.index]
        lookup = {}
        for i, name in enumerate(names):
            lookup.setdefault(name, i)
            lookup.setdefault(r_term_name(name), i)
        items = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
        out, unknown = [], []
        for x in items:
            if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
                if -len(names) <= int(x) < len(names):
                    out.append(int(x) % len(names))
                    continue
            elif isinstance(x, str) and x in lookup:
                out.append(lookup[x])
                continue
            unknown.append(x)
        if unknown:
            raise MitmlError(f"'parm' has unknown parameter(s) {unknown!r}; give names from "
                             f"{names} or positions 0 to {len(names) - 1}.")
        return out

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
    from mitml_jax.analysis.adapters import r_term_name

    given = dict(df_com.items())
    if not all(k in set(names) for k in given):  # keys in R's spelling: (Intercept), SexGirl
        spelled = {r_term_name(str(n)): n for n in names}
        mapped = [spelled.get(r_term_name(str(k))) for k in given]
        if None not in mapped and len(set(mapped)) == len(mapped):
            given = dict(zip(mapped, given.values()))
    missing = [n for n in names if n not in given]
    unknown = [k for k in given if k not in set(names)]
    if missing or unknown:
        parts = ([f"no value for {missing!r}"] if missing else []) + (
            [f"unknown parameter(s) {unknown!r}"] if unknown else [])
        raise MitmlError(f"'df_com' by name needs exactly the model's parameters {list(names)!r}: "
                         f"{'; '.join(parts)}.")
    return [given[n] for n in names]


def check_df_com(df_com, names, single: bool = False):
    """``df_com`` as a float array (one value, or one per parameter in the order of ``names``),
    or None; refuses, naming ``'df_com'``, text, bools, NaN, values <= 0 and wrong lengths.

    A dict or a Series labelled by parameter names is read by name, a Series with a default
    index (0, 1, ...) in order. ``inf`` is allowed: the large-sample limit (no small-sample
    adjustment of that parameter).
    With ``single`` (D1), exactly one value is allowed.
    """
    if df_com is None:
        return None
    if isinstance(df_com, pd.Series) and df_com.index.equals(pd.RangeIndex(len(df_com))):
        df_com = df_com.tolist()  # values without parameter names: in the model's order
    if isinstance(df_com, (dict, pd.Series)) and not single:
        df_com = _df_com_by_name(df_com, names)
    values = df_com if isinstance(df_com, (list, tuple, np.ndarray)) else [df_com]
    if any(isinstance(v, (str, bytes, bool, np.bool_)) for v in np.ravel(np.asarray(values, dtype=object))):
        raise MitmlTypeError(f"'df_com' must be a number (complete-data degrees of freedom) or one "
                             f"per parameter, got {df_com!r}.")
    try:
        dfc = np.asarray(df_com, dtype=float)
    except (TypeError, ValueError):
        raise MitmlTypeError(f"'df_com' must be a number (complete-data degrees of freedom) or one "
                             f"per parameter, got {df_com!r}.") from None
    if dfc.ndim > 1:
        raise MitmlError(f"'df_com' must be one number or a flat list, got shape {dfc.shape}.")
    dfc = np.atleast_1d(dfc)
    if single and dfc.size != 1:
        raise MitmlError("'df_com' must be a single number for D1 (got several values).")
    if dfc.size not in (1, len(names)):
        raise MitmlError(f"'df_com' must be one number or one per parameter ({len(names)}); "
                         f"got {dfc.size}.")
    if np.any(np.isnan(dfc)) or np.any(dfc <= 0):
        raise MitmlError(f"'df_com' must be positive (complete-data degrees of freedom), got "
                         f"{df_com!r}.")
    return dfc


def _warn_unidentified(u, names) -> None:
    """One MitmlWarning when the fits' covariance matrix is singular (collinear predictors,
    e.g. ``x`` and ``2 * x``): statsmodels then returns a pseudo-inverse split of the effect
    between the collinear terms, whose pooled values are arbitrary (R's ``lm`` reports NA for
    the aliased term). The warning names the imputations and the parameters involved."""
    bad, involved = [], set()
    for i, ui in enumerate(u):
        if not np.all(np.isfinite(ui)) or not pooling.is_singular_covariance(ui):
            continue
        bad.append(i + 1)
        corr, scale = pooling.correlation(ui)
        values, vectors = np.linalg.eigh(np.nan_to_num(corr))
        null = vectors[:, values < 1e-10 * max(values.max(), 1.0)]
        involved.update(np.nonzero((np.abs(null) > 1e-6).any(axis=1) | (scale == 0))[0])
    if bad:
        pars = [names[j] for j in sorted(involved)]
        warnings.warn(
            f"The fitted models' covariance matrix is singular in imputation(s) "
            f"{', '.join(map(str, bad[:10]))}{' ...' if len(bad) > 10 else ''}: the parameters "
            f"{', '.join(map(repr, pars))} are not identified (collinear predictors or a zero "
            "variance), so their pooled estimates are arbitrary. Drop the redundant terms from "
            "the model.", MitmlWarning, stacklevel=3)


def _warn_non_finite(q, u, names, what: str) -> None:
    """One MitmlWarning naming the parameters with non-finite estimates or (co)variances and
    the imputations that gave them (their pooled results are NaN)."""
    bad = ~np.isfinite(q)
    if u is not None:
        bad |= ~np.all(np.isfinite(u), axis=2)
    if not bad.any():
        return
    imps = sorted({int(i) + 1 for i in np.nonzero(bad.any(axis=1))[0]})
    pars = [names[j] for j in np.nonzero(bad.any(axis=0))[0]]
    warnings.warn(f"{what} {', '.join(map(str, imps))} gave non-finite estimates or variances "
                  f"for {', '.join(map(repr, pars))}; the pooled results of these parameters are "
                  "NaN. Check those fits (e.g. separation in a logistic model).",
                  MitmlWarning, stacklevel=3)


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
    extra_pars = check_flag("extra_pars", extra_pars)
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
    dfc = check_df_com(df_com, names)
    if model is not None:
        _check_variances(u, names, "The fitted models' covariance matrix")
        _warn_unidentified(u, names)
    _warn_non_finite(q, u, names, "Fitted model(s)" if model is not None else "'qhat' imputation(s)")
    with np.errstate(invalid="ignore", over="ignore"):
        res = pooling.rubin(q, u, df_com=dfc)
    if u is None:
        estimates = pd.DataFrame({"Estimate": res["estimate"]}, index=names)
        T = None
    else:
        estimates = pd.DataFrame(np.column_stack([res[k] for k in SNAKE]), index=names, columns=COLUMNS)
        T = None if diagonal else pd.DataFrame(res["T"], index=names, columns=names)
    call = format_call("test_estimates", ["model"] if model is not None else
                       (["qhat", "uhat"] if uhat is not None else ["qhat"]),
                       extra_pars=extra_pars or None, df_com=df_com)
    if isinstance(df_com, (dict, pd.Series)):  # by name: kept in the parameters' order
        df_com = dfc.tolist()
    return EstimatesResult(estimates, extra, T, m, df_com, cls_method, call)


def _pool_extra(fits, stacked):
    """Mean of the extra parameters: from ``stacked`` (the fits' ``mitml_stack``) when not None,
    else from every fit's ``mitml_extra``. Warnings the fits give (e.g. variance components not
    available for the class) are issued once, not once per imputation."""
    if stacked is not None:
        frame = stacked[3]
        return pd.DataFrame({"Estimate": frame.mean(axis=1)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = [_extra(fit) for fit in fits]
    seen = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(w.message, w.category, stacklevel=3)
    if any(s is None for s in series):
        return None
    frame = pd.concat(series, axis=1)
    return pd.DataFrame({"Estimate": frame.mean(axis=1).reindex(series[0].index)})


def _extra(fit):
    """``fit.mitml_extra()``; a fit without that method has no extra parameters (warned)."""
    method = getattr(fit, "mitml_extra", None)
    if method is None:
        name = getattr(fit, "class_name", type(fit).__name__)
        warnings.warn(f"Computation of variance components not supported for objects of class "
                      f"'{name}'; extra parameters are omitted.", MitmlWarning)
        return None
    return method()


test_estimates.__test__ = False
