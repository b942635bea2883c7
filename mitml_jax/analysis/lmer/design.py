"""Host side of lmer: stacked design matrices of all imputations and their cross-products.

All m data sets are stacked once, so the model matrices are built by a single call (consistent
factor coding across imputations, and fast for large m). Rows with a missing value in the
response, the grouping factor or any model-matrix column are dropped per imputation (lme4's
``na.omit``). Clusters get one global code (sorted labels) shared by all imputations; a cluster
absent from an imputation has zero cross-products, which contribute nothing to the deviance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError, MitmlTypeError

from .deviance import LmerStats
from .formula import LmerFormula

__all__ = ["LmerDesign", "model_matrix", "build_design", "build_stats", "pad_fixed",
           "padded_size", "redundant_columns", "RANK_TOL", "centre_fixed"]



def model_matrix(rhs: str, data: pd.DataFrame) -> pd.DataFrame:
    """R's ``model.matrix`` of a one-sided formula with R's column names; rows are kept
    (:func:`mitml_jax.spec.model_matrix.model_matrix`)."""
    from mitml_jax.spec.model_matrix import model_matrix as spec_model_matrix

    return spec_model_matrix(rhs, data)


@dataclass(frozen=True)
class LmerDesign:
    """Stacked rows of all imputations (host NumPy), after dropping incomplete rows."""

    y: np.ndarray  # (N,)
    x: np.ndarray  # (N, p)
    z: np.ndarray  # (N, q)
    imp: np.ndarray  # (N,) imputation index 0..m-1
    cluster: np.ndarray  # (N,) global cluster code 0..J-1
    m: int
    cluster_labels: np.ndarray  # (J,)
    x_names: tuple
    z_names: tuple
    formula: LmerFormula

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_labels)


def _used_columns(formula: LmerFormula, columns) -> list:
    """Columns the formula can refer to (names and backtick-quoted names in its text)."""
    text = formula.text
    if re.search(r"(^|[^A-Za-z0-9_.])\.($|[^A-Za-z0-9_.])", text.replace("~", " ")):
        return list(columns)  # R's '.' (all other columns)
    tokens = set(re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", text)) | set(re.findall(r"`([^`]*)`", text))
    used = [c for c in columns if c in tokens]
    return used if used else list(columns)


def _stack_columns(implist, columns) -> pd.DataFrame:
    """Stack the data sets' ``columns`` (faster than selecting columns of every frame first)."""
    out = {}
    for name in columns:
        parts = [frame[name] for frame in implist]
        if all(part.dtype.kind in "biuf" and part.dtype == parts[0].dtype for part in parts):
            out[name] = np.concatenate([part.to_numpy() for part in parts])
        else:
            out[name] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(out)


def _as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """String columns as categoricals with sorted levels (R's factor()); much faster to code."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            continue
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            out[name] = pd.Categorical(column)
    return frame.assign(**out) if out else frame


def _numeric_response(column: pd.Series, name: str) -> np.ndarray:
    """The response as floats; text or categories (which would turn into missing values and
    drop every row) are refused by name."""
    values = pd.to_numeric(column, errors="coerce") if not isinstance(
        column.dtype, pd.CategoricalDtype) else pd.Series(np.nan, index=column.index)
    lost = values.isna().to_numpy() & column.notna().to_numpy()
    if lost.any():
        example = column[lost].iloc[0]
        raise MitmlTypeError(
            f"The response {name!r} must be numeric (lmer fits a linear mixed model); it has "
            f"non-numeric values such as {example!r}. Recode it, e.g. as 0/1, in "
            "ImputedList.within.")
    return values.to_numpy(dtype=float)


#: formula functions whose values depend on the whole data set (R evaluates them within each
#: imputed data set): cluster means, orthogonal polynomials, means
_PER_DATA_SET = re.compile(r"(^|[^A-Za-z0-9_.])(clusterMeans|poly|mean)\s*\(")


def _model_matrices(formula: LmerFormula, factors: pd.DataFrame, sizes) -> tuple:
    """Fixed and random model matrices of the stacked data sets ``factors`` (rows of data set i
    are the i-th block of ``sizes``).

    Terms such as ``poly(x, 2)``, ``clusterMeans(x, id)`` or ``I(x - mean(x))`` are evaluated
    within each data set, as R's ``lmer`` on each data set does (over the stack, ``poly`` would
    be orthonormal over all imputations and its coefficients off by a factor sqrt(m)); factor
    codes come from the stacked columns, so every data set has the same columns.
    """
    if not _PER_DATA_SET.search(formula.fixed + " " + formula.random):
        return model_matrix(formula.fixed, factors), model_matrix(formula.random, factors)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    parts = [factors.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:])]
    x_frame = pd.concat([model_matrix(formula.fixed, part) for part in parts], ignore_index=True)
    z_frame = pd.concat([model_matrix(formula.random, part) for part in parts], ignore_index=True)
    return x_frame, z_frame


def _complete(y, group, x, z) -> np.ndarray:
    """Rows with a response, a cluster and every model-matrix column (lme4's ``na.omit``)."""
    return (
        np.isfinite(y)
        & group.notna().to_numpy()
        & np.isfinite(x).all(axis=1)
        & np.isfinite(z).all(axis=1)
    )


def _refuse_infinite(y, group, x_frame: pd.DataFrame, z_frame: pd.DataFrame, imp,
                     response: str):
    """Infinite values (e.g. ``log(0)``) are errors, as in R (lme4 stops with 'NA/NaN/Inf');
    only missing values (NaN) drop their rows, and rows dropped for a missing value are not
    checked (R's ``na.omit`` removes them first)."""
    x, z = x_frame.to_numpy(dtype=float), z_frame.to_numpy(dtype=float)
    kept = (~np.isnan(y) & group.notna().to_numpy() & ~np.isnan(x).any(axis=1)
            & ~np.isnan(z).any(axis=1))
    for name, values in [(response, y)] + [
            (column, frame[column].to_numpy(dtype=float))
            for frame in (x_frame, z_frame) for column in frame.columns]:
        bad = np.isinf(values) & kept
        if bad.any():
            first = int(imp[bad][0])
            raise MitmlError(
                f"{name!r} has infinite values (row {int(np.argmax(bad[imp == first])) + 1} "
                f"of imputed data set {first + 1}); lmer cannot fit them. Set them missing or "
                "transform the variable (e.g. log(x + 1) instead of log(x)).")


def _drop_unused_levels(factors: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``factors`` with the categories no complete row has removed (lme4's model frame drops
    unused levels), or ``factors`` itself when every category is used.

    Rows with a removed category become missing in that column; they are incomplete anyway.
    """
    out = {}
    for name in factors.columns:
        column = factors[name]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            continue
        present = np.zeros(len(column.cat.categories), dtype=bool)
        codes = column.cat.codes.to_numpy()[keep]
        present[codes[codes >= 0]] = True
        if not present.all():
            out[name] = column.cat.set_categories(column.cat.categories[present])
    return factors.assign(**out) if out else factors


def build_design(formula: LmerFormula, implist) -> LmerDesign:
    """Stack the imputed data sets and build response, X, Z and cluster codes."""
    if isinstance(implist, pd.DataFrame) or not isinstance(implist, (list, tuple)):
        raise MitmlTypeError(
            "'implist' must be a list of pandas DataFrames (e.g. an ImputedList from "
            f"mitml_complete), got {type(implist).__name__}."
        )
    if len(implist) == 0:
        raise MitmlError("'implist' is empty: pass at least one imputed data set.")
    for i, frame in enumerate(implist):
        if not isinstance(frame, pd.DataFrame):
            raise MitmlTypeError(
                f"'implist' element {i} is a {type(frame).__name__}, not a pandas DataFrame."
            )
        for column in (formula.response, formula.group):
            if column not in frame.columns:
                raise MitmlError(
                    f"Column {column!r} named in 'formula' is not in imputed data set {i + 1}."
                )
    sizes = np.array([len(frame) for frame in implist])
    if np.any(sizes == 0):
        raise MitmlError(f"Imputed data set {int(np.argmin(sizes)) + 1} has no rows; lmer needs "
                         "data in every imputed data set.")
    columns = _used_columns(formula, implist[0].columns)
    stacked = _stack_columns(implist, columns)
    imp = np.repeat(np.arange(len(implist)), sizes)
    factors = _as_categories(stacked)
    x_frame, z_frame = _model_matrices(formula, factors, sizes)
    if x_frame.shape[1] == 0:
        raise MitmlError(f"The fixed part of 'formula' ({formula.fixed!r}) has no columns.")
    if z_frame.shape[1] == 0:
        raise MitmlError(f"The random part of 'formula' ({formula.random!r}) has no columns.")
    y = _numeric_response(stacked[formula.response], formula.response)
    group = stacked[formula.group]
    x = x_frame.to_numpy(dtype=float)
    z = z_frame.to_numpy(dtype=float)
    _refuse_infinite(y, group, x_frame, z_frame, imp, formula.response)
    keep = _complete(y, group, x, z)
    used = _drop_unused_levels(factors, keep)
    if used is not factors:  # lme4 drops factor levels without complete rows: fewer columns
        x_frame, z_frame = _model_matrices(formula, used, sizes)
        x = x_frame.to_numpy(dtype=float)
        z = z_frame.to_numpy(dtype=float)
        keep = _complete(y, group, x, z)
    codes, labels = pd.factorize(group[keep], sort=True)
    return LmerDesign(
        y=y[keep],
        x=x[keep],
        z=z[keep],
        imp=imp[keep],
        cluster=np.asarray(codes, dtype=np.int64),
        m=len(implist),
        cluster_labels=np.asarray(labels),
        x_names=tuple(x_frame.columns),
        z_names=tuple(z_frame.columns),
        formula=formula,
    )


def _group_sum(values: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """Sum the rows of ``values`` (N, k) by ``index`` into (size, k) (bincount per column)."""
    out = np.empty((size, values.shape[1]))
    for k in range(values.shape[1]):
        out[:, k] = np.bincount(index, weights=values[:, k], minlength=size)
    return out


#: tolerance of lme4's rank check of X (``qr(X, tol = 1e-7)``, LINPACK's dqrdc2): a column whose
#: part orthogonal to the columns before it is below ``RANK_TOL`` times its norm is redundant
RANK_TOL = 1e-7


def redundant_columns(xtx: np.ndarray) -> np.ndarray:
    """Index of the first redundant column of each data set's X (-1 where X has full rank).

    R's rule, from ``X'X`` (m, p, p): scaled to a unit diagonal, so that the scale of a column
    does not matter (x in units of 1e9 is not redundant), its Cholesky pivot ``j`` is the squared
    norm of column j's part orthogonal to the earlier columns relative to column j's norm, and
    compared with ``RANK_TOL ** 2``. A zero column is redundant.
    """
    m, p, _ = xtx.shape
    norm = np.sqrt(np.einsum("mii->mi", xtx))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = xtx / norm[:, :, None] / norm[:, None, :]
    low = np.zeros_like(c)
    first = np.full(m, -1)
    for j in range(p):
        pivot = c[:, j, j] - np.sum(low[:, j, :j] ** 2, axis=1)
        ok = pivot > RANK_TOL**2
        first[~ok & (first < 0)] = j
        root = np.sqrt(np.where(ok, pivot, 1.0))
        rest = c[:, j + 1 :, j] - np.einsum("mik,mk->mi", low[:, j + 1 :, :j], low[:, j, :j])
        low[:, j, j] = np.where(ok, root, 0.0)
        low[:, j + 1 :, j] = np.where(ok[:, None], rest / root[:, None], 0.0)  # R drops it
    return first


def centre_fixed(x: np.ndarray, imp: np.ndarray, m: int):
    """Centre every column except the intercept within each data set: ``(x_c, centre)`` with
    ``x_c = x centre`` row by row of each data set, or ``(x, None)`` without an intercept column.

    ``centre`` (m, p, p) is the identity with ``-mean`` of each column in the intercept's row, so
    ``x beta = x_c centre^-1 beta`` and the fixed effects of ``x`` are ``centre @ beta_c``.
    Cross-products of a predictor far from zero relative to its spread (x + 1e6) lose about
    log10(mean / sd) ** 2 digits; centred, they keep them (lme4 works the same way on X's QR).
    """
    p = x.shape[1]
    ones = np.all(x == 1.0, axis=0)
    if not ones.any() or p == 1:
        return x, None
    first = int(np.argmax(ones))
    count = np.maximum(np.bincount(imp, minlength=m), 1).astype(float)
    means = _group_sum(x, imp, m) / count[:, None]
    means[:, first] = 0.0
    centre = np.tile(np.eye(p), (m, 1, 1))
    centre[:, first, :] -= means
    return x - means[imp], centre


def build_stats(y, x, z, imp, cluster, m, n_clusters, x_names=None):
    """Cross-products of every data set, response offset by its OLS fit for accuracy.

    Returns ``(stats, beta0, centre)``: :class:`LmerStats` with leading axis m (NumPy) of the
    centred fixed-effect columns (:func:`centre_fixed`), the offsets ``beta0`` (m, p) such that
    their fixed effects are ``beta_stats + beta0``, and ``centre`` (m, p, p), which turns them
    into the fixed effects of ``x``: ``beta = centre @ (beta_stats + beta0)``. The deviance does
    not change (``centre`` is unit triangular). ``x_names`` (the columns of ``x``) name a
    redundant column in the error; the rank check uses ``x`` itself, as lme4 does.
    """
    p, q = x.shape[1], z.shape[1]
    n = np.bincount(imp, minlength=m).astype(float)
    if np.any(n <= p):
        bad = int(np.argmin(n)) + 1
        raise MitmlError(
            f"Imputed data set {bad} has {int(n.min())} complete rows for {p} fixed effects; "
            "lmer needs more rows than fixed effects."
        )
    xx = (x[:, :, None] * x[:, None, :]).reshape(len(y), p * p)
    xtx = _group_sum(xx, imp, m).reshape(m, p, p)
    xty0 = _group_sum(x * y[:, None], imp, m)
    redundant = redundant_columns(xtx)
    if np.any(redundant >= 0):
        bad = int(np.argmax(redundant >= 0))
        column = int(redundant[bad])
        name = f" {x_names[column]!r}" if x_names is not None else f" {column + 1}"
        why = ("is zero in every complete row (a factor level this data set does not have?)"
               if xtx[bad, column, column] == 0 else
               "is (nearly) a linear combination of the columns before it (lme4 would drop it)")
        raise MitmlError(
            f"The fixed-effects model matrix is rank deficient in imputed data set {bad + 1}: "
            f"column{name} {why}; remove redundant terms from 'formula'."
        )
    x, centre = centre_fixed(x, imp, m)
    if centre is not None:  # cross-products of the centred columns (accurate for x + 1e6)
        xx = (x[:, :, None] * x[:, None, :]).reshape(len(y), p * p)
        xtx = _group_sum(xx, imp, m).reshape(m, p, p)
        xty0 = _group_sum(x * y[:, None], imp, m)
    else:
        centre = np.broadcast_to(np.eye(p), (m, p, p))
    beta0 = np.linalg.solve(xtx, xty0[..., None])[..., 0]
    yr = y - np.einsum("np,np->n", x, beta0[imp])
    xty = _group_sum(x * yr[:, None], imp, m)
    yty = np.bincount(imp, weights=yr * yr, minlength=m)
    exact = yty <= 1e-24 * np.bincount(imp, weights=y * y, minlength=m)
    if np.any(exact):
        bad = int(np.argmax(exact)) + 1
        raise MitmlError(
            f"The fixed effects reproduce the response exactly in imputed data set {bad} (zero "
            "residual variance: a constant response, or the response among the predictors); "
            "there is nothing for lmer to fit. Check 'formula'.")
    cell = imp * n_clusters + cluster
    size = m * n_clusters
    zw = z[:, :, None] * np.concatenate([z, x, yr[:, None]], axis=1)[:, None, :]
    cross = _group_sum(zw.reshape(len(y), -1), cell, size).reshape(size, q, q + p + 1)
    cross = cross.reshape(m, n_clusters, q, q + p + 1)
    stats = LmerStats(
        ztz=cross[..., :q],
        ztx=cross[..., q : q + p],
        zty=cross[..., q + p],
        xtx=xtx,
        xty=xty,
        yty=yty,
        n=n,
        n_fixed=np.full(m, float(p)),
    )
    return stats, beta0, centre


def padded_size(p: int) -> int:
    """Bucket for the number of fixed effects: a multiple of 4 (fewer distinct compilations)."""
    return max(4, -(-p // 4) * 4)


def pad_fixed(stats: LmerStats, size: int) -> LmerStats:
    """Add inert fixed-effect columns up to ``size`` (unit ``X'X`` diagonal, no cross-products)."""
    m, n_clusters, q, p = stats.ztx.shape
    extra = size - p
    if extra <= 0:
        return stats
    xtx = np.zeros((m, size, size))
    xtx[:, :p, :p] = stats.xtx
    xtx[:, np.arange(p, size), np.arange(p, size)] = 1.0
    return stats._replace(
        ztx=np.concatenate([stats.ztx, np.zeros((m, n_clusters, q, extra))], axis=-1),
        xtx=xtx,
        xty=np.concatenate([stats.xty, np.zeros((m, extra))], axis=-1),
    )
