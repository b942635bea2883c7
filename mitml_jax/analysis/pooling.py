"""Pure pooling formulas on arrays (mitml's ``internal-pool.R`` and ``testModels.R``).

Every function takes NumPy arrays with the imputation axis first: estimates ``qhat (m, p)``,
covariance matrices ``uhat (m, p, p)``. Nothing here knows about fitted models. Equation
references are to the mitml spec, section 4.
"""

from __future__ import annotations

import warnings

import numpy as np

from mitml_jax.errors import MitmlError, MitmlWarning

__all__ = [
    "rubin",
    "d1",
    "d2",
    "d3",
    "d4",
    "reiter_df",
    "li_df",
    "f_pvalue",
    "t_pvalue",
    "pool_moments",
    "mean",
    "is_singular_covariance",
    "correlation",
]


def correlation(cov):
    """``(corr, sd)`` of a (k, k) covariance matrix: its correlation matrix (NaN or infinite
    entries where a variance is 0) and the standard deviations (negative variances as 0)."""
    cov = np.asarray(cov, dtype=float)
    scale = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / np.outer(scale, scale), scale


def is_singular_covariance(cov) -> bool:
    """Whether a (k, k) covariance matrix is singular or not finite, judged on its correlation
    matrix (rank below k at tolerance 1e-10), so that the parameters' scales do not matter."""
    corr, _ = correlation(cov)
    return not np.all(np.isfinite(corr)) or np.linalg.matrix_rank(corr, tol=1e-10) < corr.shape[0]


def _inverse_or_inf(x):
    with np.errstate(divide="ignore"):
        return 1.0 / np.asarray(x, dtype=float)


def mean(x, axis=0):
    """Mean with R's correction pass (``mean.default``, ``cov``): ``mu + mean(x - mu)``.

    The plain float64 mean of identical values can miss them by an ulp (ten copies of 0.1 give
    0.09999999999999999), which left a between-imputation variance of ~1e-32 where mitml has 0:
    RIV 1e-32 and df 1e64 printed instead of RIV 0 and df Inf for estimates that do not vary
    across imputations. The correction pass restores the exact value (and R's last bits).
    """
    x = np.asarray(x, dtype=float)
    mu = x.mean(axis=axis)
    return mu + (x - np.expand_dims(mu, axis)).mean(axis=axis)


def pool_moments(qhat, uhat=None):
    """Return ``(Qbar, Ubar, B)``: mean estimate, mean covariance, between-imputation covariance.

    Args:
        qhat: (m, p) estimates.
        uhat: (m, p, p) covariance matrices, or None (then ``Ubar`` is None).
    """
    qhat = np.asarray(qhat, dtype=float)
    m = qhat.shape[0]
    qbar = mean(qhat)
    dev = qhat - qbar
    b = dev.T @ dev / (m - 1) if m > 1 else np.full((qhat.shape[1],) * 2, np.nan)
    ubar = None if uhat is None else mean(uhat)
    return qbar, ubar, b


def t_pvalue(t, df):
    """Two-sided p-value ``2 (1 - F_t(|t|; df))``; ``df = inf`` uses the normal distribution and
    an undefined ``df`` (NaN) gives NaN, as R's ``pt`` (not the normal tail)."""
    from scipy import special  # scipy.stats' own kernels; importing scipy.stats costs ~1 s

    t = np.abs(np.asarray(t, dtype=float))
    df = np.asarray(df, dtype=float)
    finite = np.where(np.isfinite(df), df, 1.0)
    p_t = 2.0 * special.stdtr(finite, -t)
    p_norm = 2.0 * special.ndtr(-t)
    return np.where(np.isnan(df), np.nan, np.where(np.isfinite(df), p_t, p_norm))


def f_pvalue(f, df1, df2):
    """Upper-tail p-value ``P(F_{df1, df2} > f)``; ``df2 = inf`` uses ``chi2_{df1} / df1``."""
    from scipy import special

    f = float(f)
    if np.isnan(f):
        return np.nan
    if f <= 0.0:  # F and chi^2 have no mass below 0 (D2 can be negative)
        return 1.0
    if np.isinf(df2):
        return float(special.chdtrc(df1, f * df1))
    return float(special.fdtrc(df1, df2, f))


def rubin(qhat, uhat=None, df_com=None):
    """Rubin's rules with Barnard-Rubin degrees of freedom (spec 4.1).

    Args:
        qhat: (m, p) estimates.
        uhat: (m, p, p) covariance matrices, or None to pool the point estimates only.
        df_com: complete-data degrees of freedom, scalar or one per parameter, or None; an
            infinite value leaves that parameter's df unadjusted (the limit of the formula).

    Returns:
        dict with ``estimate`` (p,) and, when ``uhat`` is given, ``T`` (p, p), ``std_error``,
        ``t_value``, ``df``, ``p_value``, ``riv``, ``fmi`` (all (p,)), plus ``Ubar`` and ``B``.
        A RIV of 0 gives ``df = inf`` (or the complete-data value with ``df_com``).
    """
    qhat = np.asarray(qhat, dtype=float)
    m = qhat.shape[0]
    qbar, ubar, b = pool_moments(qhat, uhat)
    if uhat is None:
        return {"estimate": qbar}
    total = ubar + (1.0 + 1.0 / m) * b
    se = np.sqrt(np.diag(total))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = qbar / se
        r = (1.0 + 1.0 / m) * np.diag(b) / np.diag(ubar)
        nu = (m - 1) * (1.0 + _inverse_or_inf(r)) ** 2
        if df_com is not None:
            dfc = np.broadcast_to(np.asarray(df_com, dtype=float), r.shape)
            lam = r / (r + 1.0)
            finite = np.where(np.isinf(dfc), 1.0, dfc)  # df_com = inf: no adjustment (limit)
            nu_obs = np.where(np.isinf(dfc), np.inf,
                              (1.0 - lam) * ((finite + 1.0) / (finite + 3.0)) * finite)
            nu = 1.0 / (_inverse_or_inf(nu) + 1.0 / nu_obs)
        fmi = (r + 2.0 / (nu + 3.0)) / (r + 1.0)
    return {
        "estimate": qbar,
        "std_error": se,
        "t_value": t,
        "df": nu,
        "p_value": t_pvalue(t, nu),
        "riv": r,
        "fmi": fmi,
        "T": total,
        "Ubar": ubar,
        "B": b,
    }


def li_df(k, m, r):
    """Denominator df of Li, Raghunathan & Rubin (1991), used by D1 and D3 (spec 4.2)."""
    t = k * (m - 1)
    rinv = float(_inverse_or_inf(r))
    if t > 4:
        return 4.0 + (t - 4.0) * (1.0 + (1.0 - 2.0 / t) * rinv) ** 2
    return t * (1.0 + 1.0 / k) * (1.0 + rinv) ** 2 / 2.0


def reiter_df(k, m, r, df_com):
    """Small-sample denominator df of Reiter (2007, eqs. 1-2) for D1 (spec 4.2)."""
    t = k * (m - 1)
    if t <= 2:  # a = r t / (t - 2) is undefined or negative: mitml reports NaN as well
        warnings.warn(
            f"Reiter's small-sample degrees of freedom are undefined for k (m - 1) <= 2 (here "
            f"k = {k}, m = {m}): df2 and P(>F) are NaN. Use more imputations, or leave "
            "df_com out.", MitmlWarning, stacklevel=3)
        return np.nan
    if t <= 4:
        warnings.warn(
            "Degrees of freedom (df_com) may not be trustworthy, because the number of "
            "imputations is too low (m <= 5). To obtain trustworthy results, re-run the "
            "procedure with a larger number of imputations.",
            MitmlWarning,
            stacklevel=3,
        )
    a = r * t / (t - 2.0)
    vstar = ((df_com + 1.0) / (df_com + 3.0)) * df_com
    c0 = 1.0 / (t - 4.0) if t != 4 else np.inf
    c1 = vstar - 2.0 * (1.0 + a)
    c2 = vstar - 4.0 * (1.0 + a)
    with np.errstate(all="ignore"):  # t = 4: c0 = inf, as in mitml (NaN or 4, no RuntimeWarning)
        z = (
            1.0 / c2
            + c0 * (a**2 * c1 / ((1.0 + a) ** 2 * c2))
            + c0 * (8.0 * a**2 * c1 / ((1.0 + a) * c2**2) + 4.0 * a**2 / ((1.0 + a) * c2))
            + c0 * (4.0 * a**2 / (c2 * c1) + 16.0 * a**2 * c1 / c2**3)
            + c0 * (8.0 * a**2 / c2**2)
        )
        nu = 4.0 + 1.0 / z
    if np.isnan(nu):
        warnings.warn(
            f"Reiter's small-sample degrees of freedom are undefined here (k = {k}, m = {m}, "
            f"k (m - 1) = {t}): df2 and P(>F) are NaN, as in mitml. Use more imputations, or "
            "leave df_com out.", MitmlWarning, stacklevel=3)
    return nu


def _test(f, k, nu, r):
    return {"f_value": float(f), "df1": float(k), "df2": float(nu),
            "p_value": f_pvalue(f, k, nu), "riv": float(r)}


def d1(qhat, uhat, df_com=None):
    """Pooled Wald test D1 (Li, Raghunathan & Rubin 1991; Reiter 2007 with ``df_com``).

    Args:
        qhat: (m, k) estimates of the tested parameters (null value 0).
        uhat: (m, k, k) their covariance matrices.
        df_com: complete-data degrees of freedom (scalar) or None; ``inf`` gives Li et al.'s
            df (the limit of Reiter's as df_com grows, for k (m - 1) > 4).

    Returns:
        dict ``f_value, df1, df2, p_value, riv``.
    """
    qhat = np.asarray(qhat, dtype=float)
    uhat = np.asarray(uhat, dtype=float)
    m, k = qhat.shape
    if m < 2:
        raise MitmlError("Pooling needs at least two imputed data sets (got m = 1).")
    qbar, ubar, b = pool_moments(qhat, uhat)
    r = (1.0 + 1.0 / m) * np.trace(np.linalg.solve(ubar, b.T).T) / k
    f = qbar @ np.linalg.solve((1.0 + r) * ubar, qbar) / k
    if df_com is not None:
        dfc = np.asarray(df_com, dtype=float).ravel()
        if dfc.size != 1:
            raise MitmlError("'df_com' must be a single number for D1 (got several values).")
        nu = reiter_df(k, m, r, float(dfc[0])) if np.isfinite(dfc[0]) else li_df(k, m, r)
    else:
        nu = li_df(k, m, r)
    return _test(f, k, nu, r)


def d2(d, k, ariv="default"):
    """Pooled chi-square test D2 (Li, Meng, Raghunathan & Rubin 1991; spec 4.3).

    Args:
        d: (m,) chi-square statistics, one per imputation.
        k: their degrees of freedom.
        ariv: ``"positive"`` truncates the RIV at 0 before D2 and its df are computed (mitml,
            bug B15, truncates only the reported RIV afterwards). D2's RIV is a sample variance
            and never negative, so the option cannot change a D2 result either way.
    """
    d = np.asarray(d, dtype=float)
    m = d.size
    if m < 2:
        raise MitmlError("Pooling needs at least two imputed data sets (got m = 1).")
    root = np.sqrt(d)
    r = (1.0 + 1.0 / m) * float(np.sum((root - mean(root)) ** 2)) / (m - 1.0)
    if ariv == "positive":
        r = max(0.0, r)
    f = (mean(d) / k - (m + 1.0) / (m - 1.0) * r) / (1.0 + r)
    nu = k ** (-3.0 / m) * (m - 1.0) * (1.0 + float(_inverse_or_inf(r))) ** 2
    return _test(f, k, nu, r)


def d3(ll_full, ll_null, ll_full_pooled, ll_null_pooled, k, ariv="default"):
    """Meng & Rubin (1992) likelihood-ratio test D3 (spec 4.4).

    Args:
        ll_full, ll_null: (m,) log-likelihoods of each imputation's fit at its own estimates.
        ll_full_pooled, ll_null_pooled: (m,) log-likelihoods of each data set at the pooled
            parameters.
        k: number of tested parameters (difference of the models' parameter counts).
        ariv: ``"positive"`` truncates the RIV at 0 before computing D3 and its df.
    """
    m = len(ll_full)
    dl_bar = mean(-2.0 * (np.asarray(ll_null) - np.asarray(ll_full)))
    dl_tilde = mean(-2.0 * (np.asarray(ll_null_pooled) - np.asarray(ll_full_pooled)))
    r = (m + 1.0) / (k * (m - 1.0)) * (dl_bar - dl_tilde)
    if ariv == "positive":
        r = max(0.0, r)
    f = dl_tilde / (k * (1.0 + r))
    return _test(f, k, li_df(k, m, r), r)


def d4(ll_full, ll_null, ll_stacked_full, ll_stacked_null, k, h, ariv="default"):
    """Chan & Meng (2019) stacked likelihood-ratio test D4 (spec 4.5).

    Args:
        ll_full, ll_null: (m,) log-likelihoods of each imputation's fit.
        ll_stacked_full, ll_stacked_null: log-likelihood of the model refitted on the
            stacked data, divided by m.
        k: number of tested parameters; h: number of parameters of the full model.
        ariv: ``"default"``, ``"positive"`` (truncate RIV at 0) or ``"robust"``.
    """
    ll_full = np.asarray(ll_full, dtype=float)
    ll_null = np.asarray(ll_null, dtype=float)
    m = ll_full.size
    ll_diff = ll_null - ll_full
    ll_diff[np.isclose(ll_full, ll_null, rtol=1.5e-8, atol=0.0)] = 0.0
    stacked_diff = ll_stacked_null - ll_stacked_full
    if np.isclose(stacked_diff, 0.0, rtol=0.0, atol=1.5e-8):
        stacked_diff = 0.0
    dbar = mean(-2.0 * ll_diff)
    dhat = -2.0 * stacked_diff
    if ariv == "robust":
        r = (m + 1.0) / (h * (m - 1.0)) * (2.0 * mean(ll_full) - 2.0 * ll_stacked_full)
        nu = h * (m - 1.0) * (1.0 + float(_inverse_or_inf(r))) ** 2
    else:
        r = (m + 1.0) / (k * (m - 1.0)) * (dbar - dhat)
        if ariv == "positive":
            r = max(0.0, r)
        nu = k * (m - 1.0) * (1.0 + float(_inverse_or_inf(r))) ** 2
    f = dhat / (k * (1.0 + r))
    return _test(f, k, nu, r)
