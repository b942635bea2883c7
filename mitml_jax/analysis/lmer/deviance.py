"""lme4's profiled (RE)ML deviance for one grouping factor, from per-cluster cross-products.

Bates, Maechler, Bolker and Walker (2015), *J. Stat. Softw.* 67(1), sections 3.1-3.5. With one
grouping factor ``Z'Z`` is block diagonal, so every quantity of the penalised least-squares problem
is built from per-cluster ``q x q`` blocks:

- ``L_j L_j' = Lambda' Z_j'Z_j Lambda + I`` (unrolled Cholesky, elementwise over the J clusters),
- ``R_ZX,j = L_j^{-1} Lambda' Z_j'X_j``, ``c_u,j = L_j^{-1} Lambda' Z_j'y_j``,
- ``R_X'R_X = X'X - sum_j R_ZX,j'R_ZX,j``, ``c_beta = R_X^{-T}(X'y - sum_j R_ZX,j'c_u,j)``,
- ``r^2 = y'y - |c_u|^2 - |c_beta|^2`` (penalised residual sum of squares),
- ML:   ``d(theta) = log|L|^2 + n [1 + log(2 pi r^2 / n)]``,
- REML: ``d_R(theta) = log|L|^2 + log|R_X|^2 + (n-p) [1 + log(2 pi r^2 / (n-p))]``.

Padding X with columns that have ``X'X = I`` and no cross-products (see
``design.pad_fixed``) changes nothing (``R_X`` gets unit diagonal entries, ``c_beta`` zeros), so
models with different p share one compiled program; the REML degrees of freedom use the true p.

The data enter only through :class:`LmerStats` (one imputation; vmapped over imputations by the
caller), so one evaluation costs O(J q^3 + p^3), independent of the number of rows.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from ...kernels.linalg import chol_list, solve_upper_t_list

# fixed-effect blocks up to this size are factorised elementwise (no LAPACK calls)
_UNROLL_P = 8

__all__ = ["LmerStats", "lambda_positions", "theta_to_lambda", "profiled", "deviance", "n_theta"]


class LmerStats(NamedTuple):
    """Sufficient statistics of one data set (leading axis m when batched).

    ``y`` is the response minus an offset ``X beta0`` (see ``design.build_stats``), which leaves
    the variance components unchanged and shifts the fixed effects by ``beta0``.
    """

    ztz: jax.Array  # (J, q, q)
    ztx: jax.Array  # (J, q, p)
    zty: jax.Array  # (J, q)
    xtx: jax.Array  # (p, p)
    xty: jax.Array  # (p,)
    yty: jax.Array  # ()
    n: jax.Array  # () number of rows
    n_fixed: jax.Array  # () number of fixed effects p (X may be padded with inert columns)


def n_theta(q: int) -> int:
    """Number of covariance parameters ``q (q + 1) / 2``."""
    return q * (q + 1) // 2


def lambda_positions(q: int) -> list:
    """``(row, column)`` of every entry of ``theta`` in ``Lambda``: the lower triangle, column by
    column (lme4's order)."""
    return [(i, j) for j in range(q) for i in range(j, q)]


def theta_to_lambda(theta: jax.Array, q: int) -> jax.Array:
    """Fill the lower triangle of ``Lambda`` column by column (lme4's order of ``theta``)."""
    rows, cols = (list(x) for x in zip(*lambda_positions(q)))
    return jnp.zeros((q, q), theta.dtype).at[jnp.array(rows), jnp.array(cols)].set(theta)


def _chol_unrolled(a: jax.Array, q: int) -> list:
    """Cholesky factors of a batch ``(..., q, q)`` as nested lists of ``(...,)`` arrays
    (:func:`~mitml_jax.kernels.linalg.chol_list` on the lower triangle's entries)."""
    return chol_list([[a[..., i, j] for j in range(i + 1)] for i in range(q)])


def _forward_unrolled(low: list, b: jax.Array, q: int) -> jax.Array:
    """Solve ``L x = b`` for a batch of lower-triangular ``L`` (lists) and ``b`` ``(..., q, k)``."""
    xs = []
    for i in range(q):
        s = b[..., i, :]
        for k in range(i):
            s = s - low[i][k][..., None] * xs[k]
        xs.append(s / low[i][i][..., None])
    return jnp.stack(xs, axis=-2)


def profiled(theta: jax.Array, stats: LmerStats, reml: bool) -> dict:
    """Everything lme4's ``PLS`` step gives at ``theta`` for one data set.

    Returns a dict with ``deviance`` (REML criterion when ``reml``), ``beta`` (fixed effects of the
    offset response), ``sigma2``, ``lx`` (lower Cholesky factor of ``R_X'R_X``), ``lam`` and
    ``r2``.
    """
    q = stats.ztz.shape[-1]
    p = stats.xtx.shape[-1]
    lam = theta_to_lambda(theta, q)
    eye = jnp.eye(q, dtype=theta.dtype)
    a = jnp.einsum("ba,jbc,cd->jad", lam, stats.ztz, lam) + eye
    low = _chol_unrolled(a, q)
    logdet_l = 2.0 * sum(jnp.sum(jnp.log(low[i][i])) for i in range(q))
    rhs = jnp.einsum("ba,jbk->jak", lam, jnp.concatenate([stats.ztx, stats.zty[..., None]], -1))
    sol = _forward_unrolled(low, rhs, q)  # (J, q, p + 1)
    rzx, cu = sol[..., :p], sol[..., p]
    rxtrx = stats.xtx - jnp.einsum("jqa,jqb->ab", rzx, rzx)
    rhs_x = stats.xty - jnp.einsum("jqa,jq->a", rzx, cu)
    if p <= _UNROLL_P:
        # elementwise: one LAPACK call per tiny matrix would dominate the run time
        low_x = _chol_unrolled(rxtrx, p)
        cb = _forward_unrolled(low_x, rhs_x[:, None], p)[:, 0]
        zero = jnp.zeros_like(rxtrx[0, 0])
        lx = jnp.stack([jnp.stack([low_x[i][j] if j <= i else zero for j in range(p)])
                        for i in range(p)])
        beta = jnp.stack(solve_upper_t_list(low_x, [cb[i] for i in range(p)]))
    else:
        lx = jnp.linalg.cholesky(rxtrx)
        cb = solve_triangular(lx, rhs_x, lower=True)
        beta = solve_triangular(lx.T, cb, lower=False)
    r2 = stats.yty - jnp.sum(cu**2) - jnp.sum(cb**2)
    n = stats.n
    # reml may be a traced boolean: ML and REML share one compiled program
    dof = jnp.where(reml, n - stats.n_fixed, n)
    logdet_x = 2.0 * jnp.sum(jnp.log(jnp.diag(lx)))
    dev = logdet_l + jnp.where(reml, logdet_x, 0.0) + dof * (1.0 + jnp.log(2.0 * jnp.pi * r2 / dof))
    return {"deviance": dev, "beta": beta, "sigma2": r2 / dof, "lx": lx, "lam": lam, "r2": r2}


def deviance(theta: jax.Array, stats: LmerStats, reml: bool) -> jax.Array:
    """Profiled deviance (``reml=False``) or REML criterion (``reml=True``) at ``theta``."""
    return profiled(theta, stats, reml)["deviance"]
