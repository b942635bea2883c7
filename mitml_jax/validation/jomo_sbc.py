"""Simulation-based calibration problem for jomo's kernel: categorical and level-2 targets.

Test model (one group; jomo's ``jomo2com`` sweep): level-1 targets ``y`` (continuous) and ``c``
(binary, one latent column ``l``), level-2 target ``w`` (continuous), ``X = (1, x)``, random
intercept ``Z = 1``, ``X2 = 1``; ``Psi`` joins the random intercepts of ``y`` and ``l`` and the
level-2 residual of ``w`` (dimension 3); ``Omega = [[o11, o12], [o12, 1]]``.

What jomo's sweep targets, and how the prior is made proper with its exact kernel:

* ``Psi^-1 ~ W(J + 3, (S + Dinv)^-1)`` is the conditional of the prior ``Psi ~ IW(3, Dinv)``.
* ``Omega`` (categorical case) gets element-wise Metropolis steps on the residual likelihood with
  a flat prior on ``(o11, o12)`` over the positive-definite region; beta, beta2 are flat.
* One extra cluster (``Z = 0``, its random effects integrate out) holds pseudo-data:
  ``w = 0`` with ``X2 = 1 / tau2`` (so ``beta2 | Psi ~ N(0, tau2^2 Psi_ww)``); two level-1 rows
  ``X = I / tau``, ``y = 0``, ``c`` missing (``beta_y | o11 ~ N(0, tau^2 o11 I)``); ``k`` rows
  ``X = 0``, ``y = e_i``, ``c`` missing. With the flat prior the latter make
  ``o11 ~ InvGamma((k - 3) / 2, sum(e^2) / 2)`` and ``o12 | o11 ~ U(-sqrt(o11), sqrt(o11))``.
* Latents of observed categories are drawn inside the box ``(-3, 4)``, missing ones are not:
  the stationary law is ``prior x prod_i N(l_i) 1{l_i in box and region of c_i}``, whose marginal
  makes even the flat ``beta_l`` proper (``beta_l`` is drawn from a wide uniform envelope). It
  is simulated exactly by rejection: draw everything from the untruncated model and keep the
  data set only when every latent of a row with an observed category lies in the box.

The missingness pattern (MCAR) is fixed across replications so that every replication has the
same array shapes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..kernels import jomo
from ..kernels.jomo_data import JomoArrays, JomoConfig, build_jomo_arrays
from .sbc import SBCResult, sbc_ranks, upper_triangle

__all__ = ["JomoSBCProblem", "make_jomo_problem", "run_jomo_sbc", "level2_loglik"]

BOX = (-3.0, 4.0)


class JomoSBCProblem(NamedTuple):
    arrays: JomoArrays  # y_obs, codes, y2_obs with a leading replication axis
    arrays_axes: JomoArrays
    config: JomoConfig
    prior: jomo.JomoPrior
    truth: np.ndarray
    names: tuple
    cells: tuple  # (level-1 cells (cluster, slot, col), level-2 cluster, clusters of the level-2 loglik)
    acceptance: float
    envelope_margin: np.ndarray  # max |beta_l| accepted / envelope half-width, per coefficient


def _simulate_batch(rng, n, x, clus, n_clusters, pseudo, c_obs, tau, tau2, dinv, k_rows, s_scale, env):
    """Draw ``n`` proposals of (parameters, data); returns arrays and the acceptance mask."""
    from scipy import stats

    n_rows = x.shape[0]
    dim = dinv.shape[0]  # 3 with the level-2 target, 2 without
    psi = stats.invwishart(df=dim, scale=dinv).rvs(size=n, random_state=rng).reshape(n, dim, dim)
    o11 = stats.invgamma((k_rows - 3) / 2.0, scale=s_scale / 2.0).rvs(size=n, random_state=rng)
    o12 = rng.uniform(-1.0, 1.0, n) * np.sqrt(o11)
    omega = np.stack([np.stack([o11, o12], -1), np.stack([o12, np.ones(n)], -1)], -2)
    beta = np.empty((n, 2, 2))
    beta[:, :, 0] = tau * np.sqrt(o11)[:, None] * rng.normal(size=(n, 2))
    beta[:, :, 1] = rng.uniform(-1.0, 1.0, (n, 2)) * env[None] + np.array([0.5, 0.0])
    beta2 = tau2 * np.sqrt(psi[:, -1, -1]) * rng.normal(size=n) * (dim == 3)
    u = np.einsum("iab,ijb->ija", np.linalg.cholesky(psi), rng.normal(size=(n, n_clusters, dim)))
    e = np.einsum("iab,inb->ina", np.linalg.cholesky(omega), rng.normal(size=(n, n_rows, 2)))
    z = (~pseudo).astype(float)  # random intercept, Z = 0 in the pseudo cluster
    mean = np.einsum("np,ipr->inr", x, beta) + z[None, :, None] * u[:, clus, :2]
    y = mean + e
    w = beta2[:, None] + u[:, :, -1]  # level-2 value of every cluster (X2 = 1); unused without level 2
    lat = y[:, :, 1]
    inside = (lat > BOX[0]) & (lat < BOX[1])
    accept = np.all(inside | ~c_obs[None], axis=1)
    return dict(psi=psi, omega=omega, beta=beta, beta2=beta2, y=y, w=w, u=u), accept


def make_jomo_problem(n_rep: int, seed: int = 0, cluster_sizes=(4, 5, 6, 7, 8, 9, 10, 4, 5, 6, 7, 8),
                      miss_prob: float = 0.2, tau: float = 2.0, tau2: float = 2.0, k_rows: int = 9,
                      dinv_scale: float = 0.5, env=(6.0, 3.0), batch: int = 20000,
                      level2: bool = True) -> JomoSBCProblem:
    """Simulate ``n_rep`` accepted replications of the jomo test model (module docstring).

    ``level2=False`` drops the level-2 target ``w`` (jomo's ``jomo1ran`` sweep, Psi 2 x 2): a
    control that separates level-2 effects from the rest of the sweep.
    """
    rng = np.random.default_rng(seed)
    n_real = int(np.sum(cluster_sizes))
    n_clusters = len(cluster_sizes) + 1
    clus = np.concatenate([np.full(s, j) for j, s in enumerate(cluster_sizes)] + [np.full(2 + k_rows, n_clusters - 1)])
    pseudo = clus == n_clusters - 1
    x = np.column_stack([np.ones(n_real), rng.normal(size=n_real)])
    x = np.vstack([x, np.eye(2) / tau, np.zeros((k_rows, 2))])
    e0 = rng.normal(size=k_rows)
    s_scale = float(np.sum(e0**2))
    y0_pseudo = np.concatenate([np.zeros(2), e0])
    miss_y = (rng.uniform(size=len(clus)) < miss_prob) & ~pseudo
    miss_c = (rng.uniform(size=len(clus)) < miss_prob) | pseudo
    miss_w = rng.uniform(size=n_clusters) < miss_prob
    miss_w[-1] = False
    miss_y[np.flatnonzero(~pseudo)[:2]] = True  # a row with both targets missing
    miss_c[np.flatnonzero(~pseudo)[:2]] = True
    c_obs = ~miss_c
    env = np.asarray(env, float)
    dinv = dinv_scale * np.eye(3 if level2 else 2)

    kept, n_prop = [], 0
    while sum(len(k["beta2"]) for k in kept) < n_rep:
        sims, accept = _simulate_batch(rng, batch, x, clus, n_clusters, pseudo, c_obs, tau, tau2, dinv, k_rows,
                                       s_scale, env)
        n_prop += batch
        kept.append({k: v[accept] for k, v in sims.items()})
    sim = {k: np.concatenate([b[k] for b in kept])[:n_rep] for k in kept[0]}
    margin = np.abs(sim["beta"][:, :, 1] - np.array([0.5, 0.0])).max(axis=0) / env
    acceptance = sum(len(k["beta2"]) for k in kept) / n_prop
    # pseudo cluster: fixed values
    sim["y"][:, pseudo, 0] = y0_pseudo
    sim["w"][:, -1] = 0.0

    codes_all = np.where(sim["y"][:, :, 1] > 0, 0, 1)
    x2 = np.where(pseudo, 1.0 / tau2, 1.0)[:, None]

    y_con0 = np.where(miss_y, np.nan, sim["y"][0, :, 0])[:, None]
    w_rows0 = np.where(miss_w[clus], np.nan, sim["w"][0, clus])[:, None]
    arrays0, config, layout = build_jomo_arrays(
        y_con0, np.where(miss_c, -1, codes_all[0])[:, None], (2,), x, z=(~pseudo).astype(float)[:, None],
        cluster=clus, y2_con=w_rows0 if level2 else None, x2=x2 if level2 else None,
    )
    # every replication: the same layout, its own observed values (scattered like build_jomo_arrays)
    rc, rs = layout.row_cluster, layout.row_slot
    y_obs = np.zeros((n_rep,) + arrays0.y_obs.shape)
    y_obs[:, rc, rs, 0] = np.where(miss_y, 0.0, sim["y"][:, :, 0])
    codes = np.full((n_rep,) + arrays0.codes.shape, -1, np.int32)
    codes[:, rc, rs, 0] = np.where(miss_c, -1, codes_all)
    y2_obs = np.where(miss_w[None, :, None], 0.0, sim["w"][:, :, None])
    same = np.array_equal(y_obs[0], np.asarray(arrays0.y_obs)) and np.array_equal(codes[0], np.asarray(arrays0.codes))
    if not same or (level2 and not np.array_equal(y2_obs[0], np.asarray(arrays0.y2_obs))):
        raise RuntimeError("replication layout differs from build_jomo_arrays' layout")
    if not level2:
        y2_obs = np.broadcast_to(np.asarray(arrays0.y2_obs), (n_rep,) + arrays0.y2_obs.shape)
    stacked = arrays0._replace(y_obs=jnp.asarray(y_obs), codes=jnp.asarray(codes), y2_obs=jnp.asarray(y2_obs))
    axes = jax.tree_util.tree_map(lambda _: None, arrays0)._replace(y_obs=0, codes=0, y2_obs=0)

    # checked imputed cells: first missing y, first missing-category latent (real rows), first missing w
    real = np.flatnonzero(~pseudo)
    row_y = real[np.flatnonzero(miss_y[real] & ~miss_c[real])[0]]
    row_c = real[np.flatnonzero(miss_c[real] & ~miss_y[real])[0]]
    row_b = real[np.flatnonzero(miss_c[real] & miss_y[real])[0]]
    clus_w = int(np.flatnonzero(miss_w)[0])
    cells = [(int(layout.row_cluster[r]), int(layout.row_slot[r]), col)
             for r, col in ((row_y, 0), (row_c, 1), (row_b, 0))]
    use_l2 = ~miss_w
    use_l2[-1] = False  # the pseudo cluster's random effects are not simulated
    cols_truth = [
        sim["beta"].reshape(n_rep, -1), sim["beta2"][:, None],
        upper_triangle(sim["psi"]), sim["omega"][:, 0, 0], sim["omega"][:, 0, 1],
        sim["y"][:, row_y, 0], sim["y"][:, row_c, 1], sim["y"][:, row_b, 0], sim["w"][:, clus_w],
        level2_loglik(sim["w"], sim["beta2"], sim["u"][:, :, :2], sim["psi"], use_l2) if level2 else None,
    ]
    rows, cols = np.triu_indices(3 if level2 else 2)
    names = (
        ["beta[1,y]", "beta[1,l]", "beta[x,y]", "beta[x,l]", "beta2[1,w]"]
        + [f"psi[{'ylw'[i]},{'ylw'[j]}]" for i, j in zip(rows, cols)]
        + ["omega[y,y]", "omega[y,l]", "ymis[y]", "ymis[latent]", "ymis[y, row all missing]", "wmis[w]", "loglik[w | u1]"]
    )
    if not level2:
        cols_truth = [c for c in cols_truth if c is not None]
        del cols_truth[1], cols_truth[-1]  # beta2, missing w
        names = [n for n in names if not ("w" in n and n != "ymis[y, row all missing]")]
    truth = np.column_stack(cols_truth)
    prior = jomo.JomoPrior(jnp.eye(2), jnp.asarray(dinv), jnp.asarray(2.0), jnp.asarray(2.0))
    return JomoSBCProblem(stacked, axes, config, prior, truth, tuple(names), (tuple(cells), clus_w, tuple(use_l2), level2),
                          acceptance, margin)


def level2_loglik(w, beta2, u1, psi, use):
    """Data-dependent test quantity: ``sum_j log N(w_j - beta2 ; c u1_j, s^2)`` over clusters ``use``
    with ``c = Psi_w1 Psi_11^-1``, ``s^2 = Psi_ww - c Psi_1w`` (the level-2 values given the level-1
    random effects). It depends jointly on beta2, Psi and u1, where jomo's beta2 step (GLS with the
    marginal ``Psi_ww``, ignoring u1) is not a conditional of the joint posterior. Works on NumPy
    (leading replication axis) and JAX arrays: w (..., J), beta2 (...), u1 (..., J, 2),
    psi (..., 3, 3), use (J,) bool.
    """
    xp = jnp if isinstance(w, jax.Array) else np
    p11, p1w, pww = psi[..., :2, :2], psi[..., :2, 2], psi[..., 2, 2]
    c = xp.linalg.solve(p11, p1w[..., None])[..., 0]  # (..., 2)
    s2 = pww - xp.sum(c * p1w, axis=-1)
    resid = w - beta2[..., None] - xp.sum(u1 * c[..., None, :], axis=-1)
    ll = -0.5 * xp.log(2 * np.pi * s2[..., None]) - 0.5 * resid**2 / s2[..., None]
    return xp.sum(xp.where(use, ll, 0.0), axis=-1)


def _extractor(cells, clus_w, use_l2, level2=True):
    cl = np.array([c[0] for c in cells])
    sl = np.array([c[1] for c in cells])
    co = np.array([c[2] for c in cells])
    use = jnp.asarray(use_l2)

    def extract(state, arrays):
        if not level2:
            return jnp.concatenate([state.beta.reshape(-1), upper_triangle(state.psi), state.omega[0, :1],
                                    state.omega[0, 1:2], state.y[cl, sl, co]])
        ll2 = level2_loglik(arrays.y2_obs[:, 0], state.beta2[0, 0], state.u1, state.psi, use)
        return jnp.concatenate([
            state.beta.reshape(-1), state.beta2.reshape(-1), upper_triangle(state.psi),
            state.omega[0, :1], state.omega[0, 1:2], state.y[cl, sl, co], state.y2[clus_w, :1], ll2[None],
        ])

    return extract


_CACHE: dict = {}


def run_jomo_sbc(problem: JomoSBCProblem, *, seed: int = 1, n_burn: int = 200, n_draws: int = 99, thin: int = 5,
                 n_bins: int = 20, kernel=None) -> SBCResult:
    """Run jomo's kernel (jomo's own starting values) on every replication and rank."""
    key = (problem.config, problem.cells)
    if key not in _CACHE:
        _CACHE[key] = (jomo.build_kernel(problem.config), _extractor(*problem.cells))
    default_kernel, extract = _CACHE[key]
    kernel = default_kernel if kernel is None else kernel
    init = jax.jit(jax.vmap(lambda a, p: jomo.init(a, problem.config, p), in_axes=(problem.arrays_axes, None)))
    state0 = init(problem.arrays, problem.prior)
    n_rep = problem.truth.shape[0]
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n_rep, dtype=jnp.uint32))
    return sbc_ranks(kernel, state0, problem.arrays, problem.prior, problem.truth, keys, extract,
                     arrays_axes=problem.arrays_axes, n_burn=n_burn, n_draws=n_draws, thin=thin,
                     names=problem.names, n_bins=n_bins)
