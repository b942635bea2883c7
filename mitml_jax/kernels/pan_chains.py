"""pan's sweep for many chains at once with the chain axis innermost (arrays (..., J, L, C)).

``run_chains`` normally ``vmap``s the one-chain kernel over chains, which puts the chain axis
first: every row-level array becomes (C, r, J, L) and the unrolled r x r algebra of a row runs over
strided batches. From :data:`MIN_CHAINS` chains, this module's step runs the same sweep
(:func:`pan._sweep_group`'s conditionals, called with trailing chain axes, see
:mod:`conditionals`) on arrays whose LAST axis is the chain: the completed targets ``y`` are kept
as (G, r, J, L, C) across iterations, the data carry a singleton chain axis, and the parameter
entries (Sigma^-1, Psi^-1, beta, pattern coefficients) become (C,) vectors, so every elementwise
step and every sum over rows is a loop over contiguous chains. The small parameter algebra
(inverses, inverse-Wishart and beta draws) stays chain-first, ``vmap``ped as in the one-chain
kernel. The missing values (step 5) are drawn at the missing cells only
(:func:`_draw_missing_cells`, the per-pattern formula of :mod:`missing_patterns`) and gathered
into the new ``y``.

Random numbers: chain c's noise is the same threefry block as the one-chain kernel's
(``draw_sweep_noise`` with chain c's key), moved to the chain-last layout and consumed in the
same order; the draws equal the vmapped kernel's up to rounding (sums may be
associated differently).

:func:`chain_batch` gives ``run_chains`` its hook (the kernel's ``chain_batch`` attribute): the
batched step plus the conversions of the state between the chain-first layout of ``run_chains``
(records, saves, the returned state) and this module's layout; below :data:`MIN_CHAINS` chains
(and where :func:`applies` says the layout does not pay) the step is the plain ``vmap`` and the
conversions are identities.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from . import conditionals as cond
from . import linalg, missing_patterns
from .lean_vmap import lean_vmap
from .noise import NoiseStream, draw_sweep_noise
from .pan import _inverse_wisharts, _inverses, noise_sizes
from .state import PanInfo, PanState

__all__ = ["MIN_CHAINS", "ChainBatch", "applies", "chain_batch", "enter", "leave", "batched_step"]

#: Fewest chains for which the chain-innermost sweep replaces the vmapped one-chain kernel. Benchmark
#: model (a), ms per sweep (wall), vmapped kernel / this sweep, interleaved in one process (three
#: repeats; 2 cores, load average 1.4): 16 chains 0.52-0.55 / 0.42-0.45, 64 chains 1.60-1.81 /
#: 1.05-1.10, 256 chains 7.9-8.5 / 6.2-6.4; at load 3: 8 chains 0.32-0.40 / 0.29-0.40 (CPU ms).
#: It compiles about 1 s longer (4.3-4.8 s against 3.2-4.0 s for the sweep loop, cache off).
MIN_CHAINS = 16


class ChainBatch(NamedTuple):
    """``run_chains``' hook for kernels that take the chain axis themselves.

    Attributes:
        step: ``(keys (C,), state, arrays, prior) -> (state, info)``, state in the kernel's own
            layout, every ``info`` leaf (C,).
        enter: ``(state, arrays)``: chain-first state (every leaf (C, ...)) -> the kernel's layout.
        leave: ``(state, arrays)``: the kernel's layout -> chain-first state.
    """

    step: Callable
    enter: Callable
    leave: Callable


def applies(n_chains: int, pan_arrays) -> bool:
    """Whether the chains-innermost sweep runs (decided from shapes, at trace time): from
    :data:`MIN_CHAINS` chains, with the per-pattern missing draw and clusters of fewer than
    ``conditionals.DOT_MIN_LENGTH`` padded rows in all. Elsewhere (e.g. benchmark model (b): 32
    patterns, 20,000 rows) it measured slower than the vmapped kernel and compiled longer."""
    d = pan_arrays.data
    return (n_chains >= MIN_CHAINS and pan_arrays.row_pattern is not None
            and d.y.shape[2] * d.y.shape[3] < cond.DOT_MIN_LENGTH)


def enter(state: PanState, pan_arrays) -> PanState:
    """Chain-first state -> this module's layout (``y`` (G, r, J, L, C); other leaves unchanged)
    where :func:`applies`; unchanged elsewhere."""
    if not applies(state.beta.shape[0], pan_arrays):
        return state
    return state._replace(y=jnp.moveaxis(state.y, 0, -1))


def leave(state: PanState, pan_arrays) -> PanState:
    """Inverse of :func:`enter`."""
    if not applies(state.beta.shape[0], pan_arrays):
        return state
    return state._replace(y=jnp.moveaxis(state.y, -1, 0))


def _last(a):
    """(C, ...) -> (..., C)."""
    return jnp.moveaxis(a, 0, -1)


def _first(a):
    """(..., C) -> (C, ...)."""
    return jnp.moveaxis(a, -1, 0)


def _trail(a):
    """Data shared by all chains with a singleton chain axis."""
    return a[..., None]


def _per_chain_all(a, chain_axis):
    """``all(isfinite(a))`` per chain: (C,) flags."""
    axes = tuple(i for i in range(a.ndim) if i != chain_axis % a.ndim)
    return jnp.all(jnp.isfinite(a), axis=axes)


def _draw_missing_cells(normals, y_obs, obs, x, z, beta, b, coefficients, miss_index, row_pattern):
    """:func:`missing_patterns.draw_missing_patterns` evaluated at the missing cells only.

    Every missing-cell slot gathers its row's data, mean and the normals of the row's other
    missing cells, and its pattern's coefficients; the new ``y`` is the observed data with the
    slots' draws gathered into the missing cells (one loop over the grid instead of the
    per-pattern selects and means over every cell).

    Args:
        normals: (M, C) standard normals of the missing-cell slots.
        y_obs, obs: (r, J, L); x: (p, J, L); z: (q, J, L); miss_index: (M,) (padding ``r J L``).
        beta: (p, r, C); b: (r q, J, C); coefficients: ``missing_patterns.pattern_coefficients`` of
        the new Sigma^-1 (r, r, C), entries (K, C).

    Returns:
        y: (r, J, L, C).
    """
    r, n_clusters, n_rows = y_obs.shape
    q, p = z.shape[0], x.shape[0]
    per_target = n_clusters * n_rows
    n_slots = miss_index.shape[0]
    slot = jnp.full(r * per_target + 1, n_slots, jnp.int32).at[miss_index].set(jnp.arange(n_slots, dtype=jnp.int32))
    cell = jnp.minimum(miss_index, r * per_target - 1)  # padding slots compute a value nobody reads
    target, row = cell // per_target, cell % per_target
    x_m, z_m = x.reshape(p, per_target)[:, row], z.reshape(q, per_target)[:, row]  # (p, M), (q, M)
    bk = b.reshape((r, q, n_clusters) + b.shape[2:])[:, :, row // n_rows]  # (r, q, M, C)
    mean = x_m[0][None, :, None] * beta[0][:, None, :]
    for k in range(1, p):
        mean = mean + x_m[k][None, :, None] * beta[k][:, None, :]
    zb = z_m[0][None, :, None] * bk[:, 0]
    for k in range(1, q):
        zb = zb + z_m[k][None, :, None] * bk[:, k]
    mean = mean + zb  # (r, M, C): the mean of every target of the slot's row
    e = y_obs.reshape(r, per_target)[:, row][..., None] - mean
    padded = jnp.concatenate([normals, jnp.zeros_like(normals[:1])])
    noise = padded[slot[jnp.arange(r)[:, None] * per_target + row[None, :]]]  # (r, M, C)
    coef_b, coef_s = coefficients

    def table(entries):
        zero = jnp.zeros_like(coef_s[0][0])
        return jnp.stack([jnp.stack([e if e is not None else zero for e in row_]) for row_ in entries])

    table_b, table_s = table(coef_b), table(coef_s)  # (r, r, K, C)
    pattern = row_pattern.reshape(-1)[row]
    slots = jnp.arange(n_slots)
    v = mean[target, slots]  # (M, C)
    for j in range(r):
        if r > 1:
            v = v + table_b[target, j, pattern] * e[j]
        v = v + table_s[target, j, pattern] * noise[j]
    grid = jnp.concatenate([v, jnp.zeros_like(v[:1])])[slot[:-1]].reshape(y_obs.shape + v.shape[1:])
    return jnp.where(obs[..., None], y_obs[..., None], grid)


def _sweep_group(normals, uniforms, state, pa, prior):
    """One group's sweep for all chains: ``normals`` (n, C), ``uniforms`` (n_u, C); ``state.y``
    (r, J, L, C), ``beta``/``psi``/``sigma`` (C, ...). Same steps and noise order as
    :func:`pan._sweep_group`."""
    d = pa.data
    r, q, p = d.y.shape[0], d.z.shape[0], d.x.shape[0]
    n_clusters = d.y.shape[1]
    noise = NoiseStream(normals, uniforms)
    x, z, used = _trail(d.x), _trail(d.z), _trail(d.used)
    sigma_inv, psi_inv = jax.vmap(_inverses)(state.sigma, state.psi)
    eps = state.y - cond.linear_predictor(x, _last(state.beta))
    b = cond.draw_random_effects(
        noise.normals((r * q, n_clusters)), eps, z, used, _trail(pa.ztz), _last(sigma_inv), _last(psi_inv)
    )
    psi_n, psi_u = linalg.bartlett_noise_size(r * q)
    noise_psi = (_first(noise.normals((psi_n,))), _first(noise.uniforms((psi_u,))))
    zb = cond.cluster_effects(z, b)
    sig_n, sig_u = linalg.bartlett_noise_size(r)
    noise_sigma = (_first(noise.normals((sig_n,))), _first(noise.uniforms((sig_u,))))
    scale_sigma, beta_hat = cond.sigma_scale(state.y - zb, x, used, pa.xtx_inv, prior.binv, batch=1)
    scale_psi = cond.psi_scale(b, _trail(d.cluster_mask), prior.dinv, batch=1)
    psi, sigma, sigma_root, sigma_inv_new, exhausted = jax.vmap(
        _inverse_wisharts, in_axes=(None, 0, 0, None, 0, 0)
    )(prior.c + d.n_clusters, _first(scale_psi), noise_psi, prior.a + d.n_used - p, _first(scale_sigma), noise_sigma)
    beta = jax.vmap(cond.draw_beta, in_axes=(0, 0, None, 0))(
        _first(noise.normals((p, r))), _first(beta_hat), pa.xtx_chol_inv_t, sigma_root
    )
    miss_normals = noise.normals(d.miss_index.shape)
    noise.finish()
    lam = _last(sigma_inv_new)
    coefficients = missing_patterns.pattern_coefficients(lam, pa.pattern_miss)
    y = _draw_missing_cells(miss_normals, d.y, d.obs, d.x, d.z, _last(beta), b, coefficients, d.miss_index,
                            pa.row_pattern)
    y_finite = missing_patterns.coefficients_finite(lam, pa.pattern_miss, coefficients)
    finite = _per_chain_all(beta, 0) & _per_chain_all(psi, 0) & _per_chain_all(sigma, 0)
    finite = finite & _per_chain_all(b, -1) & y_finite
    new = PanState(y=y, beta=beta, psi=psi, sigma=sigma)
    return new, PanInfo(nonfinite=~finite, gamma_exhausted=exhausted)


_STATE_AXES = PanState(y=0, beta=1, psi=1, sigma=1)


def _step(keys, state, pan_arrays, prior):
    d = pan_arrays.data
    n_groups, r, n_clusters = d.y.shape[:3]
    q, p, n_miss = d.z.shape[1], d.x.shape[1], d.miss_index.shape[1]
    n_norm, n_unif = noise_sizes(r, q, p, n_clusters, n_miss)
    # chain c's block as in the one-chain kernel, drawn chain-first (the hash runs faster along
    # the counters) and computed once: without the barrier XLA fuses the hash and Box-Muller into
    # every consumer; then (G, n, C)
    draw = jax.vmap(draw_sweep_noise, in_axes=(0, None, None, None, None))
    normals, uniforms = jax.lax.optimization_barrier(draw(keys, (n_groups,), n_norm, n_unif, d.y.dtype))
    normals, uniforms = _last(normals), _last(uniforms)
    new, info = lean_vmap(_sweep_group, in_axes=(0, 0, _STATE_AXES, 0, 0), out_axes=(_STATE_AXES, 0))(
        normals, uniforms, state, pan_arrays, prior
    )
    return new, PanInfo(nonfinite=jnp.any(info.nonfinite, axis=0), gamma_exhausted=jnp.any(info.gamma_exhausted, axis=0))


def chain_batch(kernel) -> ChainBatch:
    """The :class:`ChainBatch` of the one-chain pan ``kernel``: this module's sweep where
    :func:`applies`, ``vmap(kernel)`` elsewhere."""
    vmapped = lean_vmap(kernel, in_axes=(0, 0, None, None))

    def step(keys, state, pan_arrays, prior):
        if not applies(keys.shape[0], pan_arrays):
            return vmapped(keys, state, pan_arrays, prior)
        return _step(keys, state, pan_arrays, prior)

    return ChainBatch(step=step, enter=enter, leave=leave)


def batched_step(kernel):
    """Chain-first ``(keys, state, arrays, prior) -> (state, info)`` through this module's layout
    (enter, one sweep, leave): for tests and one-off calls."""
    batch = chain_batch(kernel)

    def step(keys, state, pan_arrays, prior):
        new, info = batch.step(keys, batch.enter(state, pan_arrays), pan_arrays, prior)
        return batch.leave(new, pan_arrays), info

    return step
