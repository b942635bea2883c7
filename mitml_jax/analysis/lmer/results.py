"""``LmerFit``: the fit of one imputed data set, implementing the fitted-model protocol natively.

Each fit is a light view (batch, imputation index) on an :class:`~.batch.LmerBatch`, so ML
refits, null models and stacked fits are computed once for all imputations and shared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError

from .batch import LmerBatch
from .marginal import marginal_loglik

__all__ = ["LmerFit", "LmerSummary"]

_R2_PARTS = ("RB1", "RB2", "SB", "MVP")


def _mitml_name(name: str) -> str:
    return "Intercept" if name == "(Intercept)" else name


def _extra_table(batch: LmerBatch, index) -> tuple:
    """mitml's extra parameters of the imputations ``index``: (names, (len(index), k) values)."""
    tau = batch.taus(index)
    sigma2 = batch.result["sigma2"][index]
    raw = list(batch.design.z_names)
    names = [_mitml_name(n) for n in raw]
    group = batch.design.formula.group
    out = {f"{n}~~{n}|{group}": tau[:, i, i] for i, n in enumerate(names)}
    for j in range(len(names)):  # upper-triangle covariances, column-major
        for i in range(j):
            out[f"{names[i]}~~{names[j]}|{group}"] = tau[:, i, j]
    out["Residual~~Residual"] = sigma2
    if "(Intercept)" in raw:
        t00 = tau[:, raw.index("(Intercept)"), raw.index("(Intercept)")]
        out[f"ICC|{group}"] = t00 / (t00 + sigma2)
    return list(out), np.column_stack(list(out.values())).astype(float)


class LmerSummary:
    """Printable summary of an :class:`LmerFit` (``str``/``repr`` give lme4-like text)."""

    def __init__(self, text: str, fixed: pd.DataFrame, random: pd.DataFrame):
        self.text = text
        self.fixed = fixed
        self.random = random

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def to_frame(self) -> pd.DataFrame:
        """The fixed-effects table."""
        return self.fixed.copy()


class LmerFit:
    """Linear mixed model fitted by (RE)ML to one imputed data set (lme4's ``lmerMod``).

    Attributes
    ----------
    index : int
        Position of the data set in the imputation list (0-based).
    coef : pd.Series
        Fixed effects (``fixef``), R's term names.
    vcov : pd.DataFrame
        Their covariance (lme4's ``vcov``).
    tau : pd.DataFrame
        Random-effect covariance matrix.
    sigma2 : float
        Residual variance.
    theta : ndarray
        Relative covariance factor parameters (lme4's ``getME(fit, "theta")``).
    loglik, deviance : float
        Log-likelihood (restricted for REML fits) and ``-2 loglik``.
    converged, singular : bool
        Convergence check passed; an estimate lies on the boundary (``isSingular``).
    """

    class_name = "lmerMod"  # as mitml reports the class of lme4 fits

    def __init__(self, batch: LmerBatch, index: int):
        self._batch = batch
        self.index = int(index)

    # -- basic accessors -----------------------------------------------------------------------
    @property
    def formula(self) -> str:
        return self._batch.design.formula.text

    @property
    def reml(self) -> bool:
        return self._batch.reml

    @property
    def group(self) -> str:
        return self._batch.design.formula.group

    @property
    def coef(self) -> pd.Series:
        names = list(self._batch.design.x_names)
        return pd.Series(self._batch.result["beta"][self.index], index=names, name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        names = list(self._batch.design.x_names)
        return pd.DataFrame(self._batch.vcov(self.index), index=names, columns=names)

    @property
    def tau(self) -> pd.DataFrame:
        names = list(self._batch.design.z_names)
        return pd.DataFrame(self._batch.tau(self.index), index=names, columns=names)

    @property
    def sigma2(self) -> float:
        return float(self._batch.result["sigma2"][self.index])

    @property
    def theta(self) -> np.ndarray:
        return np.array(self._batch.result["theta"][self.index])

    @property
    def deviance(self) -> float:
        return float(self._batch.result["deviance"][self.index])

    @property
    def loglik(self) -> float:
        return -0.5 * self.deviance

    @property
    def nobs(self) -> int:
        return int(self._batch.stats.n[self.index])

    @property
    def ngroups(self) -> int:
        return self._batch.n_groups(self.index)

    @property
    def converged(self) -> bool:
        return bool(self._batch.result["converged"][self.index])

    @property
    def singular(self) -> bool:
        return bool(self._batch.result["singular"][self.index])

    @property
    def iterations(self) -> int:
        return int(self._batch.result["iterations"][self.index])

    def n_params(self) -> int:
        """``p + q (q + 1) / 2 + 1``, logLik's ``df`` in lme4."""
        p, q = len(self._batch.design.x_names), len(self._batch.design.z_names)
        return p + q * (q + 1) // 2 + 1

    # -- fitted-model protocol -------------------------------------------------------------------
    def mitml_coef(self) -> pd.Series:
        return self.coef

    def mitml_vcov(self) -> pd.DataFrame:
        return self.vcov

    def mitml_extra(self) -> pd.Series:
        """Variance components with mitml's names (variances, covariances, residual, ICC)."""
        names, values = _extra_table(self._batch, [self.index])
        return pd.Series(values[0], index=names, dtype=float)

    @staticmethod
    def mitml_stack(fits: list):
        """Optional protocol method: every fit's estimates at once, or None.

        For fits that are all :class:`LmerFit` views on one batch, returns
        ``(names, qhat (m, p), uhat (m, p, p), extra)`` with ``extra`` a DataFrame (parameters x
        fits) of the :meth:`mitml_extra` values: the same numbers as the per-fit methods, without
        building m pandas objects. Otherwise None (callers fall back to the per-fit methods).
        """
        if not fits or not isinstance(fits[0], LmerFit):
            return None
        batch = fits[0]._batch
        if not all(isinstance(fit, LmerFit) and fit._batch is batch for fit in fits):
            return None
        index = np.array([fit.index for fit in fits])
        extra_names, extra = _extra_table(batch, index)
        return (list(batch.design.x_names), np.array(batch.result["beta"][index]),
                batch.vcovs(index), pd.DataFrame(extra.T, index=extra_names))

    def mitml_df_com(self):
        return None

    def mitml_loglik(self) -> tuple:
        return self.loglik, self.n_params()

    def mitml_is_reml(self) -> bool:
        return self.reml

    def mitml_refit_ml(self) -> "LmerFit":
        """This model refitted by ML (all imputations are refitted at once, on first use)."""
        if not self.reml:
            return self
        return LmerFit(self._batch.refit_ml(), self.index)

    def mitml_params(self) -> dict:
        return {
            "beta": np.array(self._batch.result["beta"][self.index]),
            "tau": self._batch.tau(self.index),
            "sigma2": self.sigma2,
        }

    def mitml_loglik_at(self, params: dict) -> float:
        """ML log-likelihood of this data set at ``params`` (keys ``beta``, ``tau``, ``sigma2``)."""
        try:
            beta, tau, sigma2 = params["beta"], params["tau"], params["sigma2"]
        except (KeyError, TypeError) as exc:
            raise MitmlError(
                "mitml_loglik_at: 'params' must be a dict with keys 'beta', 'tau' and 'sigma2'."
            ) from exc
        b = self._batch
        beta = np.asarray(beta, dtype=float).reshape(-1)
        if beta.shape == b.beta0[self.index].shape:  # to the centred columns of b.stats
            beta = np.linalg.solve(b.centre[self.index], beta)
        return marginal_loglik(b.stats_at(self.index), b.beta0[self.index], beta, tau, sigma2)

    def mitml_stacked_loglik(self, fits: list) -> float:
        """logLik of this model fitted to the stacked data of ``fits`` (one per imputation) / m."""
        members = []
        for fit in fits:
            if not isinstance(fit, LmerFit):
                raise MitmlError(
                    f"mitml_stacked_loglik: all fits must be LmerFit, got {type(fit).__name__}."
                )
            members.append((fit._batch, fit.index))
        return self._batch.stacked_loglik(tuple(members))

    def mitml_stacked_loglik_data(self, data: list) -> float:
        """D4 with ``data=``: this model fitted to the stacked data sets ``data``, logLik / m."""
        from .design import build_design

        design = build_design(self._batch.design.formula, data)
        return self._batch.stacked_loglik_data(design)

    def mitml_formula(self) -> str:
        return self.formula

    def mitml_r2(self, which=_R2_PARTS) -> dict:
        """Multilevel R-squared parts (mitml's ``multilevelR2``): RB1, RB2, SB and MVP."""
        which = [which] if isinstance(which, str) else list(which)
        unknown = [w for w in which if w not in _R2_PARTS]
        if unknown:
            raise MitmlError(f"multilevel_r2: unknown measure(s) {unknown}; use {list(_R2_PARTS)}.")
        b, i = self._batch, self.index
        x_names, z_names = list(b.design.x_names), list(b.design.z_names)
        if "(Intercept)" not in x_names or "(Intercept)" not in z_names:
            raise MitmlError(
                "multilevel_r2: the model must contain a fixed and a random intercept."
            )
        rows = b.design.imp == i
        keep_x = [k for k, n in enumerate(x_names) if n != "(Intercept)"]
        beta = b.result["beta"][i][keep_x]
        v_yhat = float(np.var(b.design.x[rows][:, keep_x] @ beta, ddof=1)) if keep_x else 0.0
        tau = b.tau(i)
        order = [z_names.index("(Intercept)")] + [
            k for k, n in enumerate(z_names) if n != "(Intercept)"
        ]
        tau = tau[np.ix_(order, order)]
        z = b.design.z[rows][:, order[1:]]
        t00, t10, t11 = tau[0, 0], tau[1:, 0], tau[1:, 1:]
        if z.shape[1]:
            mu_z = z.mean(axis=0)
            v_z = np.atleast_2d(np.cov(z, rowvar=False))
            extra = 2.0 * mu_z @ t10 + mu_z @ t11 @ mu_z + np.trace(t11 @ v_z)
        else:
            extra = 0.0
        sigma2 = self.sigma2
        out = {"MVP": v_yhat / (v_yhat + t00 + extra + sigma2)}
        if any(w != "MVP" for w in which):
            null = b.null_model()
            s0, t0 = float(null.result["sigma2"][i]), float(null.tau(i)[0, 0])
            # a null model with a zero intercept variance gives RB2 = -Inf (NaN for 0 / 0), as in
            # R, where the division is silent
            with np.errstate(divide="ignore", invalid="ignore"):
                out["RB1"] = 1.0 - sigma2 / s0
                out["RB2"] = 1.0 - np.float64(t00) / t0
                out["SB"] = 1.0 - (sigma2 + t00) / (s0 + t0)
        return {w: float(out[w]) for w in which}

    # -- printing --------------------------------------------------------------------------------
    def summary(self) -> LmerSummary:
        """lme4-like summary: criterion, random effects, fixed effects."""
        coef = self.coef
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        fixed = pd.DataFrame(
            {"Estimate": coef.to_numpy(), "Std. Error": se, "t value": coef.to_numpy() / se},
            index=coef.index,
        )
        tau = self.tau
        sd = np.sqrt(np.diag(tau.to_numpy()))
        random = pd.DataFrame(
            {"Groups": [self.group] * len(sd) + ["Residual"],
             "Name": list(tau.index) + [""],
             "Variance": list(np.diag(tau.to_numpy())) + [self.sigma2],
             "Std.Dev.": list(sd) + [np.sqrt(self.sigma2)]}
        )
        kind = "REML" if self.reml else "maximum likelihood"
        crit = "REML criterion at convergence" if self.reml else "deviance"
        lines = [
            f"Linear mixed model fit by {kind} (imputation {self.index + 1})",
            f"Formula: {self.formula}",
            f"{crit}: {self.deviance:.4f}   logLik: {self.loglik:.4f}   df: {self.n_params()}",
            "",
            "Random effects:",
            random.to_string(index=False, float_format=lambda v: f"{v:.5g}"),
        ]
        if len(sd) > 1:
            corr = tau.to_numpy() / np.outer(sd, sd)
            lines += ["Correlations:", pd.DataFrame(corr, index=tau.index, columns=tau.columns)
                      .to_string(float_format=lambda v: f"{v:.3f}")]
        lines += [
            f"Number of obs: {self.nobs}, groups: {self.group}, {self.ngroups}",
            "",
            "Fixed effects:",
            fixed.to_string(float_format=lambda v: f"{v:.5g}"),
        ]
        if self.singular:
            lines += ["", "boundary (singular) fit: see help('isSingular')"]
        if not self.converged:
            lines += ["", "Model failed to converge (see the warning at fit time)."]
        return LmerSummary("\n".join(lines), fixed, random)

    def __repr__(self) -> str:
        kind = "REML" if self.reml else "ML"
        coef = ", ".join(f"{k}={v:.4g}" for k, v in self.coef.items())
        return (
            f"<LmerFit imputation {self.index + 1} ({kind}): {self.formula}; logLik={self.loglik:.3f}; "
            f"{coef}>"
        )
