"""pan's sweep for many chains at once with the chain axis innermost, on the missing cells only.

``run_chains`` normally ``vmap``s the one-chain kernel over chains, which puts the chain axis
first: every row-level array becomes (C, r, J, L) and the unrolled r x r algebra of a row runs over
strided batches. From :data:`MIN_CHAINS` chains, this module's step runs the same sweep on arrays
whose LAST axis is the chain, so every elementwise step and every sum is a loop over contiguous
chains, and it touches the data only through sufficient statistics (:mod:`cell_stats`): the
observed cells' part of ``sum y y^T``, ``X^T y`` and the clusters' ``Z_i^T y_i`` is summed once on
the host, and a sweep adds the missing cells' part. The state between iterations is the missing
cells' values, (G, r_m, Mt, C) by target, instead of the completed (G, r, J, L) data: with the
Introduction model 306 values per chain instead of 2,250. The small parameter algebra (inverses,
inverse-Wishart and beta draws) stays chain-first, ``vmap``ped as in the one-chain kernel, except
the gamma draws of the Bartlett factors' diagonals, which run chains-last in a loop of their own. The
missing values (step 5) are drawn cell by cell with the per-pattern coefficients of
:mod:`missing_patterns`.

Random numbers: chain c's noise is the same threefry block as the one-chain kernel's
(``draw_sweep_noise`` with chain c's key), moved to the chain-last layout and consumed in the
same order, every missing cell with the normal of its slot; the draws equal the vmapped kernel's
up to rounding (sums are associated differently, and ``sum y y^T`` is taken about a fixed
``X beta0``).

:func:`chain_batch` gives ``run_chains`` its hook (the kernel's ``chain_batch`` attribute): the
batched step plus the conversions of the state between the chain-first layout of ``run_chains``
(records, saves, the returned state: the completed data) and this module's layout; below
:data:`MIN_CHAINS` chains (and where :func:`applies` says the layout does not pay) the conversions
are identities and the step is the plain ``vmap``, or, on a CPU for data of some size
(:func:`loops`), a loop over the chains of the one-chain kernel: as fast there, compiled as one
chain's program, and every chain's draws those of a one-chain run bit for bit.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from . import conditionals as cond
from . import cell_stats, linalg, missing_patterns, param_linalg
from .lean_vmap import lean_vmap
from .noise import NoiseStream, computed_once
from .pan import _always_true, _inverse_wisharts_from_diagonals, _inverses, sweep_noise
from .state import PanInfo, PanState
from .xla_options import WIDE_VECTORS

__all__ = ["MIN_CHAINS", "LOOP_MIN_CELLS", "COMPILER_OPTIONS", "ChainBatch", "applies", "loops", "chain_batch", "enter", "leave", "batched_step"]

#: Fewest chains for which the chain-innermost sweep replaces the vmapped one-chain kernel. Benchmark
#: model (a), ms per sweep of the compiled loop in one part (wall / process CPU, two runs each,
#: 2026-11-26 21:10 UTC, 2 cores): 2 chains 0.023-0.024 / 0.042-0.047 against 0.048-0.051 /
#: 0.079-0.083 vmapped; 4 chains 0.051-0.058 against 0.078-0.080; 8 chains 0.092-0.095 against
#: 0.144-0.164; 16 chains 0.152-0.161 against 0.257-0.264. One chain: 0.021-0.023 wall but
#: 0.038-0.041 CPU (XLA runs parts of it on a second thread) against 0.024-0.031 / 0.024-0.031 for
#: the one-chain kernel, which keeps one chain.
MIN_CHAINS = 2


class ChainBatch(NamedTuple):
    """``run_chains``' hook for kernels that take the chain axis themselves.

    Attributes:
        step: ``(keys (C,), state, arrays, prior) -> (state, info)``, state in the kernel's own
            layout, every ``info`` leaf (C,).
        enter: ``(state, arrays)``: chain-first state (every leaf (C, ...)) -> the kernel's layout.
        leave: ``(state, arrays)``: the kernel's layout -> chain-first state.
        options: ``(n_chains, arrays) -> dict | None``: XLA CPU options for a block that runs
            ``step`` on that many chains (``run_chains`` compiles the block with them).
    """

    step: Callable
    enter: Callable
    leave: Callable
    options: Callable = None


#: XLA CPU options of blocks that run this module's sweep: no YNNPACK fusions. Its dozen small
#: reductions (a few hundred values per chain) ran as YNNPACK calls; without them, 64 chains in two
#: parts on 2 cores took 0.204-0.226 against 0.216-0.275 ms per sweep (alternating, four runs each,
#: 2026-11-26 21:50 UTC). One chain's kernel keeps them (0.028 against 0.033 ms pinned to a core).
#: With :data:`~.xla_options.WIDE_VECTORS`, as every pan block.
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "", **WIDE_VECTORS}


def applies(n_chains: int, pan_arrays) -> bool:
    """Whether the chains-innermost sweep runs (decided from shapes, at trace time): from
    :data:`MIN_CHAINS` chains, where the arrays carry :class:`~.cell_stats.CellStats` (per-pattern
    missing draw and clusters of fewer than ``conditionals.DOT_MIN_LENGTH`` padded rows in all,
    :func:`cell_stats.available`). Elsewhere (e.g. benchmark model (b): 32 patterns, 20,000 rows) it
    measured slower than the vmapped kernel and compiled longer."""
    return n_chains >= MIN_CHAINS and pan_arrays.cells is not None


def enter(state: PanState, pan_arrays) -> PanState:
    """Chain-first state -> this module's layout where :func:`applies` (unchanged elsewhere): ``y``
    becomes the values of the missing cells, (G, r_m, Mt, C) (:class:`~.cell_stats.CellStats`)."""
    if not applies(state.beta.shape[0], pan_arrays):
        return state
    cells = pan_arrays.cells
    y = jnp.moveaxis(state.y, 0, -1)  # (G, r, J, L, C)
    flat = y.reshape((y.shape[0], -1, y.shape[-1]))
    index = cells.cell.reshape(cells.cell.shape[0], -1, 1)
    values = jnp.take_along_axis(flat, index, axis=1).reshape(cells.cell.shape + y.shape[-1:])
    return state._replace(y=jnp.where(cells.valid[..., None], values, 0.0))


def leave(state: PanState, pan_arrays) -> PanState:
    """Inverse of :func:`enter`: the missing cells' values put back among the data."""
    if not applies(state.beta.shape[0], pan_arrays):
        return state
    d, cells = pan_arrays.data, pan_arrays.cells
    n_groups = d.y.shape[0]
    values = state.y.reshape((n_groups, -1) + state.y.shape[-1:])
    values = jnp.concatenate([values, jnp.zeros_like(values[:, :1])], axis=1)  # (G, r_m Mt + 1, C)
    grid = jnp.take_along_axis(values, cells.place[..., None], axis=1).reshape(d.y.shape + values.shape[-1:])
    return state._replace(y=jnp.moveaxis(jnp.where(d.obs[..., None], d.y[..., None], grid), -1, 0))


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


def _padded(a):
    """``a`` (n, ..., C) flattened over its leading axes with one zero entry appended (index n)."""
    flat = a.reshape((-1, a.shape[-1]))
    return jnp.concatenate([flat, jnp.zeros_like(flat[:1])])


def _sums(v, cells, n_clusters):
    """The data's sums from the missing cells' values ``v`` (r_m, Mt, C):
    ``(sum y~ y~^T (r, r, C), X^T y~ (p, r, C), [Z_i^T y~_i] q arrays (r, J, C))`` over the used rows
    (``y~ = y - X beta0``; see :mod:`cell_stats`)."""
    targets = cells.targets
    r, q = cells.yy0.shape[0], cells.z.shape[0]
    centred = v - _trail(cells.offset)
    weighted = centred * _trail(cells.weight)  # 0 outside pan's n* and in padding
    # sum y~ y~^T: o o^T (constant) + v o^T + o v^T + v v^T
    with_obs = jnp.sum(_trail(cells.o_row) * weighted[None], axis=2)  # (r, r_m, C): [u, tm]
    own = jnp.sum(weighted * centred, axis=1)  # (r_m, C)
    partner = _padded(centred)[cells.pair_index]  # (n_pairs, Mt, C)
    chains = v.shape[-1:]
    yy = [[jnp.broadcast_to(cells.yy0[t, u], chains) for u in range(r)] for t in range(r)]
    for tm, t in enumerate(targets):
        for u in range(r):
            yy[t][u] = yy[t][u] + with_obs[u, tm]
            yy[u][t] = yy[u][t] + with_obs[u, tm]
        yy[t][t] = yy[t][t] + own[tm]
    for k, (tm, um) in enumerate(cell_stats.pairs(len(targets))):
        both = jnp.sum(weighted[tm] * partner[k], axis=0)
        t, u = targets[tm], targets[um]
        yy[t][u], yy[u][t] = yy[t][u] + both, yy[u][t] + both
    yy = jnp.stack([jnp.stack(row) for row in yy])
    x_part = jnp.sum(_trail(cells.x) * weighted[None], axis=2)  # (p, r_m, C)
    # every cluster's z v: cells are sorted by cluster within a target
    segment = (jnp.arange(len(targets), dtype=jnp.int32)[:, None] * n_clusters + cells.cluster).reshape(-1)
    z_part = jax.ops.segment_sum(
        jnp.moveaxis(_trail(cells.z) * weighted[None], 0, 2).reshape((-1, q) + v.shape[-1:]), segment,
        num_segments=len(targets) * n_clusters, indices_are_sorted=True,
    ).reshape((len(targets), n_clusters, q) + v.shape[-1:])  # (r_m, J, q, C)
    position = {t: tm for tm, t in enumerate(targets)}
    xy = jnp.stack([_trail(cells.xy0[:, t]) + (x_part[:, position[t]] if t in position else jnp.zeros(chains, v.dtype))
                    for t in range(r)], axis=1)
    zy = [jnp.stack([_trail(cells.zy0[k, t]) + (z_part[position[t], :, k] if t in position else jnp.zeros(chains, v.dtype))
                     for t in range(r)]) for k in range(q)]
    return yy, xy, zy


def _residual_sums(zy, cells, beta_t):
    """Every cluster's ``Z_i^T (y~_i - X_i beta~)`` (q arrays (r, J, C)), the random effects' data,
    from ``Z_i^T y~_i`` (:func:`_sums`) and ``beta~ = beta - beta0`` (p, r, C)."""
    p = cells.x.shape[0]
    return [zy_k - sum(cells.ztx[k, m][None, :, None] * beta_t[m][:, None, :] for m in range(p))
            for k, zy_k in enumerate(zy)]


def _sigma_scale(yy, xy, zy, b, pa, binv):
    """Sigma's scale ``Binv + sum delta delta^T`` and ``beta_hat - beta0`` (as
    :func:`conditionals.sigma_scale`) from the sums: with ``e = y~ - Z b`` and ``b_i`` (q, r),
    ``sum e e^T = sum y~ y~^T - sum_i (V_i^T b_i + b_i^T V_i)`` where ``V_i = Z_i^T y~_i - Z_i^T Z_i b_i / 2``,
    and ``X^T e = X^T y~ - sum_i Z_i^T X_i^T b_i``; beta integrated out takes ``(L^-1 X^T e)^T (L^-1 X^T e)``
    (``X^T X = L L^T``) off."""
    cells, ztz = pa.cells, pa.ztz
    q, p = cells.z.shape[0], cells.x.shape[0]
    r = yy.shape[0]
    bk = b.reshape((r, q) + b.shape[1:])  # (r, q, J, C)
    pairs = [(t, s) for t in range(r) for s in range(t + 1)]
    products = 0.0
    xte = xy
    for k in range(q):
        v = zy[k] - 0.5 * sum(ztz[k, l][None, :, None] * bk[:, l] for l in range(q))
        # V_i^T b_i + b_i^T V_i: its r (r + 1) / 2 distinct entries stacked, one multiply-and-sum
        # (as conditionals.gram)
        products = products + jnp.stack([v[t] * bk[s, k] + bk[t, k] * v[s] for t, s in pairs])
        xte = xte - jnp.sum(cells.ztx[k][:, None, :, None] * bk[None, :, k], axis=2)  # (p, r, C)
    sums = dict(zip(pairs, jnp.sum(products, axis=1)))  # over clusters: (C,) each
    cross = jnp.stack([jnp.stack([sums[(max(t, s), min(t, s))] for s in range(r)]) for t in range(r)])
    beta_hat = sum(pa.xtx_inv[:, m][:, None, None] * xte[m][None] for m in range(p))
    g = sum(pa.xtx_chol_inv_t[m][:, None, None] * xte[m][None] for m in range(p))  # L^-1 X^T e (p, r, C)
    projected = cond.gram(jnp.swapaxes(g, 0, 1), batch=1)
    return _trail(binv) + yy - cross - projected, beta_hat


def _draw_missing_cells(normals, cells, beta, b, coefficients):
    """:func:`missing_patterns.draw_missing_patterns` at the missing cells: every cell's value
    given its row's observed targets, the row's mean ``X beta + Z b`` and the normals of the row's
    missing cells (the same normal per cell as the one-chain kernel's).

    Args:
        normals: (M, C) standard normals of the missing-cell slots (layout order).
        beta: (p, r, C); b: (r q, J, C); coefficients: ``missing_patterns.pattern_coefficients`` of
        the new Sigma^-1, entries (K, C).

    Returns:
        (r_m, Mt, C) the cells' new values (0 in padding).
    """
    targets = cells.targets
    r, q = cells.y_row.shape[0], cells.z.shape[0]
    noise = _padded(normals)[cells.noise_index]  # (r_m, r_m, Mt, C): [jm, tm]
    b_cells = b[:, cells.cluster]  # (r q, r_m, Mt, C)
    mean = cond.linear_predictor(_trail(cells.x), beta)  # (r, r_m, Mt, C)
    mean = mean + jnp.stack([sum(_trail(cells.z[k]) * b_cells[t * q + k] for k in range(q)) for t in range(r)])
    e = _trail(cells.y_row) - mean  # B[t][j] is 0 where j is missing, so e_j needs no mask
    coef_b, coef_s = coefficients
    zero = jnp.zeros_like(coef_s[0][0])
    # the coefficients as one (r, 2 r, K, C) table: the stack is materialised once; gathered from the
    # entries themselves, XLA fused their algebra into the draw and recomputed it for every cell
    table = jnp.stack([jnp.stack([entry if entry is not None else zero for entry in row_b + row_s])
                       for row_b, row_s in zip(coef_b, coef_s)])
    values = []
    for tm, t in enumerate(targets):
        pattern = cells.pattern[tm]
        v = mean[t, tm]
        for j in range(r):
            if coef_b[t][j] is not None:
                v = v + table[t, j, pattern] * e[j, tm]
        for jm, j in enumerate(targets):
            if coef_s[t][j] is not None:
                v = v + table[t, r + j, pattern] * noise[jm, tm]
        values.append(v)
    return jnp.where(_trail(cells.valid), jnp.stack(values), 0.0)


def _signed_diagonals(dfs, dims, noises):
    """:func:`param_linalg.bartlett_diagonals` as ONE array: the diagonal (positive) negated where
    its gamma draw had no accepted proposal. Two results were two loops that each ran the
    rejection steps (the flag's reduction recomputed them, about 6 us per sweep for 32 chains)."""
    diagonal, exhausted = param_linalg.bartlett_diagonals(dfs, dims, noises, per_value=True)
    return jnp.where(exhausted, -diagonal, diagonal)


def _sweep_group(normals, uniforms, state, pa, prior, always):
    """One group's sweep for all chains: ``normals`` (n, C), ``uniforms`` (n_u, C); ``state.y``
    the missing cells' values (r_m, Mt, C), ``beta``/``psi``/``sigma`` (C, ...). Same steps and
    noise order as :func:`pan._sweep_group`, with the data's sums from :mod:`cell_stats`.
    ``always``: the gamma draws' buffer predicate (:func:`pan._always_true`, unbatched by the
    groups' ``vmap``)."""
    d, cells = pa.data, pa.cells
    r, q, p = d.y.shape[0], d.z.shape[0], d.x.shape[0]
    n_clusters = d.y.shape[1]
    noise = NoiseStream(normals, uniforms)
    sigma_inv, psi_inv = jax.vmap(_inverses)(state.sigma, state.psi)
    yy, xy, zy = _sums(state.y, cells, n_clusters)
    zte = _residual_sums(zy, cells, _last(state.beta) - _trail(cells.beta0))
    b = cond.draw_random_effects_from_sums(
        noise.normals((r * q, n_clusters)), zte, _trail(pa.ztz), _last(sigma_inv), _last(psi_inv)
    )
    psi_n, psi_u = linalg.bartlett_noise_size(r * q)
    noise_psi = (noise.normals((psi_n,)), noise.uniforms((psi_u,)))
    sig_n, sig_u = linalg.bartlett_noise_size(r)
    noise_sigma = (noise.normals((sig_n,)), noise.uniforms((sig_u,)))
    # the gamma draws of both Bartlett factors with the chains last, written to a buffer: fused
    # into the chain-first factors that use them, their rejection steps ran over the factors'
    # few diagonal entries (not vectorised), about 18 against 7 us per sweep for 32 chains of
    # benchmark model (a) (profiled); the rest of the inverse-Wishart algebra chain-first as before
    dfs = (prior.c + d.n_clusters, prior.a + d.n_used - p)
    signed = computed_once(lambda noises: _signed_diagonals(dfs, (r * q, r), noises), (noise_psi, noise_sigma), always)
    diagonal, exhausted = jnp.abs(signed), jnp.any(signed < 0, axis=0)
    scale_sigma, beta_hat = _sigma_scale(yy, xy, zy, b, pa, prior.binv)
    scale_psi = cond.psi_scale(b, _trail(d.cluster_mask), prior.dinv, batch=1)
    psi, sigma, sigma_root, sigma_inv_new = jax.vmap(_inverse_wisharts_from_diagonals)(
        _first(diagonal), _first(scale_psi), _first(noise_psi[0]), _first(scale_sigma), _first(noise_sigma[0])
    )
    beta_t = jax.vmap(cond.draw_beta, in_axes=(0, 0, None, 0))(
        _first(noise.normals((p, r))), _first(beta_hat), pa.xtx_chol_inv_t, sigma_root
    )
    miss_normals = noise.normals(d.miss_index.shape)
    noise.finish()
    beta = beta_t + cells.beta0
    lam = _last(sigma_inv_new)
    coefficients = missing_patterns.pattern_coefficients(lam, pa.pattern_miss)
    y = _draw_missing_cells(miss_normals, cells, _last(beta), b, coefficients)
    y_finite = missing_patterns.coefficients_finite(lam, pa.pattern_miss, coefficients)
    finite = _per_chain_all(beta, 0) & _per_chain_all(psi, 0) & _per_chain_all(sigma, 0)
    finite = finite & _per_chain_all(b, -1) & y_finite
    new = PanState(y=y, beta=beta, psi=psi, sigma=sigma)
    return new, PanInfo(nonfinite=~finite, gamma_exhausted=exhausted)


_STATE_AXES = PanState(y=0, beta=1, psi=1, sigma=1)


def _step(keys, state, pan_arrays, prior):
    # chain c's block as in the one-chain kernel, drawn chain-first (the hash runs faster along
    # the counters); then (G, n, C)
    normals, uniforms = sweep_noise(keys, pan_arrays)
    normals, uniforms = _last(normals), _last(uniforms)
    # the buffer's predicate from all groups' data, outside the groups' vmap: a batched one
    # makes the conditional a select, and the gamma draws fuse into their consumers
    sweep = functools.partial(_sweep_group, always=_always_true(pan_arrays))
    new, info = lean_vmap(sweep, in_axes=(0, 0, _STATE_AXES, 0, 0), out_axes=(_STATE_AXES, 0))(
        normals, uniforms, state, pan_arrays, prior
    )
    return new, PanInfo(nonfinite=jnp.any(info.nonfinite, axis=0), gamma_exhausted=jnp.any(info.gamma_exhausted, axis=0))


#: Padded target cells of one chain's data (all groups) from which chains on a CPU that the
#: chains-innermost sweep does not take run one after another through the one-chain kernel
#: (:func:`loops`). Measured 2026-11-27 08:30-08:50 UTC (2 cores, benchmark model (b)'s design
#: with J clusters x L rows, 5 targets, a random slope, 32 missingness patterns; ms per
#: chain-iteration, vmapped against looped, two alternating rounds): J = 1,000 x 20 (100,000
#: cells) 8 chains 1.14-1.41 against 1.47, 64 chains 1.59-1.86 against 0.79-1.56; J = 50 x 10
#: (2,500 cells) 8 chains 0.045-0.053 against 0.049-0.050, 64 chains 0.048-0.049 against
#: 0.036-0.047; J = 20 x 5 (500 cells) 64 chains 0.013-0.022 against 0.022-0.026, 256 chains
#: 0.021-0.022 against 0.024-0.027. Looped, the first call compiles the one-chain kernel: 3.5-4.9
#: against 4.4-6.2 s in the same runs (a slow hour).
LOOP_MIN_CELLS = 2048


def loops(n_chains: int, pan_arrays) -> bool:
    """Whether ``n_chains`` chains run one after another (``lax.map`` over the one-chain kernel)
    instead of ``vmap``ped: on a CPU, where :func:`applies` does not, for data of at least
    :data:`LOOP_MIN_CELLS` padded target cells per chain (decided from shapes and the default
    backend, at trace time).

    On a CPU the vmapped one-chain kernel runs its factorisations and random effects chain by
    chain anyway (``conditionals._posterior_draw_mapped``, one LAPACK call per matrix), so it is
    no faster there than a loop for such data, and it is traced, lowered and compiled at the
    chains' shapes: about a second more than one chain's program for benchmark model (b). A GPU
    keeps the ``vmap`` (its chains run in parallel)."""
    return (n_chains >= 2 and not applies(n_chains, pan_arrays) and jax.default_backend() == "cpu"
            and pan_arrays.data.y.size >= LOOP_MIN_CELLS)


def chain_batch(kernel) -> ChainBatch:
    """The :class:`ChainBatch` of the one-chain pan ``kernel``: this module's sweep where
    :func:`applies`, a loop over the chains where :func:`loops`, ``vmap(kernel)`` elsewhere."""
    vmapped = lean_vmap(kernel, in_axes=(0, 0, None, None))

    def step(keys, state, pan_arrays, prior):
        if applies(keys.shape[0], pan_arrays):
            return _step(keys, state, pan_arrays, prior)
        if loops(keys.shape[0], pan_arrays):
            return jax.lax.map(lambda chain: kernel(chain[0], chain[1], pan_arrays, prior), (keys, state))
        return vmapped(keys, state, pan_arrays, prior)

    def options(n_chains, pan_arrays):
        return dict(COMPILER_OPTIONS) if applies(n_chains, pan_arrays) else None

    return ChainBatch(step=step, enter=enter, leave=leave, options=options)


def batched_step(kernel):
    """Chain-first ``(keys, state, arrays, prior) -> (state, info)`` through this module's layout
    (enter, one sweep, leave): for tests and one-off calls."""
    batch = chain_batch(kernel)

    def step(keys, state, pan_arrays, prior):
        new, info = batch.step(keys, batch.enter(state, pan_arrays), pan_arrays, prior)
        return batch.leave(new, pan_arrays), info

    return step
