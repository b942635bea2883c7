"""Simulation-based calibration problem for pan's Gibbs kernel (random slopes, groups).

pan's beta prior is flat, so the test model gets a proper one with pan's exact kernel: every
group gets one extra cluster of ``p`` fully observed pseudo-rows with ``X0 = I_p / tau``,
``y0 = 0`` and ``Z0 = 0``. Under pan's prior (beta flat, ``Sigma ~ IW(a, Binv)``) these rows
add the factor ``|Sigma|^{-p/2} exp(-tr(Sigma^-1 beta^T X0^T X0 beta) / 2)``, which is the
matrix-normal density ``beta | Sigma ~ MN(0, tau^2 I_p, Sigma)``; they count in pan's ``n*``, so
Sigma's conditional ``IW(a + n* - p, ...)`` is ``IW(a + n_real, ...)`` as the proper model
requires. The pseudo cluster's random effect has ``Z = 0``: its conditional is its prior
``N(0, Psi)`` and it integrates out of the joint posterior.

Joint prior simulated here (on the host, with SciPy/NumPy, independent of the JAX code), per
group: ``Sigma ~ IW(a, Binv)``, ``Psi ~ IW(c, Dinv)`` (``X^-1 ~ Wishart(nu, S^-1)``),
``beta | Sigma ~ MN(0, tau^2 I, Sigma)``, ``vec(b_j) ~ N(0, Psi)``, ``y = X beta + Z b + e``;
a fixed MCAR pattern (drawn once, including rows with every target missing) hides cells.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..arrays.build import build_arrays
from ..kernels import pan
from ..kernels.state import PanPrior
from .sbc import SBCResult, sbc_ranks, upper_triangle

__all__ = ["PanSBCProblem", "make_pan_problem", "run_pan_sbc"]


class PanSBCProblem(NamedTuple):
    """Simulated replications of the pan test model, ready for :func:`sbc_ranks`."""

    pan_arrays: pan.PanArrays  # data.y has a leading replication axis; the rest is shared
    arrays_axes: pan.PanArrays
    prior: PanPrior
    truth: np.ndarray  # (R, K)
    names: tuple
    slots: np.ndarray  # (S, 2) (group, slot) of the checked missing cells
    n_real_rows: int


def _design(rng, n_groups, cluster_sizes, p, tau, x_scale=1.0):
    """Fixed design: intercept + one covariate, random intercept and slope, pseudo cluster last."""
    rows_x, rows_z, clus, grp, pseudo = [], [], [], [], []
    cid = 0
    for g in range(n_groups):
        for size in cluster_sizes:
            xc = rng.normal(0.0, x_scale, size)
            x = np.column_stack([np.ones(size), xc] + [rng.normal(size=size) for _ in range(p - 2)])
            rows_x.append(x)
            rows_z.append(x[:, :2])
            clus += [cid] * size
            grp += [g] * size
            pseudo += [False] * size
            cid += 1
        rows_x.append(np.eye(p) / tau)
        rows_z.append(np.zeros((p, 2)))
        clus += [cid] * p
        grp += [g] * p
        pseudo += [True] * p
        cid += 1
    return np.vstack(rows_x), np.vstack(rows_z), np.array(clus), np.array(grp), np.array(pseudo)


def _simulate(rng, n_rep, x, z, clus, grp, pseudo, r, prior_np, tau):
    from scipy import stats

    n, p = x.shape
    q = z.shape[1]
    n_groups = int(grp.max()) + 1
    y = np.zeros((n_rep, n, r))
    beta = np.zeros((n_rep, n_groups, p, r))
    sigma = np.zeros((n_rep, n_groups, r, r))
    psi = np.zeros((n_rep, n_groups, r * q, r * q))
    for g in range(n_groups):
        sig = stats.invwishart(df=prior_np["a"], scale=prior_np["Binv"]).rvs(size=n_rep, random_state=rng)
        ps = stats.invwishart(df=prior_np["c"], scale=prior_np["Dinv"]).rvs(size=n_rep, random_state=rng)
        sig, ps = sig.reshape(n_rep, r, r), ps.reshape(n_rep, r * q, r * q)
        sig_chol, ps_chol = np.linalg.cholesky(sig), np.linalg.cholesky(ps)
        b = tau * np.einsum("ipk,itk->ipt", rng.normal(size=(n_rep, p, r)), sig_chol)
        beta[:, g], sigma[:, g], psi[:, g] = b, sig, ps
        rows = np.flatnonzero((grp == g) & ~pseudo)
        clusters = np.unique(clus[rows])
        # vec(b_j) index target * q + k  ->  (q, r) matrix b_j[k, t]
        u = np.einsum("ijab,ijb->ija", ps_chol[:, None], rng.normal(size=(n_rep, len(clusters), r * q)))
        u = u.reshape(n_rep, len(clusters), r, q).transpose(0, 1, 3, 2)
        cl_index = np.searchsorted(clusters, clus[rows])
        zb = np.einsum("nk,inkt->int", z[rows], u[:, cl_index])
        e = np.einsum("itk,ink->int", sig_chol, rng.normal(size=(n_rep, len(rows), r)))
        y[:, rows] = np.einsum("np,ipt->int", x[rows], b) + zb + e
    return y, beta, sigma, psi


def make_pan_problem(
    n_rep: int,
    seed: int = 0,
    n_groups: int = 2,
    cluster_sizes=(3, 4, 5, 6, 3, 4, 5, 6),
    r: int = 2,
    p: int = 2,
    tau: float = 2.0,
    miss_prob: float = 0.25,
    n_slots: int = 3,
    prior_np=None,
) -> PanSBCProblem:
    """Simulate ``n_rep`` replications of the pan test model (see the module docstring).

    The model has ``r`` targets, fixed effects (intercept, x, and ``p - 2`` more covariates),
    a random intercept and slope of x (q = 2), ``n_groups`` groups with the clusters of
    ``cluster_sizes`` each. The MCAR pattern is fixed across replications and always includes
    a row with every target missing. ``n_slots`` missing cells per group are checked.
    """
    rng = np.random.default_rng(seed)
    q = 2
    if prior_np is None:
        prior_np = {"a": r + 3.0, "Binv": 2.0 * np.eye(r), "c": r * q + 3.0, "Dinv": np.eye(r * q)}
    x, z, clus, grp, pseudo = _design(rng, n_groups, cluster_sizes, p, tau)
    n = x.shape[0]
    miss = (rng.uniform(size=(n, r)) < miss_prob) & ~pseudo[:, None]
    for g in range(n_groups):  # one row per group with all targets missing (outside pan's n*)
        miss[np.flatnonzero((grp == g) & ~pseudo)[0]] = True
    y, beta, sigma, psi = _simulate(rng, n_rep, x, z, clus, grp, pseudo, r, prior_np, tau)

    y0 = np.where(miss, np.nan, y[0])
    design = SimpleNamespace(y=y0, x=x, z=z, cluster=clus, group=grp)
    arrays, layout = build_arrays(design)
    pos = layout.row_position  # (G, J, L)
    valid = pos >= 0
    ypad = np.where(valid[None, :, None], y[:, np.where(valid, pos, 0)].transpose(0, 1, 4, 2, 3), 0.0)
    ypad = np.where(np.asarray(arrays.obs)[None], ypad, 0.0)
    pan_arrays = pan.prepare_pan_arrays(arrays)
    data = pan_arrays.data._replace(y=jnp.asarray(ypad))
    # the row statistics of the chains-innermost sweep hold the first replication's y: dropped (the
    # replications run the one-chain kernel under vmap)
    pan_arrays = pan_arrays._replace(data=data, cells=None)
    axes_data = jax.tree_util.tree_map(lambda _: None, arrays)._replace(y=0)
    axes = pan.PanArrays(axes_data, None, None, None)

    m_slots = layout.dims["M"]
    slot_g, slot_m = np.divmod(layout.miss_slot, m_slots)
    true_mis = y[:, layout.miss_row, layout.miss_col]  # (R, n_miss) in layout order
    chosen = []
    for g in range(n_groups):
        sel = np.flatnonzero(slot_g == g)
        chosen += list(sel[np.linspace(0, len(sel) - 1, n_slots).astype(int)])
    chosen = np.array(chosen)
    slots = np.column_stack([slot_g[chosen], slot_m[chosen]])

    truth = np.concatenate(
        [beta.reshape(n_rep, -1), upper_triangle(sigma).reshape(n_rep, -1), upper_triangle(psi).reshape(n_rep, -1),
         true_mis[:, chosen]], axis=1,
    )
    names = _names(n_groups, p, r, q, slots)
    G = n_groups
    prior = PanPrior(
        a=jnp.full((G,), prior_np["a"]), binv=jnp.broadcast_to(jnp.asarray(prior_np["Binv"]), (G, r, r)),
        c=jnp.full((G,), prior_np["c"]), dinv=jnp.broadcast_to(jnp.asarray(prior_np["Dinv"]), (G, r * q, r * q)),
    )
    return PanSBCProblem(pan_arrays, axes, prior, truth, names, slots, int((~pseudo).sum()))


def _names(G, p, r, q, slots):
    names = [f"beta[{g},{k},{t}]" for g in range(G) for k in range(p) for t in range(r)]
    rows, cols = np.triu_indices(r)
    names += [f"sigma[{g},{i},{j}]" for g in range(G) for i, j in zip(rows, cols)]
    rows, cols = np.triu_indices(r * q)
    names += [f"psi[{g},{i},{j}]" for g in range(G) for i, j in zip(rows, cols)]
    names += [f"ymis[{g},slot {m}]" for g, m in slots]
    return tuple(names)


def _extractor(slots):
    sg, sm = jnp.asarray(slots[:, 0]), jnp.asarray(slots[:, 1])

    def extract(state, pan_arrays):
        mis = pan.save_missing(state, pan_arrays)[sg, sm]
        return jnp.concatenate(
            [state.beta.reshape(-1), upper_triangle(state.sigma).reshape(-1), upper_triangle(state.psi).reshape(-1), mis]
        )

    return extract


def _flag(info):
    return info.nonfinite | info.gamma_exhausted


def run_pan_sbc(problem: PanSBCProblem, kernel=None, *, seed: int = 1, n_burn: int = 200, n_draws: int = 99,
                thin: int = 5, n_bins: int = 20, sampler_prior: PanPrior | None = None) -> SBCResult:
    """Run pan's kernel on every replication from pan's starting values and rank the true values.

    ``kernel`` and ``sampler_prior`` replace pan's kernel and the simulation prior in the sampler
    only (a deliberately wrong sampler, to check that the test has power).
    """
    kernel = pan.build_kernel() if kernel is None else kernel
    prior = problem.prior if sampler_prior is None else sampler_prior
    state0 = _init_states(problem.pan_arrays, prior)
    n_rep = problem.truth.shape[0]
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n_rep, dtype=jnp.uint32))
    return sbc_ranks(
        kernel, state0, problem.pan_arrays, prior, problem.truth, keys, _extractor_cached(problem.slots),
        arrays_axes=problem.arrays_axes, n_burn=n_burn, n_draws=n_draws, thin=thin, flag=_flag,
        names=problem.names, n_bins=n_bins,
    )


def _init_states(pan_arrays, prior):
    """pan's own starting values (computed on the host) for every replication, stacked."""
    data = pan_arrays.data
    ys = np.asarray(data.y)
    states = [pan.init(pan_arrays._replace(data=data._replace(y=jnp.asarray(y))), prior) for y in ys]
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)


_EXTRACTORS: dict = {}


def _extractor_cached(slots):
    """One extractor per slot set, so the runner's compile cache is reused across calls."""
    key = tuple(map(tuple, np.asarray(slots).tolist()))
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = _extractor(np.asarray(slots))
    return _EXTRACTORS[key]
