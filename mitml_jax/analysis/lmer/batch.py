"""``LmerBatch``: one model fitted to all m imputations at once (host results, cached refits).

The batch owns the stacked design, the cross-products and the optimiser output for every
imputation. What needs several imputations or a second fit is done here once for all of them
and cached: the ML refit (D2-likelihood, D3, D4), the null model ``y ~ 1 + (1 | g)`` of the
multilevel R-squared, and the fit to the stacked data (D4).
"""

from __future__ import annotations

import warnings

import jax
import numpy as np

from mitml_jax.errors import MitmlError, MitmlWarning

from .deviance import LmerStats, lambda_positions, n_theta
from .design import LmerDesign, build_stats, pad_fixed, padded_size
from .host_fit import MAX_UNROLL, fit_batch_host
from .optimize import SINGULAR_TOL, diag_index, fit_batch

__all__ = ["LmerBatch", "run_fit", "use_host", "stacked_fit_loglik", "GRAD_TOL", "HOST_MAX_WORK",
           "z_scales", "scale_z", "check_identifiable"]

# lme4's tolerance on the scaled gradient at the optimum (lmerControl check.conv.grad)
GRAD_TOL = 2e-3

#: Batches whose Newton phase A handles at most this many complex numbers per array
#: (data sets x clusters x (2k + 1) points x k directions x q (p + 1)) are fitted on the host
#: (:func:`.host_fit.fit_batch_host`, nothing compiled): 0.1-0.3 s of NumPy near the limit
#: (450,000: m = 1000 or J = 500 random-intercept fits, 0.12-0.13 s; q = 2: 0.15-0.3 s depending
#: on the iterations), against 2-3 s for tracing and compiling :func:`.optimize.fit_batch`
#: (about 1 s with a warm persistent cache). The Introduction's m = 100 random-intercept fits of
#: 50 clusters: 45,000 (15-30 ms). Measured 2026-11-26 on the shared 2-core machine (load 3-4).
HOST_MAX_WORK = 500_000


def use_host(stats: LmerStats) -> bool:
    """Whether :func:`run_fit` fits ``stats`` on the host (small problems) or with XLA."""
    m, n_clusters, q, p = stats.ztx.shape
    k = n_theta(q)
    work = m * n_clusters * (2 * k + 1) * k * q * (p + 1)
    return q <= MAX_UNROLL and p <= MAX_UNROLL and work <= HOST_MAX_WORK


def z_scales(stats: LmerStats) -> np.ndarray:
    """Scale of each random-effect column (q,): 1, or the power of two nearest to the column's
    root mean square over all rows of all data sets when that lies outside [1/8, 8].

    ``theta`` is relative to the residual SD per unit of each Z column: for a slope of ``x`` in
    units of 1e6 it is about 1e-6 times its value for ``x`` in units of 1, far below the
    finite-difference steps of the Hessian and lme4's start ``Lambda = I``, and the fit stalls
    (lme4 itself warns and stops short there). The fit runs on ``Z S^-1`` (``Lambda_s = S
    Lambda``), which has the same deviance and fixed effects; powers of two keep the scaled
    cross-products exact, and columns of ordinary scale are left alone (the same fit as before).
    """
    ztz = np.asarray(stats.ztz)
    q = ztz.shape[-1]
    mean_square = np.einsum("ijkk->k", ztz.reshape((-1,) + ztz.shape[-3:])) / max(
        float(np.sum(stats.n)), 1.0)
    with np.errstate(divide="ignore"):
        power = np.round(np.log2(np.sqrt(mean_square)))
    power = np.where(np.isfinite(power) & (np.abs(power) > 3), power, 0.0)
    return np.exp2(power).reshape(q)


def scale_z(stats: LmerStats, scales: np.ndarray) -> LmerStats:
    """``stats`` of ``Z S^-1`` (``S = diag(scales)``); ``stats`` itself when all scales are 1."""
    if np.all(scales == 1.0):
        return stats
    inv = 1.0 / scales
    return stats._replace(
        ztz=np.asarray(stats.ztz) * inv[:, None] * inv,
        ztx=np.asarray(stats.ztx) * inv[:, None],
        zty=np.asarray(stats.zty) * inv,
    )


def run_fit(stats: LmerStats, beta0: np.ndarray, reml: bool, maxiter: int,
            centre: np.ndarray | None = None) -> dict:
    """Fit all data sets of ``stats`` and bring the results to the host as NumPy arrays.

    Small batches run the NumPy version of the optimiser, larger ones the compiled XLA program
    (:func:`use_host`); both run the same algorithm and give the same optimum. ``centre``
    (from :func:`.design.build_stats`) maps ``beta`` and ``lx`` back to the model's columns.
    """
    p = stats.xtx.shape[-1]
    scales = z_scales(stats)
    fitted = scale_z(stats, scales)
    if use_host(fitted):
        out = fit_batch_host(fitted, bool(reml), maxiter)
    else:
        padded = pad_fixed(fitted, padded_size(p))
        out = jax.device_get(fit_batch(padded, np.bool_(reml), np.int32(maxiter)))
        out = {key: np.asarray(value) for key, value in out.items()}
    q = stats.ztz.shape[-1]
    # back to the columns of Z: Lambda = S^-1 Lambda_s (gradient and Hessian stay on the scale
    # the optimiser used, where the convergence check is meaningful)
    out["lam"] = out["lam"] / scales[:, None]
    out["theta"] = out["theta"] / scales[[i for i, _ in lambda_positions(q)]]
    out["beta"] = out["beta"][:, :p] + beta0
    out["lx"] = out["lx"][:, :p, :p]
    if centre is not None:  # back from the centred columns (design.centre_fixed)
        out["beta"] = np.einsum("mij,mj->mi", centre, out["beta"])
        # R_X'R_X of x is C^-T (R_X'R_X of x_c) C^-1: its Cholesky factor is C^-T L_c
        out["lx"] = np.swapaxes(np.linalg.inv(centre), -1, -2) @ out["lx"]
    diag = diag_index(q)
    out["singular"] = np.any(out["theta"][:, diag] < SINGULAR_TOL, axis=1)
    g, h = out["gradient"], out["hessian"]
    scaled = np.full_like(g, np.inf)
    for i in range(len(g)):
        try:
            scaled[i] = np.linalg.solve(np.linalg.cholesky(h[i]).T, g[i])  # lme4: solve(chol(H), g)
        except np.linalg.LinAlgError:
            scaled[i] = g[i]
    out["max_grad"] = np.max(np.minimum(np.abs(scaled), np.abs(g)), axis=1)
    eig = np.linalg.eigvalsh(h)
    out["min_curvature"] = eig[:, 0] / np.maximum(1.0, np.abs(eig).max(axis=1))
    out["converged"] = (
        np.isfinite(out["deviance"]) & (out["max_grad"] < GRAD_TOL) & (out["min_curvature"] > -1e-6)
    )
    return out


def check_identifiable(n_groups: np.ndarray, n_obs: np.ndarray, q: int, group: str):
    """lme4's default checks of the grouping factor (``lmerControl``: check.nlev.gtr.1,
    check.nobs.vs.nlev and check.nobs.vs.nRE are "stop"), per imputed data set: at least two
    clusters, fewer clusters than rows, and more rows than random effects. Otherwise the random
    effects and the residual variance are not identifiable and lme4 refuses the model."""
    for i, (groups, n) in enumerate(zip(n_groups, n_obs)):
        where = f"in imputed data set {i + 1}"
        if groups < 2:
            raise MitmlError(
                f"The grouping factor {group!r} has {groups} cluster with complete rows {where}; "
                "lmer needs at least 2 (lme4: 'grouping factors must have > 1 sampled level'). "
                "Fit a model without random effects instead.")
        if groups >= n:
            raise MitmlError(
                f"The grouping factor {group!r} has as many clusters ({groups}) as complete rows "
                f"({int(n)}) {where}: the random intercept and the residual variance are not "
                "identifiable (lme4: 'number of levels of each grouping factor must be < number "
                "of observations'). Check the cluster column.")
        if q > 1 and n <= groups * q:
            raise MitmlError(
                f"{int(n)} complete rows {where} for {int(groups * q)} random effects ({groups} "
                f"clusters x {q}): the random effects and the residual variance are not "
                "identifiable (lme4: 'number of observations <= number of random effects'). "
                "Use fewer random slopes.")


def _which(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask) + 1
    shown = ", ".join(str(i) for i in idx[:10]) + (", ..." if len(idx) > 10 else "")
    return f"{len(idx)} of {len(mask)} imputed data sets ({shown})"


class LmerBatch:
    """A linear mixed model fitted by (RE)ML to each of m data sets (internal).

    Attributes
    ----------
    design : LmerDesign
    reml : bool
    stats : LmerStats
        NumPy cross-products with leading axis m, of the fixed-effect columns centred within each
        data set (:func:`.design.centre_fixed`).
    beta0 : ndarray (m, p)
        Offsets of the response in ``stats`` (fixed effects of the centred columns).
    centre : ndarray (m, p, p)
        Turns fixed effects of the centred columns into those of the model's columns
        (``beta = centre @ beta_c``; the identity without an intercept).
    result : dict
        Optimiser output per imputation (see :func:`run_fit`).
    """

    def __init__(self, design: LmerDesign, reml: bool, maxiter: int = 100, warn: bool = True):
        self.design = design
        self.reml = bool(reml)
        self.maxiter = int(maxiter)
        self.stats, self.beta0, self.centre = build_stats(
            design.y, design.x, design.z, design.imp, design.cluster, design.m, design.n_clusters,
            design.x_names,
        )
        d = design
        cells = np.bincount(d.imp * d.n_clusters + d.cluster, minlength=d.m * d.n_clusters)
        self._n_groups = np.count_nonzero(cells.reshape(d.m, d.n_clusters), axis=1)
        check_identifiable(self._n_groups, np.asarray(self.stats.n), len(d.z_names),
                           d.formula.group)
        self.result = run_fit(self.stats, self.beta0, self.reml, self.maxiter, self.centre)
        self._ml = None if self.reml else self
        self._null = None
        self._stacked = {}
        if warn:
            self.warn()

    # -- checks ------------------------------------------------------------------------------
    def warn(self):
        """Warn as lme4 does about non-convergence and singular (boundary) fits."""
        converged, singular = self.result["converged"], self.result["singular"]
        if not np.all(converged):
            worst = float(np.nanmax(self.result["max_grad"]))
            warnings.warn(
                f"Model failed to converge in {_which(~converged)}: max|grad| = {worst:.3g} "
                f"(tol = {GRAD_TOL}); check the model and the data (lme4's convergence check).",
                MitmlWarning,
                stacklevel=4,
            )
        if np.any(singular):
            warnings.warn(
                f"boundary (singular) fit in {_which(singular)}: see help('isSingular') "
                "(a random-effect variance is estimated as zero or the random-effect "
                "correlation as +-1).",
                MitmlWarning,
                stacklevel=4,
            )

    # -- per-imputation values ---------------------------------------------------------------
    @property
    def m(self) -> int:
        return self.design.m

    def stats_at(self, i: int) -> LmerStats:
        """Cross-products of imputation ``i`` (no batch axis)."""
        return LmerStats(*(np.asarray(a)[i] for a in self.stats))

    def tau(self, i: int) -> np.ndarray:
        """Random-effect covariance ``sigma^2 Lambda Lambda'`` of imputation ``i``."""
        return self.taus([i])[0]

    def taus(self, index) -> np.ndarray:
        """:meth:`tau` of the imputations ``index`` (a sequence), stacked: (len(index), q, q)."""
        lam = self.result["lam"][index]
        return self.result["sigma2"][index, None, None] * lam @ np.swapaxes(lam, -1, -2)

    def vcov(self, i: int) -> np.ndarray:
        """lme4's ``vcov``: ``sigma^2 (R_X'R_X)^{-1}`` from the Cholesky factor of ``R_X'R_X``."""
        return self.vcovs([i])[0]

    def vcovs(self, index) -> np.ndarray:
        """:meth:`vcov` of the imputations ``index`` (a sequence), stacked: (len(index), p, p)."""
        lx = self.result["lx"][index]
        inv_l = np.linalg.solve(lx, np.broadcast_to(np.eye(lx.shape[-1]), lx.shape))
        return self.result["sigma2"][index, None, None] * np.swapaxes(inv_l, -1, -2) @ inv_l

    def n_groups(self, i: int) -> int:
        """Number of clusters with at least one row in imputation ``i``."""
        return int(self._n_groups[i])

    # -- cached companion fits ---------------------------------------------------------------
    def refit_ml(self) -> "LmerBatch":
        """The same model fitted by ML to all imputations (computed once)."""
        if self._ml is None:
            self._ml = LmerBatch(self.design, reml=False, maxiter=self.maxiter, warn=False)
        return self._ml

    def null_model(self) -> "LmerBatch":
        """``y ~ 1 + (1 | g)`` with the same REML setting (multilevel R-squared)."""
        if self._null is None:
            d = self.design
            ones = np.ones((len(d.y), 1))
            null_design = LmerDesign(
                y=d.y, x=ones, z=ones, imp=d.imp, cluster=d.cluster, m=d.m,
                cluster_labels=d.cluster_labels, x_names=("(Intercept)",),
                z_names=("(Intercept)",), formula=d.formula,
            )
            self._null = LmerBatch(null_design, reml=self.reml, maxiter=self.maxiter, warn=False)
        return self._null

    def stacked_loglik(self, members: tuple) -> float:
        """logLik of the model fitted to the stacked data of ``members`` ((batch, i) pairs) / m.

        Cluster ids are made imputation-specific, as mitml's D4 does; the fit uses this batch's
        REML setting.
        """
        key = tuple((id(b), i) for b, i in members)
        if key not in self._stacked:
            parts = []
            for batch, i in members:
                d = batch.design
                if d.x.shape[1] != self.design.x.shape[1] or d.z.shape[1] != self.design.z.shape[1]:
                    raise MitmlError("mitml_stacked_loglik: the fits do not share one model.")
                rows = d.imp == i
                parts.append((d.y[rows], d.x[rows], d.z[rows], d.cluster[rows], d.n_clusters))
            self._stacked[key] = stacked_fit_loglik(parts, self.reml, self.maxiter)
        return self._stacked[key]

    def stacked_loglik_data(self, design: LmerDesign) -> float:
        """As :meth:`stacked_loglik` for the data sets of ``design`` (built from new data)."""
        parts = []
        for i in range(design.m):
            rows = design.imp == i
            parts.append((design.y[rows], design.x[rows], design.z[rows], design.cluster[rows],
                          design.n_clusters))
        return stacked_fit_loglik(parts, self.reml, self.maxiter)


def stacked_fit_loglik(parts: list, reml: bool, maxiter: int) -> float:
    """Fit one model to the stacked ``parts`` ((y, X, Z, cluster, J) per data set) and return
    its log-likelihood divided by the number of data sets (mitml's D4)."""
    offsets = np.cumsum([0] + [part[4] for part in parts])
    y = np.concatenate([part[0] for part in parts])
    x = np.concatenate([part[1] for part in parts])
    z = np.concatenate([part[2] for part in parts])
    cluster = np.concatenate([part[3] + offsets[k] for k, part in enumerate(parts)])
    stats, beta0, _ = build_stats(y, x, z, np.zeros(len(y), dtype=np.int64), cluster, 1,
                               int(offsets[-1]))
    out = run_fit(stats, beta0, reml, maxiter)
    return float(-0.5 * out["deviance"][0]) / len(parts)
