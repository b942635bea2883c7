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
from .jomo_linalg import (chol, draw_missing_rows, inverse_wishart_from_noise, logdet_from_chol,
                          pattern_matrices, spd_inverse, sum_over_rows, wishart_from_noise,
                          wishart_noise_size)
from .mh_covariance import mh_covariance_from_noise

__all__ = [
    "draw_beta_clusterwise",
    "log_f_df",
    "update_df",
    "update_df_from_noise",
    "update_cluster_covariances",
    "conditional_draw_clusterwise",
]

_DX = 0.001
_PRECISION = 0.001
_NEWTON_STEPS = 50


def draw_beta_clusterwise(normals, x, target, omega_inv):
    """GLS draw of ``beta`` (p, r) with cluster-specific level-1 precisions (flat prior).

    Precision ``sum_j Omega_j^-1 (x) X_j'X_j`` (target outer), mean from ``sum_j X_j' T_j Omega_j^-1``;
    ``normals`` (r * p,) standard normals.
    """
    n_clusters, _, p = x.shape
    r = target.shape[-1]
    xtx = sum_over_rows(x[..., :, None] * x[..., None, :])
    # sums over clusters as reductions, not einsum's dots (see kernel_call)
    prec = (omega_inv[:, :, None, :, None] * xtx[:, None, :, None, :]).sum(axis=0)
    prec = prec.reshape(r * p, r * p)
    t_omega = (target[..., :, None] * omega_inv[:, None, :, :]).sum(axis=-2)  # (J, L, r)
    rhs = (t_omega[..., :, None] * x[..., None, :]).sum(axis=(0, 1)).reshape(r * p)
    factor = chol(la.symmetrize(prec))
    mean = la.cho_solve(factor, rhs)
    return (mean + la.solve_upper_t(factor, normals)).reshape(r, p).T


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
    """:func:`update_df_from_noise` with its noise drawn from ``key``."""
    key_n, key_u = jax.random.split(key)
    dtype = jnp.result_type(float)
    uniforms = jax.random.uniform(key_u, (3,), dtype=dtype, minval=jnp.finfo(dtype).tiny)
    return update_df_from_noise(jax.random.normal(key_n, (), dtype=dtype), uniforms, a, eta, dim,
                                n_clusters, sum_logdet_omega, logdet_h)


def update_df_from_noise(normal, uniforms, a, eta, dim: int, n_clusters: int, sum_logdet_omega,
                         logdet_h):
    """jomo's Metropolis-Hastings step for the df ``a``; returns ``(a, accepted)``.

    ``normal`` (scalar) and ``uniforms`` (3,): the t(4) proposal is
    ``normal / sqrt(chi2_4 / 4)`` with ``chi2_4 = -2 log(u_0 u_1)``; ``u_2`` decides acceptance.
    """
    def f(u):  # called on vectors of points where it can (each call expands its gammaln terms)
        return log_f_df(u, eta, dim, n_clusters, sum_logdet_omega, logdet_h)

    def around(x, more=()):
        """f at x - dx, x, x + dx (and at ``more``): the three values and f(more)."""
        values = f(jnp.stack([x - _DX, x, x + _DX, *more]))
        return values[0], values[1], values[2], values[3:]

    def d2(lo, mid, hi):
        return (hi - 2 * mid + lo) / (_DX * _DX)

    u0 = jnp.log(a + dim)

    def newton(carry):
        x, done, i = carry
        lo, mid, hi, _ = around(x)
        res = x - ((hi - lo) / (2 * _DX)) / d2(lo, mid, hi)
        conv = jnp.abs((res - x) / res) < _PRECISION
        return jnp.where(done, x, res), done | conv, i + 1

    def going(carry):
        return (~carry[1]) & (carry[2] < _NEWTON_STEPS)

    u_m, done, _ = jax.lax.while_loop(going, newton, (u0, jnp.asarray(False), 0))
    u_m = jnp.where(done & jnp.isfinite(u_m), u_m, u0)
    t4 = normal / jnp.sqrt(-0.5 * (jnp.log(uniforms[0]) + jnp.log(uniforms[1])))
    # f(u_prop) needs lam, which needs d2(u_m): u_prop = u_m + lam t4 is evaluated after it
    lo, mid, hi, (f_u0,) = around(u_m, (u0,))
    lam = jnp.sqrt(-5.0 / (4.0 * d2(lo, mid, hi)))
    u_prop = u_m + lam * t4

    def log_h(u):  # jomo: pow(1 + z^2/4, -5/2) with integer -5/2 == -2
        return -2.0 * jnp.log1p((u - u_m) ** 2 / (4.0 * lam * lam))

    log_ratio = f(u_prop) - f_u0 + log_h(u0) - log_h(u_prop)
    accept = jnp.log(uniforms[2]) < log_ratio
    u_new = jnp.where(accept, u_prop, u0)
    a_new = jnp.exp(u_new) - dim
    ok = jnp.isfinite(a_new) & (a_new >= dim)
    return jnp.where(ok, a_new, a), (accept & ok).astype(jnp.int32)


def update_cluster_covariances(noise, omega, a, scale, resid, cluster_size, prior, config,
                               elements, omega_inv=None):
    """One hr update of ``A`` (``scale``), ``a`` and all ``Omega_j``; ``noise`` a ``NoiseStream``.

    ``omega_inv`` (J, r, r), when given, is the inverse of ``omega`` (saves recomputing it).
    Returns ``(omega, a, scale, n_accepted_omega, accepted_a)``.
    """
    n_clusters, _, r = resid.shape
    omega_chol = chol(omega)
    if omega_inv is None:
        omega_inv = la.symmetrize(spd_inverse(omega))
    h = la.symmetrize(omega_inv.sum(axis=0) + spd_inverse(prior.binv))
    gamma_star = la.symmetrize(spd_inverse(h))
    # jomo passes the df to an ``int`` parameter: truncated
    w_n, w_u = wishart_noise_size(r)
    scale = wishart_from_noise(jnp.floor(n_clusters * a + r + 1.0), gamma_star,
                               noise.normals((w_n,)), noise.uniforms((w_u,)))
    sum_logdet = jnp.sum(logdet_from_chol(omega_chol))
    logdet_h = logdet_from_chol(chol(h))
    a, accepted_a = update_df_from_noise(noise.normals(()), noise.uniforms((3,)), a, prior.a, r,
                                         n_clusters, sum_logdet, logdet_h)
    scatter = sum_over_rows(resid[..., :, None] * resid[..., None, :]) + scale[None]
    if config.cat_blocks:
        # the IW(n_j + a, S_j + A) density: nu = a + n_j + r + 1
        omega, accepted = mh_covariance_from_noise(
            omega, scatter, cluster_size, elements,
            noise.uniforms((n_clusters, len(elements), 3)), config.n_tries,
            nu=a + cluster_size + r + 1.0, cov_inv=omega_inv)
        accepted = accepted.sum()
    else:
        omega = jax.vmap(inverse_wishart_from_noise)(
            jnp.floor(cluster_size + a), scatter, noise.normals((n_clusters, w_n)),
            noise.uniforms((n_clusters, w_u)))
        accepted = jnp.zeros((), jnp.int32)
    return omega, a, scale, accepted, accepted_a


def conditional_draw_clusterwise(normals, values, means, omega, cluster_of_row, patterns, pattern_id,
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
        return draw_missing_rows(normals, values, means, prec_rows, minv[pattern_id, 0],
                                 chol[pattern_id, 0], miss)
    prec, minv, chol = jax.vmap(pattern_matrices, in_axes=(0, None))(omega, patterns)
    return draw_missing_rows(normals, values, means, prec[cluster_of_row],
                             minv[cluster_of_row, pattern_id], chol[cluster_of_row, pattern_id],
                             miss)
