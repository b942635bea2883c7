"""The batched Newton fit of :mod:`.optimize` in NumPy, for problems too small to pay a compile.

A first :func:`.optimize.fit_batch` call traces and compiles an XLA program (about 2 s of CPU on a
2-core machine), while the arithmetic of a typical analysis of imputed data (m = 100 data sets of 50
clusters, a random intercept) is a few milliseconds. :func:`fit_batch_host` runs the same algorithm
(same start, Newton directions, Armijo line search with the snap to the bound, stopping rules and
outputs; see the :mod:`.optimize` docstring) on the host, all data sets at once as NumPy arrays, so
nothing is compiled:

- the profiled (RE)ML deviance (:mod:`.deviance`) is evaluated for a whole batch of ``theta``
  (data sets x trial points x directions) with the ``q x q`` and ``p x p`` algebra unrolled into
  elementwise operations over the batch;
- its exact gradient comes from the complex step (Squire and Trapp 1998):
  ``df/dtheta_j = Im f(theta + i h e_j) / h`` with ``h = 1e-30``; every operation of the deviance
  (products, unrolled Cholesky without conjugation, ``sqrt``, ``log``) is analytic, so the
  derivative is exact to rounding, like the autodiff gradient of the JAX version;
- one Python loop step is one phase (A or B) of every data set still iterating; the loop runs
  for at most the ``4 maxiter`` phases of the JAX ``while_loop``.

References
----------
Squire, W. and Trapp, G. (1998). Using complex variables to estimate derivatives of real
functions. *SIAM Review* 40(1), 110-112.
"""

from __future__ import annotations

import numpy as np

from ...kernels import linalg
from . import optimize as opt
from .deviance import LmerStats, lambda_positions, n_theta

__all__ = ["profiled_host", "fit_batch_host", "MAX_UNROLL"]

#: largest ``q`` and ``p`` whose algebra is unrolled (larger models use the JAX program)
MAX_UNROLL = 8
_COMPLEX_STEP = 1e-30


def _expand(stats: LmerStats, extra: int) -> LmerStats:
    """Insert ``extra`` singleton axes after the data-set axis of every statistic."""
    return LmerStats(*(np.asarray(a)[(slice(None),) + (None,) * extra] for a in stats))


def profiled_host(theta: np.ndarray, stats: LmerStats, reml: bool) -> dict:
    """lme4's PLS step (:func:`.deviance.profiled`) for a batch of ``theta``, in NumPy.

    ``theta`` has shape ``(..., k)`` (real or complex); the statistics carry leading axes that
    broadcast against ``theta.shape[:-1]`` (e.g. ``(m, 1, 1)`` for ``theta`` of ``(m, P, K)``).
    Returns ``deviance`` (...), ``beta`` (..., p), ``sigma2`` (...) and ``lx`` (..., p, p).
    """
    q = stats.ztz.shape[-1]
    p = stats.xtx.shape[-1]
    lam = [[None] * q for _ in range(q)]
    for col, (i, j) in enumerate(lambda_positions(q)):
        lam[i][j] = theta[..., col, None]  # (..., 1): broadcasts over clusters
    ztz = [[stats.ztz[..., b, c] for c in range(q)] for b in range(q)]  # (..., J)
    zxy = np.concatenate([stats.ztx, stats.zty[..., None]], axis=-1)  # (..., J, q, p + 1)
    # A = Lambda' Z'Z Lambda + I (lower triangle), via T = Z'Z Lambda
    t = [[sum(ztz[b][c] * lam[c][d] for c in range(d, q)) for d in range(q)] for b in range(q)]
    a = [[sum(lam[b][i] * t[b][j] for b in range(i, q)) + (1.0 if i == j else 0.0)
          if j <= i else None for j in range(q)] for i in range(q)]
    low = linalg.chol_list(a, sqrt=np.sqrt)
    logdet_l = 2.0 * sum(np.sum(np.log(low[i][i]), axis=-1) for i in range(q))
    # R_ZX and c_u: L^{-1} Lambda' [Z'X, Z'y], row by row
    sol = []
    for i in range(q):
        s = sum(lam[b][i][..., None] * zxy[..., b, :] for b in range(i, q))
        for k in range(i):
            s = s - low[i][k][..., None] * sol[k]
        sol.append(s / low[i][i][..., None])  # (..., J, p + 1)
    rzx = np.stack([s[..., :p] for s in sol], axis=-2)  # (..., J, q, p)
    cu = np.stack([s[..., p] for s in sol], axis=-1)  # (..., J, q)
    rzx_flat = rzx.reshape(rzx.shape[:-3] + (-1, p))
    rxtrx = stats.xtx - np.matmul(np.swapaxes(rzx_flat, -1, -2), rzx_flat)
    rhs_x = stats.xty - np.matmul(cu.reshape(cu.shape[:-2] + (1, -1)), rzx_flat)[..., 0, :]
    low_x = linalg.chol_list([[rxtrx[..., i, j] for j in range(p)] for i in range(p)], sqrt=np.sqrt)
    cb = linalg.solve_lower_list(low_x, [rhs_x[..., i] for i in range(p)])
    beta = linalg.solve_upper_t_list(low_x, cb)
    r2 = stats.yty - np.sum(cu * cu, axis=(-2, -1)) - sum(c * c for c in cb)
    dof = stats.n - stats.n_fixed if reml else stats.n
    dev = logdet_l + dof * (1.0 + np.log(2.0 * np.pi * r2 / dof))
    if reml:
        dev = dev + 2.0 * sum(np.log(low_x[i][i]) for i in range(p))
    zero = np.zeros_like(low_x[0][0])
    lx = np.stack([np.stack([low_x[i][j] if j <= i else zero for j in range(p)], axis=-1)
                   for i in range(p)], axis=-2)
    return {"deviance": dev, "beta": np.stack(beta, axis=-1), "sigma2": r2 / dof, "lx": lx}


def _value_and_grad(points: np.ndarray, stats: LmerStats, reml: bool):
    """Deviance, its aux values and exact gradient at ``points`` (r, P, k), by complex step."""
    k = points.shape[-1]
    shifted = points[:, :, None, :] + (1j * _COMPLEX_STEP) * np.eye(k)  # (r, P, k, k)
    out = profiled_host(shifted, _expand(stats, 2), reml)
    dev = out["deviance"]  # (r, P, k)
    aux = (out["beta"][:, :, 0].real, out["sigma2"][:, :, 0].real, out["lx"][:, :, 0].real)
    return dev[:, :, 0].real, aux, dev.imag / _COMPLEX_STEP


def _newton_direction(g, h, theta):
    """:func:`.optimize._newton_direction` for a batch (r, k), (r, k, k), (r, k)."""
    if h.shape[-1] == 1:
        w, v = h[:, 0], np.ones_like(h)
    else:
        w, v = np.linalg.eigh(h)
    scale = np.maximum(1.0, np.max(np.abs(w), axis=1))
    gv = np.einsum("rji,rj->ri", v, g)
    d = -np.einsum("rij,rj->ri", v, gv / np.maximum(np.abs(w), 1e-10 * scale[:, None]))
    radius = 0.45 * np.maximum(1.0, np.max(np.abs(theta), axis=1))
    negative = w < -opt._NEG_CURVATURE * scale[:, None]
    push = np.where(negative, np.where(gv > 0, -radius[:, None], radius[:, None]), 0.0)
    d = d + np.einsum("rij,rj->ri", v, push)
    d = d * np.minimum(1.0, radius / np.maximum(np.max(np.abs(d), axis=1), 1e-300))[:, None]
    return d, w[:, 0] / scale


def _phase_a(c: dict, stats: LmerStats, reml: bool, tol: float) -> dict:
    """Phase A: exact gradient at ``theta`` and ``theta +- h e_j``, Hessian, Newton direction."""
    theta = c["theta"]
    r, k = theta.shape
    step = opt._FD_STEP * np.maximum(np.abs(theta), 0.1)
    shifts = np.zeros((r, 2 * k + 1, k))
    shifts[:, 1 : k + 1] = step[:, :, None] * np.eye(k)
    shifts[:, k + 1 :] = -step[:, :, None] * np.eye(k)
    fs, aux, gs = _value_and_grad(theta[:, None, :] + shifts, stats, reml)
    g = gs[:, 0]
    h = (gs[:, 1 : k + 1] - gs[:, k + 1 :]) / (2.0 * step[:, :, None])
    h = 0.5 * (h + np.swapaxes(h, 1, 2))
    d, min_eig = _newton_direction(g, h, theta)
    decrement = -np.sum(g * d, axis=1)
    return {
        "phase_b": np.ones(r, dtype=bool), "f": fs[:, 0], "gradient": g, "hessian": h,
        "direction": d, "decrement": decrement, "convex": min_eig > opt._NEG_CURVATURE,
        "beta": aux[0][:, 0], "sigma2": aux[1][:, 0], "lx": aux[2][:, 0],
        "done": (decrement < tol) & (min_eig > -opt._NEG_CURVATURE),
    }


def _phase_b(c: dict, stats: LmerStats, reml: bool, q: int) -> dict:
    """Phase B: Armijo backtracking along the direction, with the snap to the bound."""
    theta, d, f = c["theta"], c["direction"], c["f"]
    r, k = theta.shape
    n_points = max(opt._N_TRIALS, 2 * k + 1)
    steps = c["scale"][:, None] * 0.5 ** np.arange(n_points)
    points = theta[:, None, :] + steps[:, :, None] * d[:, None, :]
    is_diag = np.zeros(k, dtype=bool)
    is_diag[opt.diag_index(q)] = True
    full = points[:, 0]
    points[:, opt._N_TRIALS - 1] = np.where(
        is_diag & (np.abs(full) < opt._SNAP * np.abs(theta)), 0.0, full
    )
    fs = profiled_host(points, _expand(stats, 1), reml)["deviance"]
    ok = np.isfinite(fs) & (fs < f[:, None])
    ok &= fs <= f[:, None] - opt._ARMIJO * steps * c["decrement"][:, None]
    # once the predicted decrease is at the rounding level of the deviance, take the full step
    force = (c["decrement"] < opt._FORCE_STEP) & c["convex"]
    ok[:, 0] |= force
    any_ok = np.any(ok, axis=1)
    best = np.where(force, 0, np.argmin(np.where(ok, fs, np.inf), axis=1))
    rows = np.arange(r)
    scale = np.where(any_ok, 1.0, c["scale"] * opt._SHRINK)
    return {
        "phase_b": ~any_ok,
        "scale": scale,
        "theta": np.where(any_ok[:, None], points[rows, best], theta),
        "f": np.where(any_ok, fs[rows, best], f),
        "done": scale < opt._MIN_SCALE,
        "iterations": c["iterations"] + any_ok,
    }


def fit_batch_host(stats: LmerStats, reml: bool, maxiter: int = 100, tol: float = 1e-15) -> dict:
    """:func:`.optimize.fit_batch` on the host: the same outputs as NumPy arrays.

    ``stats`` holds NumPy statistics with leading axis m (unpadded ``p``). Requires
    ``q, p <= MAX_UNROLL``.
    """
    stats = LmerStats(*(np.asarray(a, dtype=float) for a in stats))
    m, _, q, p = stats.ztx.shape
    if q > MAX_UNROLL or p > MAX_UNROLL:
        raise ValueError(f"fit_batch_host: q = {q} and p = {p} must be at most {MAX_UNROLL}.")
    k = n_theta(q)
    start = opt.start_theta(q, float, xp=np)
    c = {
        "phase_count": np.zeros(m, dtype=np.int64),
        "phase_b": np.zeros(m, dtype=bool),
        "scale": np.ones(m),
        "theta": np.tile(start, (m, 1)),
        "f": np.full(m, np.inf),
        "gradient": np.zeros((m, k)),
        "hessian": np.tile(np.eye(k), (m, 1, 1)),
        "direction": np.zeros((m, k)),
        "decrement": np.full(m, np.inf),
        "convex": np.zeros(m, dtype=bool),
        "beta": np.zeros((m, p)),
        "sigma2": np.ones(m),
        "lx": np.tile(np.eye(p), (m, 1, 1)),
        "done": np.zeros(m, dtype=bool),
        "iterations": np.zeros(m, dtype=np.int64),
    }
    # degenerate trial points may give nan or inf deviances: the line search rejects them, as
    # in the JAX version, so NumPy's warnings about them are noise
    with np.errstate(all="ignore"):
        while True:
            active = np.flatnonzero((c["phase_count"] < 4 * maxiter) & (c["iterations"] < maxiter)
                                    & ~c["done"])
            if len(active) == 0:
                break
            c["phase_count"][active] += 1
            in_b = c["phase_b"][active]
            for rows, phase in ((active[~in_b], "a"), (active[in_b], "b")):
                if len(rows) == 0:
                    continue
                sub = LmerStats(*(a[rows] for a in stats))
                part = {key: value[rows] for key, value in c.items()}
                new = (_phase_a(part, sub, reml, tol) if phase == "a"
                       else _phase_b(part, sub, reml, q))
                for key, value in new.items():
                    c[key][rows] = value
    theta = opt.canonical_theta(c["theta"], q, xp=np)
    lam = np.zeros((m, q, q))
    for col, (i, j) in enumerate(lambda_positions(q)):
        lam[:, i, j] = theta[:, col]
    return {
        "theta": theta, "deviance": c["f"], "beta": c["beta"], "sigma2": c["sigma2"],
        "lx": c["lx"], "lam": lam, "iterations": c["iterations"], "decrement": c["decrement"],
        "gradient": c["gradient"], "hessian": c["hessian"],
    }
