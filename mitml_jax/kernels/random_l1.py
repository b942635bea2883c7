"""Cluster-specific level-1 covariance matrices: jomo's ``hr`` samplers (``random_L1``).

Model (``jomo1ranhrC.c``, ``jomo2hrC.c``, cran/jomo 2.7-6, ``meth = "random"``):
``Omega_j ~ IW(a, A)`` per cluster, ``A ~ W(r + 1, Binv^-1)``, ``a`` with a chi-square(``eta``) prior
(``eta`` = mitml's ``prior$a``, default ``r``). Per sweep:

1. ``A ~ W(J a + r + 1, (sum_j Omega_j^-1 + Binv^-1)^-1)`` (with the Omegas of the sweep start);
2. ``a`` by Metropolis-Hastings on ``u = log(a + r)``: a t(4) proposal centred at the
   Newton-Raphson mode ``u_m`` of ``log f(u)`` (numerical derivatives, step 0.001) with scale
   ``sqrt(-5 / (4 f''(u_m)))``; a proposal giving ``a < r`` (or NaN) keeps ``a``. jomo's proposal
   density in the Hastings ratio is ``(1 + z^2/4)^(-2)`` (C integer division turns its ``-5/2`` into
   ``-2``); kept here so the chain is jomo's;
3. continuous targets: ``Omega_j ~ IW(n_j + a, S_j + A)``; with categorical targets the
   element-wise Metropolis update of :mod:`.mh_covariance` per cluster, on the
   ``IW(n_j + a, S_j + A)`` density, proposal sd scaled by ``n_j``.

jomo imputes missing values with, for each missingness pattern, the covariance matrix of the
cluster of the *first row* showing that pattern (the pattern matrices are computed once, outside
the cluster loop). ``jomo_compat=True`` (the default) reproduces that; ``False`` uses each row's
own cluster matrix (the model's actual full conditional).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, multigammaln

from . import linalg as la
from .jomo_linalg import (chol, chol_solve, draw_missing_rows, inverse_wishart,
                          logdet_from_chol, pattern_matrices, spd_inverse, wishart)
from .mh_covariance import mh_covariance_update

__all__ = [
    "draw_beta_clusterwise",
    "log_f_df",
    "update_df",
    "update_cluster_covariances",
    "conditional_draw_clusterwise",
]

_DX = 0.001
_PRECISION = 0.001
_NEWTON_STEPS = 50


def draw_beta_clusterwise(key, x, target, omega_inv):
    """GLS draw of ``beta`` (p, r) with cluster-specific level-1 precisions (flat prior).

    Precision ``sum_j Omega_j^-1 (x) X_j'X_j`` (target outer), mean from ``sum_j X_j' T_j Omega_j^-1``.
    """
    n_clusters, _, p = x.shape
    r = target.shape[-1]
    xtx = jnp.einsum("jlp,jlk->jpk", x, x)
    prec = jnp.einsum("jts,jpk->tpsk", omega_inv, xtx).reshape(r * p, r * p)
    rhs = jnp.einsum("jlp,jlr,jrs->sp", x, target, omega_inv).reshape(r * p)
    factor = chol(la.symmetrize(prec))
    mean = la.cho_solve(factor, rhs)
    z = jax.random.normal(key, mean.shape, dtype=mean.dtype)
    return (mean + la.solve_upper_t(factor, z)).reshape(r, p).T


def log_f_df(u, eta, dim: int, n_clusters: int, sum_logdet_omega, logdet_h):
    """jomo's ``log_f_u``: log posterior of ``u = log(a + dim)`` with the scale integrated out."""
    a = jnp.exp(u) - dim
    gamma = dim + 1.0
    half = eta / 2.0
    log_prior = jnp.where(
        a > 0, (half - 1.0) * jnp.log(jnp.where(a > 0, a, 1.0)) - a / 2.0 - half * jnp.log(2.0)
        - gammaln(half), -jnp.inf)
    res = log_prior - n_clusters * multigammaln(a / 2.0, dim)
    res = res - (a + dim + 1.0) * sum_logdet_omega / 2.0
    res = res - (a * n_clusters + gamma) * logdet_h / 2.0
    res = res + multigammaln((a * n_clusters + gamma) / 2.0, dim)
    return res + u


def update_df(key, a, eta, dim: int, n_clusters: int, sum_logdet_omega, logdet_h):
    """jomo's Metropolis-Hastings step for the df ``a``; returns ``(a, accepted)``."""

    def f(u):
        return log_f_df(u, eta, dim, n_clusters, sum_logdet_omega, logdet_h)

    def d1(u):
        return (f(u + _DX) - f(u - _DX)) / (2 * _DX)

    def d2(u):
        return (f(u + _DX) - 2 * f(u) + f(u - _DX)) / (_DX * _DX)

    u0 = jnp.log(a + dim)

    def newton(carry):
        x, done, i = carry
        res = x - d1(x) / d2(x)
        conv = jnp.abs((res - x) / res) < _PRECISION
        return jnp.where(done, x, res), done | conv, i + 1

    def going(carry):
        return (~carry[1]) & (carry[2] < _NEWTON_STEPS)

    u_m, done, _ = jax.lax.while_loop(going, newton, (u0, jnp.asarray(False), 0))
    u_m = jnp.where(done & jnp.isfinite(u_m), u_m, u0)
    lam = jnp.sqrt(-5.0 / (4.0 * d2(u_m)))
    key_t, key_u = jax.random.split(key)
    u_prop = u_m + lam * jax.random.t(key_t, 4.0, dtype=jnp.result_type(float))

    def log_h(u):  # jomo: pow(1 + z^2/4, -5/2) with integer -5/2 == -2
        return -2.0 * jnp.log1p((u - u_m) ** 2 / (4.0 * lam * lam))

    log_ratio = f(u_prop) - f(u0) + log_h(u0) - log_h(u_prop)
    accept = jnp.log(jax.random.uniform(key_u)) < log_ratio
    u_new = jnp.where(accept, u_prop, u0)
    a_new = jnp.exp(u_new) - dim
    ok = jnp.isfinite(a_new) & (a_new >= dim)
    return jnp.where(ok, a_new, a), (accept & ok).astype(jnp.int32)


def update_cluster_covariances(key, omega, a, scale, resid, cluster_size, prior, config,
                               elements):
    """One hr update of ``A`` (``scale``), ``a`` and all ``Omega_j``.

    Returns ``(omega, a, scale, n_accepted_omega, accepted_a)``.
    """
    n_clusters, _, r = resid.shape
    key_scale, key_df, key_omega = jax.random.split(key, 3)
    omega_chol = chol(omega)
    omega_inv = la.symmetrize(spd_inverse(omega))
    h = la.symmetrize(omega_inv.sum(axis=0) + spd_inverse(prior.binv))
    gamma_star = la.symmetrize(spd_inverse(h))
    # jomo passes the df to an ``int`` parameter: truncated
    scale = wishart(key_scale, jnp.floor(n_clusters * a + r + 1.0), gamma_star)
    sum_logdet = jnp.sum(logdet_from_chol(omega_chol))
    logdet_h = logdet_from_chol(chol(h))
    a, accepted_a = update_df(key_df, a, prior.a, r, n_clusters, sum_logdet, logdet_h)
    scatter = jnp.einsum("jlr,jls->jrs", resid, resid) + scale[None]
    keys = jax.random.split(key_omega, n_clusters)
    if config.cat_blocks:
        def one(k, om, sc, n_j):
            def log_target(c, factor):
                logdet = logdet_from_chol(factor)
                trace = jnp.trace(chol_solve(factor, sc))
                return -0.5 * trace - 0.5 * (a + n_j + r + 1.0) * logdet
            return mh_covariance_update(k, om, sc, n_j, elements, config.n_tries, log_target)

        omega, accepted = jax.vmap(one)(keys, omega, scatter, cluster_size)
        accepted = accepted.sum()
    else:
        omega = jax.vmap(inverse_wishart)(keys, jnp.floor(cluster_size + a), scatter)
        accepted = jnp.zeros((), jnp.int32)
    return omega, a, scale, accepted, accepted_a


def conditional_draw_clusterwise(key, values, means, omega, cluster_of_row, patterns, pattern_id,
                                 pattern_cluster=None):
    """Missing level-1 values under cluster-specific covariances.

    With ``pattern_cluster`` (P,) given, pattern ``k`` uses ``omega[pattern_cluster[k]]`` for every
    row (jomo's behaviour); otherwise each row uses its own cluster's matrix.
    """
    miss = patterns[pattern_id]
    if pattern_cluster is not None:
        prec, minv, chol = jax.vmap(pattern_matrices, in_axes=(0, 0))(
            omega[pattern_cluster], patterns[:, None, :])
        prec_rows = prec[pattern_id]
        return draw_missing_rows(key, values, means, prec_rows, minv[pattern_id, 0],
                                 chol[pattern_id, 0], miss)
    prec, minv, chol = jax.vmap(pattern_matrices, in_axes=(0, None))(omega, patterns)
    return draw_missing_rows(key, values, means, prec[cluster_of_row],
                             minv[cluster_of_row, pattern_id], chol[cluster_of_row, pattern_id],
                             miss)
