"""Batched Newton optimisation of the profiled deviance over all imputations at once.

``theta`` has only ``q (q + 1) / 2`` elements. Each Newton iteration has two phases that share
one vmapped ``jax.value_and_grad`` call over a small set of points (so the program holds a single
copy of the derivative code and compiles quickly):

- phase A evaluates the exact gradient at ``theta`` and at ``theta +- h e_j``; central differences
  of the exact gradient give the Hessian (relative error about 1e-8, so the iteration stays
  effectively quadratic). The Hessian is made positive definite through its eigenvalues
  (absolute values, floored) and gives the Newton direction and decrement ``g' H^-1 g``;
- phase B evaluates the deviance at ``theta + alpha d`` for ``alpha = s (1, 1/2, 1/4)`` and at
  the full step with the diagonal elements of ``Lambda`` that it shrinks by more than a quarter
  set to zero (a snap to lme4's bound: near a boundary optimum Newton steps shrink such elements
  only linearly), all at once, and takes the point with the lowest deviance among those
  satisfying Armijo's condition; when none does, phase B is repeated with ``s / 8`` (``s`` starts
  at 1 for each direction).

Once the decrement is below ``1e-8`` at a point of positive curvature, the full Newton step is
taken without comparing deviances (their differences are at rounding level there, the gradient
is still accurate), which gives ``theta`` to about 1e-8 relative. The iteration stops when the
decrement falls below ``tol`` (1e-15) at a point of positive curvature, when no step decreases
the deviance, or after ``maxiter`` accepted steps. It is one ``lax.while_loop`` per data set,
vmapped over the imputations.

Bounds: the deviance depends on ``Lambda`` only through ``Lambda Lambda'``, which is unchanged when
a column of ``Lambda`` changes sign. The unconstrained optimum is therefore an optimum under lme4's
bounds ``diag(Lambda) >= 0`` after flipping columns with a negative diagonal; an estimate on the
boundary has a (near) zero diagonal element (``singular``, as ``lme4::isSingular``).

JAX caches the compiled program per input shapes; ``reml`` and ``maxiter`` are traced, so ML and
REML fits of the same shapes share one compilation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from .deviance import LmerStats, lambda_positions, n_theta, profiled, theta_to_lambda
from ...kernels.xla_options import for_backend

__all__ = ["fit_batch", "start_theta", "canonical_theta", "diag_index", "SINGULAR_TOL"]

# lme4::isSingular's default tolerance on the diagonal of Lambda
SINGULAR_TOL = 1e-4
_N_TRIALS = 4  # points tried at once: steps scale * (1, 1/2, 1/4) and a snap to the bound
_SHRINK = 1.0 / 8.0  # a failed search retries with scale / 8
_FORCE_STEP = 1e-8
_SNAP = 0.75  # a diagonal element the full step shrinks below 75 % is also tried at 0
_MIN_SCALE = 2.0**-40
_ARMIJO = 1e-4
_FD_STEP = 1e-5
_NEG_CURVATURE = 1e-6


def start_theta(q: int, dtype=jnp.float64, xp=jnp):
    """lme4's start: ``Lambda = I`` (``xp=np`` gives a NumPy array)."""
    return xp.asarray([1.0 if i == j else 0.0 for i, j in lambda_positions(q)], dtype=dtype)


def diag_index(q: int) -> list:
    """Positions of the diagonal of ``Lambda`` in ``theta``."""
    return [sum(q - i for i in range(j)) for j in range(q)]


def canonical_theta(theta, q: int, xp=jnp):
    """Flip the sign of each column of ``Lambda`` whose diagonal element is negative.

    ``theta`` is ``(..., k)``; ``xp=np`` runs it on NumPy arrays (the host fit)."""
    out = []
    k = 0
    for j in range(q):
        sign = xp.where(theta[..., k] < 0, -1.0, 1.0)
        for _ in range(j, q):
            out.append(theta[..., k] * sign)
            k += 1
    return xp.stack(out, axis=-1)


def _newton_direction(g, h, theta):
    """Newton step with |eigenvalues| of the Hessian, plus negative-curvature directions.

    ``theta = 0`` (on a diagonal element) is always a stationary point of the deviance, which is
    even in each column of ``Lambda``; where it is a maximum the gradient vanishes and the step
    must follow the eigenvectors with negative curvature. The step is capped at
    ``max(1, |theta|) / 2``, so that a step from a concave region or an inflection point stays in
    a trust region. Returns ``(direction, smallest eigenvalue relative to the largest)``.
    """
    if h.shape[0] == 1:
        w, v = h[0], jnp.ones((1, 1), h.dtype)
    else:
        w, v = jnp.linalg.eigh(h)
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(w)))
    gv = v.T @ g
    d = -(v @ (gv / jnp.maximum(jnp.abs(w), 1e-10 * scale)))
    radius = 0.45 * jnp.maximum(1.0, jnp.max(jnp.abs(theta)))
    negative = w < -_NEG_CURVATURE * scale
    d = d + v @ jnp.where(negative, jnp.where(gv > 0, -radius, radius), 0.0)
    d = d * jnp.minimum(1.0, radius / jnp.maximum(jnp.max(jnp.abs(d)), 1e-300))
    return d, w[0] / scale


def _minimize_one(stats: LmerStats, reml, maxiter: int, tol):
    q = stats.ztz.shape[-1]
    k = n_theta(q)
    dtype = stats.xtx.dtype
    theta0 = start_theta(q, dtype)
    n_points = max(_N_TRIALS, 2 * k + 1)
    alphas = 0.5 ** jnp.arange(n_points, dtype=theta0.dtype)
    is_diag = jnp.zeros(k, dtype=bool).at[jnp.array(diag_index(q))].set(True)

    def value(theta):
        out = profiled(theta, stats, reml)
        return out["deviance"], (out["beta"], out["sigma2"], out["lx"])

    value_and_grad = jax.vmap(jax.value_and_grad(value, has_aux=True))

    def cond(carry):
        return (carry["phase_count"] < 4 * maxiter) & (carry["iterations"] < maxiter) & ~carry["done"]

    def body(c):
        theta, d, in_b = c["theta"], c["direction"], c["phase_b"]
        # phase A points: theta, theta + h e_j, theta - h e_j (rest padded with theta)
        step = _FD_STEP * jnp.maximum(jnp.abs(theta), 0.1)
        shifts = jnp.concatenate(
            [jnp.zeros((1, k)), jnp.diag(step), -jnp.diag(step), jnp.zeros((n_points - 2 * k - 1, k))]
        )
        steps = c["scale"] * alphas
        trial = theta + steps[:, None] * d
        full = trial[0]
        snap = jnp.where(is_diag & (jnp.abs(full) < _SNAP * jnp.abs(theta)), 0.0, full)
        trial = trial.at[_N_TRIALS - 1].set(snap)
        points = jnp.where(in_b, trial, theta + shifts)
        (fs, aux), gs = value_and_grad(points)
        # phase A: gradient, Hessian, Newton direction at theta
        g_a = gs[0]
        h = (gs[1 : k + 1] - gs[k + 1 : 2 * k + 1]) / (2.0 * step[:, None])
        h = 0.5 * (h + h.T)
        d_a, min_eig = _newton_direction(g_a, h, theta)
        dec_a = -jnp.dot(g_a, d_a)
        aux_a = jax.tree_util.tree_map(lambda a: a[0], aux)
        # phase B: Armijo backtracking along d
        ok = jnp.isfinite(fs) & (fs < c["f"]) & (fs <= c["f"] - _ARMIJO * steps * c["decrement"])
        # once the predicted decrease is at the rounding level of the deviance, take the full
        # Newton step without comparing deviances (quadratic convergence of theta)
        force = (c["decrement"] < _FORCE_STEP) & c["convex"]
        ok = ok | (force & (jnp.arange(n_points) == 0))
        any_ok = jnp.any(ok)
        best = jnp.where(force, 0, jnp.argmin(jnp.where(ok, fs, jnp.inf)))
        theta_b = jnp.where(any_ok, points[best], theta)
        f_b = jnp.where(any_ok, fs[best], c["f"])
        scale_b = jnp.where(any_ok, 1.0, c["scale"] * _SHRINK)

        def pick(b_value, a_value):
            return jax.tree_util.tree_map(lambda x, y: jnp.where(in_b, x, y), b_value, a_value)

        return {
            "phase_count": c["phase_count"] + 1,
            "phase_b": jnp.where(in_b, ~any_ok, True),
            "scale": pick(scale_b, c["scale"]),
            "theta": pick(theta_b, theta),
            "f": pick(f_b, fs[0]),
            "gradient": pick(c["gradient"], g_a),
            "hessian": pick(c["hessian"], h),
            "direction": pick(d, d_a),
            "decrement": pick(c["decrement"], dec_a),
            "convex": pick(c["convex"], min_eig > _NEG_CURVATURE),
            "aux": pick(c["aux"], aux_a),
            "done": pick(scale_b < _MIN_SCALE, (dec_a < tol) & (min_eig > -_NEG_CURVATURE)),
            "iterations": c["iterations"] + (in_b & any_ok).astype(c["iterations"].dtype),
        }

    p = stats.xtx.shape[-1]
    carry = {
        "phase_count": jnp.asarray(0),
        "phase_b": jnp.asarray(False),
        "scale": jnp.asarray(1.0, dtype),
        "theta": theta0,
        "f": jnp.asarray(jnp.inf, dtype),
        "gradient": jnp.zeros(k, dtype),
        "hessian": jnp.eye(k, dtype=dtype),
        "direction": jnp.zeros(k, dtype),
        "decrement": jnp.asarray(jnp.inf, dtype),
        "convex": jnp.asarray(False),
        "aux": (jnp.zeros(p, dtype), jnp.asarray(1.0, dtype), jnp.eye(p, dtype=dtype)),
        "done": jnp.asarray(False),
        "iterations": jnp.asarray(0),
    }
    c = lax.while_loop(cond, body, carry)
    theta = canonical_theta(c["theta"], q)
    beta, sigma2, lx = c["aux"]
    return {
        "theta": theta,
        "deviance": c["f"],
        "beta": beta,
        "sigma2": sigma2,
        "lx": lx,
        "lam": theta_to_lambda(theta, q),
        "iterations": c["iterations"],
        "decrement": c["decrement"],
        "gradient": c["gradient"],
        "hessian": c["hessian"],
    }


#: XLA options of :func:`fit_batch`. Without the CPU fusion emitters the program compiles in about
#: half the time (2.3-2.4 s instead of 4.0-5.0 s of CPU for a random-intercept model, measured
#: 2026-11-26) and runs as fast (26-28 ms instead of 30 ms for 100 data sets): compilation is
#: most of a first ``lmer`` call. The option is a CPU backend flag, passed only there
#: (:func:`mitml_jax.kernels.xla_options.for_backend`: a GPU refuses it).
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.lru_cache(maxsize=4)
def _compiled_fit(backend: str):
    return jax.jit(_fit_batch, compiler_options=for_backend(COMPILER_OPTIONS, backend))


def fit_batch(stats: LmerStats, reml, maxiter=100, tol=1e-15):
    """Minimise the (RE)ML deviance for every data set of the batch (leading axis m), compiled
    for JAX's default backend; see :func:`_fit_batch`."""
    return _compiled_fit(jax.default_backend())(stats, reml, maxiter, tol)


def _fit_batch(stats: LmerStats, reml, maxiter=100, tol=1e-15):
    """Minimise the (RE)ML deviance for every data set of the batch (leading axis m).

    ``reml`` (boolean), ``maxiter`` and ``tol`` are traced: changing them does not recompile.
    Returns a dict of batched arrays: ``theta`` (m, k),
    ``deviance`` (m,), ``beta`` (m, p) (of the offset response), ``sigma2`` (m,), ``lx`` (m, p, p),
    ``lam`` (m, q, q), ``iterations``, ``decrement`` (last Newton decrement), ``gradient`` (m, k)
    and ``hessian`` (m, k, k) at the optimum (before the sign canonicalisation of ``theta``).
    """
    return jax.vmap(lambda s: _minimize_one(s, reml, maxiter, tol))(stats)
