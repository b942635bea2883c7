"""Fitted-model protocol for statsmodels ``MixedLM`` results (R's ``lmerMod`` in mitml).

Fixed effects are the first ``k_fe`` parameters; their covariance is lme4's
``(X' V^-1 X)^-1`` at the estimates. Variance components are named as mitml names them
(``Intercept~~Intercept|ID``, ``Intercept~~x|ID``, ``Residual~~Residual``, ``ICC|ID``).
Likelihood-based tests refit REML fits by ML; D3 evaluates the marginal ML log-likelihood at
pooled ``(beta, tau, sigma2)`` directly (single grouping factor, no variance components),
and D4 refits on the stacked data with imputation-specific cluster ids.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np
import pandas as pd

from mitml_jax.analysis.adapters import StatsmodelsFit, unsupported

__all__ = ["MixedLMFit", "lmm_loglik", "fit_mixedlm"]

# ML refits of REML results, reused by later tests on the same fits (results are not mutated)
_ML_REFITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def lmm_loglik(y, x, z, groups, beta, tau, sigma2) -> float:
    """Marginal (ML) log-likelihood of a linear mixed model with one grouping factor.

    ``V_j = sigma2 I + Z_j tau Z_j'``; computed per cluster with the determinant lemma and
    Woodbury's identity in the form that also allows a singular ``tau``.

    Args:
        y: (n,) response; x: (n, p) fixed-effects design; z: (n, q) random-effects design.
        groups: (n,) cluster labels. beta: (p,); tau: (q, q); sigma2: residual variance.
    """
    y, x, z = np.asarray(y, float), np.asarray(x, float), np.asarray(z, float)
    tau = np.atleast_2d(np.asarray(tau, float))
    resid = y - x @ np.asarray(beta, float)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_clusters, q = codes.max() + 1, z.shape[1]
    ztz = np.zeros((n_clusters, q, q))
    np.add.at(ztz, codes, z[:, :, None] * z[:, None, :])
    ztr = np.zeros((n_clusters, q))
    np.add.at(ztr, codes, z * resid[:, None])
    rtr = np.bincount(codes, weights=resid**2, minlength=n_clusters)
    size = np.bincount(codes, minlength=n_clusters)
    mat = sigma2 * np.eye(q) + tau @ ztz  # (J, q, q): sigma2 I + tau Z'Z
    sol = np.linalg.solve(mat, (tau @ ztr[:, :, None]))[:, :, 0]
    quad = (rtr - np.einsum("jq,jq->j", ztr, sol)) / sigma2
    _, logdet_mat = np.linalg.slogdet(mat)
    logdet = size * np.log(sigma2) + logdet_mat - q * np.log(sigma2)
    n = len(y)
    return float(-0.5 * (n * np.log(2.0 * np.pi) + np.sum(logdet) + np.sum(quad)))


def fit_mixedlm(model, reml: bool = True, start=None):
    """Fit a statsmodels ``MixedLM`` by (RE)ML to lme4's precision.

    BFGS with gtol 1e-9 from ``start`` (default: OLS fixed effects and a random-effects
    covariance of 0.1 times the residual variance). On the studentratings reference this
    reaches lme4's optimum to about 1e-7 relative. BFGS may report non-convergence when it
    stalls at that precision, so its warnings are silenced and the fit is accepted when the
    gradient is below 1e-4; otherwise (or on singular steps) L-BFGS and Powell are tried and
    the best likelihood is kept.
    """
    import warnings as _warnings

    if start is None:
        from statsmodels.regression.mixed_linear_model import MixedLMParams

        beta = np.linalg.lstsq(np.asarray(model.exog), np.asarray(model.endog), rcond=None)[0]
        start = MixedLMParams.from_components(
            beta, cov_re=0.1 * np.eye(model.k_re), vcomp=0.1 * np.ones(model.k_vc))
    candidates, errors = [], []
    for method, options in ((["bfgs"], {"gtol": 1e-9}), (["lbfgs"], {}), (["powell", "lbfgs"], {})):
        try:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                fit = model.fit(reml=reml, method=method, start_params=start, **options)
        except (np.linalg.LinAlgError, ValueError) as err:  # singular steps: try the next one
            errors.append(f"{method}: {err}")
            continue
        if not np.isfinite(fit.llf):
            continue
        candidates.append(fit)
        if fit.converged or _gradient_norm(model, fit) < 1e-4:
            break
    if not candidates:
        raise RuntimeError("MixedLM fit failed: " + "; ".join(errors))
    return max(candidates, key=lambda f: f.llf)


def _gradient_norm(model, fit) -> float:
    """Largest absolute score (per observation) of the profiled likelihood at ``fit``."""
    try:
        packed = fit.params_object.get_packed(use_sqrt=model.use_sqrt, has_fe=False)
        return float(np.max(np.abs(model.score(packed, profile_fe=True)))) / model.n_totobs
    except Exception:  # noqa: BLE001 - no gradient: treat as not converged
        return np.inf


class MixedLMFit(StatsmodelsFit):
    """Protocol wrapper for ``statsmodels`` ``MixedLMResults``."""

    # --- structure -------------------------------------------------------------------------
    @property
    def _model(self):
        return self.result.model

    def _names(self) -> list:
        return [str(n) for n in self._model.exog_names[: self._model.k_fe]]

    def _intercept_columns(self) -> np.ndarray:
        z = np.asarray(self._model.exog_re)
        return np.all(z == 1.0, axis=0)

    def cluster_name(self) -> str:
        """The grouping variable's name (statsmodels names the random intercept after it)."""
        names = list(self._model.data.exog_re_names)
        const = self._intercept_columns()
        for name, is_const in zip(names, const):
            if is_const and name != "Intercept":
                return str(name)
        return "Group"

    def _re_names(self) -> list:
        const = self._intercept_columns()
        return ["Intercept" if c else str(n)
                for n, c in zip(self._model.data.exog_re_names, const)]

    def _check_single_factor(self, what: str):
        if self._model.k_vc > 0:
            raise unsupported(self, what, "models with variance components (vc_formula) are "
                              "not supported; use a single grouping factor with re_formula")

    # --- estimates ----------------------------------------------------------------------------
    def mitml_coef(self) -> pd.Series:
        return pd.Series(np.asarray(self.result.fe_params, dtype=float), index=self._names())

    def mitml_vcov(self) -> pd.DataFrame:
        names = self._names()
        if self._model.k_vc > 0:
            k = self._model.k_fe
            cov = np.asarray(self.result.cov_params())[:k, :k]
        else:
            cov = self._fixef_cov()
        return pd.DataFrame(cov, index=names, columns=names)

    def _fixef_cov(self) -> np.ndarray:
        """``(sum_j X_j' V_j^-1 X_j)^-1`` at the estimates (lme4's ``vcov``)."""
        model = self._model
        x, z = np.asarray(model.exog, float), np.asarray(model.exog_re, float)
        tau, sigma2 = np.asarray(self.result.cov_re, float), float(self.result.scale)
        info = np.zeros((x.shape[1], x.shape[1]))
        for rows in model.row_indices.values():
            xj, zj = x[rows], z[rows]
            v = sigma2 * np.eye(len(rows)) + zj @ tau @ zj.T
            info += xj.T @ np.linalg.solve(v, xj)
        return np.linalg.inv(info)

    def mitml_extra(self) -> pd.Series:
        tau = np.asarray(self.result.cov_re, float)
        names, cluster = self._re_names(), self.cluster_name()
        out = {f"{n}~~{n}|{cluster}": tau[i, i] for i, n in enumerate(names)}
        for j in range(len(names)):  # upper triangle, column-major, as mitml
            for i in range(j):
                out[f"{names[i]}~~{names[j]}|{cluster}"] = tau[i, j]
        if self._model.k_vc > 0:
            for name, value in zip(self._model.exog_vc.names, np.asarray(self.result.vcomp)):
                out[f"{name}~~{name}|{cluster}"] = float(value) * float(self.result.scale)
        sigma2 = float(self.result.scale)
        out["Residual~~Residual"] = sigma2
        if "Intercept" in names:
            t00 = tau[names.index("Intercept"), names.index("Intercept")]
            out[f"ICC|{cluster}"] = t00 / (t00 + sigma2)
        return pd.Series(out, dtype=float)

    def mitml_df_com(self):
        return None

    # --- likelihood ---------------------------------------------------------------------------
    def _n_params(self) -> int:
        model = self._model
        return int(model.k_fe + model.k_re2 + model.k_vc + 1)

    def mitml_is_reml(self) -> bool:
        return bool(self.result.method == "REML")

    def mitml_refit_ml(self):
        if not self.mitml_is_reml():
            return self
        refit = _ML_REFITS.get(self.result)
        if refit is None:
            model = copy.copy(self._model)
            refit = fit_mixedlm(model, reml=False, start=self.result.params_object)
            _ML_REFITS[self.result] = refit
        return MixedLMFit(refit, self.data)

    def mitml_params(self) -> dict:
        self._check_single_factor("mitml_params (method D3)")
        return {"beta": np.asarray(self.result.fe_params, float),
                "tau": np.asarray(self.result.cov_re, float),
                "sigma2": float(self.result.scale)}

    def mitml_loglik_at(self, params: dict) -> float:
        self._check_single_factor("mitml_loglik_at (method D3)")
        model = self._model
        return lmm_loglik(model.endog, model.exog, model.exog_re, model.groups,
                          params["beta"], params["tau"], params["sigma2"])

    def mitml_stacked_loglik(self, fits: list) -> float:
        from statsmodels.regression.mixed_linear_model import MixedLM

        self._check_single_factor("mitml_stacked_loglik (method D4)")
        models = [f.result.model for f in fits]
        endog = np.concatenate([m.endog for m in models])
        exog = np.vstack([m.exog for m in models])
        exog_re = np.vstack([m.exog_re for m in models])
        labels = np.concatenate([[f"imp{i + 1}_{g}" for g in m.groups] for i, m in enumerate(models)])
        groups = np.unique(labels, return_inverse=True)[1]
        stacked = MixedLM(endog, exog, groups, exog_re=exog_re)
        refit = fit_mixedlm(stacked, reml=self.mitml_is_reml(),
                             start=self.result.params_object)
        return float(refit.llf) / len(fits)

    def mitml_stacked_loglik_data(self, datalist: list) -> float:
        """D4 with ``data=``: refit on the stacked data sets with imputation-specific clusters."""
        import statsmodels.formula.api as smf

        self._check_single_factor("the 'data' argument of D4")
        formula, cluster = getattr(self._model, "formula", None), self.cluster_name()
        if formula is None or any(cluster not in d.columns for d in datalist):
            raise unsupported(self, "the 'data' argument of D4", "need a formula fit and the "
                              f"cluster column {cluster!r} in every data set; leave 'data' out")
        frames = []
        for i, frame in enumerate(datalist):
            frame = frame.copy()
            frame[cluster] = [f"imp{i + 1}_{g}" for g in frame[cluster]]
            frames.append(frame)
        stacked = pd.concat(frames, ignore_index=True)
        slopes = [n for n in self._re_names() if n != "Intercept"]
        re_formula = None
        if slopes:
            re_formula = "~" + " + ".join(slopes if "Intercept" in self._re_names() else ["0"] + slopes)
        model = smf.mixedlm(formula, stacked, groups=cluster, re_formula=re_formula, missing="drop")
        refit = fit_mixedlm(model, reml=self.mitml_is_reml(), start=self.result.params_object)
        return float(refit.llf) / len(datalist)

    def mitml_formula(self) -> str:
        formula = getattr(self._model, "formula", None) or "y ~ X"
        terms = ["1" if n == "Intercept" else n for n in self._re_names()]
        if "1" not in terms:
            terms = ["0"] + terms
        return f"{formula} + ({' + '.join(terms)} | {self.cluster_name()})"

    # --- R-squared ----------------------------------------------------------------------------
    def mitml_r2(self, which) -> dict:
        """Multilevel R-squared (spec 4.9): RB1, RB2, SB (need a null-model refit) and MVP."""
        from statsmodels.regression.mixed_linear_model import MixedLM

        self._check_single_factor("multilevel_r2")
        model = self._model
        x = np.asarray(model.exog, float)
        const = np.all(x == 1.0, axis=0)
        if not const.any():
            raise unsupported(self, "multilevel_r2", "Model must contain intercept.")
        if not self._intercept_columns()[0]:  # tau[0, 0] below is the intercept variance
            raise unsupported(self, "multilevel_r2", "the model must contain a fixed and a "
                              "random intercept (re_formula without '0 +').")
        keep = ~const
        beta = np.asarray(self.result.fe_params, float)[keep]
        x = x[:, keep]
        z = np.asarray(model.exog_re, float)[:, 1:]
        tau = np.asarray(self.result.cov_re, float)
        sigma2 = float(self.result.scale)
        t00, t10, t11 = tau[0, 0], tau[0, 1:], tau[1:, 1:]
        mu_z = z.mean(axis=0)
        v_z = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1]) if z.shape[1] else np.zeros((0, 0))
        v_yhat = float(np.var(x @ beta, ddof=1))
        v_y = v_yhat + t00 + 2.0 * mu_z @ t10 + mu_z @ t11 @ mu_z + np.trace(t11 @ v_z) + sigma2
        out = {"MVP": v_yhat / v_y}
        if any(w in ("RB1", "RB2", "SB") for w in which):
            from statsmodels.regression.mixed_linear_model import MixedLMParams

            null = MixedLM(model.endog, np.ones((len(model.endog), 1)), model.groups)
            start = MixedLMParams.from_components(
                np.array([np.mean(model.endog)]), cov_re=np.array([[max(t00, 1e-3 * sigma2) / sigma2]]))
            null_fit = fit_mixedlm(null, reml=self.mitml_is_reml(), start=start)
            s0, t0 = float(null_fit.scale), float(np.asarray(null_fit.cov_re)[0, 0])
            out.update({"RB1": 1.0 - sigma2 / s0, "RB2": 1.0 - t00 / t0,
                        "SB": 1.0 - (sigma2 + t00) / (s0 + t0)})
        return {w: out[w] for w in which}
