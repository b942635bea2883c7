"""Full conditionals of pan's Gibbs sampler (``mgibbs`` in pan.f, spec Appendix A), one group.

Arrays are those of ONE group (the kernel vmaps over groups), columns first: ``y (r, J, L)``,
``obs (r, J, L)``, ``x (p, J, L)``, ``z (q, J, L)``, ``used (J, L)`` (rows with at least one
observed target). The tiny r x r and rq x rq algebra is unrolled over Python lists of (J, L) or
(J,) arrays (see :func:`linalg.chol_list`), so every step is elementwise over a contiguous batch.

Random effects ``b`` are (r q, J): row ``target * q + random effect`` of vec(b_i) (vec stacks the
columns of the q x r matrix b_i), mitml's Psi ordering. Small parameter matrices are dense:
beta (p, r), Sigma (r, r), Psi (rq, rq).

Each ``draw_*`` takes its standard normals (and uniforms) first, as arrays: a sweep draws all its
noise in one threefry call (see :mod:`noise`).

Trailing batch axes (chains innermost, :mod:`pan_chains`): the row-level functions also take arrays
with extra trailing axes, e.g. ``y (r, J, L, C)`` with the data as ``x (p, J, L, 1)`` and parameter
entries as ``sigma_inv (r, r, C)``; NumPy broadcasting then runs every unrolled scalar step over the
contiguous chain axis. Functions that sum over rows take ``batch`` (the number of trailing axes to
keep) where the sum would otherwise include them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import linalg, param_linalg
from .kernel_call import enabled as kernel_enabled
from .kernel_call import single_kernel
from .lean_vmap import is_batched

__all__ = [
    "spd_inverse",
    "cross_products",
    "gram",
    "linear_predictor",
    "cluster_effects",
    "draw_random_effects",
    "draw_random_effects_from_sums",
    "psi_scale",
    "sigma_scale",
    "draw_psi",
    "draw_sigma",
    "draw_sigma_factored",
    "draw_beta",
    "draw_missing",
    "scatter_missing",
]


def spd_inverse(a):
    """Inverse of SPD matrices (..., d, d) via the Cholesky factor: ``L^{-T} L^{-1}``."""
    return param_linalg.spd_inverse(a)


#: Summed extent from which :func:`cross_products` uses XLA's dot instead of a fused multiply-sum.
DOT_MIN_LENGTH = 4096


def cross_products(u, v, batch: int = 0):
    """``sum over the row axes of u[i] * v[j]``: u (a, ..., *B), v (b, ..., *B) -> (a, b, *B).

    The last ``batch`` axes are kept (broadcast between u and v), all others after the first are
    summed. Short sums are a broadcast multiply reduced in one fused loop: XLA's dot calls a matrix
    library at a fixed cost of several microseconds on CPU. Long sums (``DOT_MIN_LENGTH`` terms or
    more, no batch axes) use the dot, which is faster there and runs on several threads when
    chains are batched.
    """
    length = int(np.prod(u.shape[1 : u.ndim - batch], dtype=np.int64))
    if batch == 0 and length >= DOT_MIN_LENGTH:
        return u.reshape(u.shape[0], length) @ v.reshape(v.shape[0], length).T
    axes = tuple(range(2, u.ndim + 1 - batch))
    return jnp.sum(u[:, None] * v[None, :], axis=axes)


def gram(u, batch: int = 0):
    """``cross_products(u, u, batch)``; with batch axes only the ``i <= j`` entries are summed
    (one stacked multiply-and-sum, mirrored), which halves the work for the chains-innermost sweep."""
    if batch == 0:
        return cross_products(u, u)
    d = u.shape[0]
    pairs = [(i, j) for i in range(d) for j in range(i + 1)]
    products = jnp.stack([u[i] * u[j] for i, j in pairs])  # (d (d + 1) / 2, rows..., *B)
    sums = jnp.sum(products, axis=tuple(range(1, u.ndim - batch)))
    entry = {pair: sums[k] for k, pair in enumerate(pairs)}
    return jnp.stack([jnp.stack([entry[(max(i, j), min(i, j))] for j in range(d)]) for i in range(d)])


def _expand(a, batch: int):
    """``a`` with ``batch`` trailing singleton axes (a shared matrix against batched ones)."""
    return a.reshape(a.shape + (1,) * batch)


def _left_multiply(a, b, batch: int):
    """``a @ b`` for a shared (m, k) matrix and b (k, n, *B) with ``batch`` trailing axes."""
    if batch == 0:
        return param_linalg.matmul(a, b)
    out = _expand(a[:, 0], b.ndim - 1) * b[0][None]
    for k in range(1, a.shape[1]):
        out = out + _expand(a[:, k], b.ndim - 1) * b[k][None]
    return out


def linear_predictor(design, coef):
    """``sum_k design[k] * coef[k, t]`` for every column t: design (k, J, L), coef (k, t) -> (t, J, L).

    Written as broadcast products summed over the tiny k axis (one fused elementwise loop);
    XLA's dot with a contraction of length 1 or 2 is much slower on CPU.
    """
    out = design[0][None] * coef[0][:, None, None]
    for k in range(1, design.shape[0]):
        out = out + design[k][None] * coef[k][:, None, None]
    return out


def cluster_effects(z, b):
    """``Z_i b_i`` for every row: z (q, J, L), b (r q, J) -> (r, J, L) (trailing axes broadcast:
    z (q, J, L, 1), b (r q, J, C) -> (r, J, L, C))."""
    q = z.shape[0]
    bk = b.reshape((b.shape[0] // q, q) + b.shape[1:])  # (r, q, J, ...)
    # over whole (r, J, L) arrays: a stack of per-target results costs a transposing copy under vmap
    out = z[0][None] * bk[:, 0, :, None]
    for k in range(1, q):
        out = out + z[k][None] * bk[:, k, :, None]
    return out


def draw_random_effects(normals, eps, z, used, ztz, sigma_inv, psi_inv):
    """``vec(b_i) ~ N(Sb_i vec(Z_i^T eps_i Sigma^-1), Sb_i)``, ``Sb_i = (Sigma^-1 kron Z_i^T Z_i + Psi^-1)^-1``.

    Args:
        normals: (r q, J) standard normals.
        eps: (r, J, L) residuals ``y - X beta`` (rows not ``used`` are ignored).
        z: (q, J, L); used: (J, L) bool.
        ztz: (q, q, J) ``Z_i^T Z_i`` over used rows.
        sigma_inv: (r, r); psi_inv: (r q, r q).

    Returns:
        b: (r q, J).
    """
    q = z.shape[0]
    zu = jnp.where(used, z, 0.0)
    # one reduction per random effect over all targets at once: (r, J) each
    zte = tuple(jnp.sum(zu[k][None] * eps, axis=2) for k in range(q))
    return draw_random_effects_from_sums(normals, zte, ztz, sigma_inv, psi_inv)


def draw_random_effects_from_sums(normals, zte, ztz, sigma_inv, psi_inv):
    """:func:`draw_random_effects` given every cluster's ``Z_i^T eps_i``: ``zte`` q arrays (r, J)
    (row k: random effect k), trailing batch axes as the other arguments'."""
    return _posterior_draw_mapped(normals, tuple(zte), ztz, sigma_inv, psi_inv)[0]


def _posterior_draw_fn(normals, zte, ztz, sigma_inv, psi_inv):
    """The draw of :func:`draw_random_effects` from ``Z_i^T eps_i`` (``zte``: q arrays (r, J)):
    ``(b, diagonal of the precision's factor)`` (two results, see :func:`_posterior_draw`)."""
    r, q = zte[0].shape[0], len(zte)
    h = [None] * (r * q)
    for s in range(r):
        for k in range(q):
            h[s * q + k] = sum(zte[k][t] * sigma_inv[t, s] for t in range(r))
    prec = [[None] * (i + 1) for i in range(r * q)]
    for t in range(r):
        for k in range(q):
            i = t * q + k
            for s in range(t + 1):
                for l in range(q):
                    j = s * q + l
                    if j <= i:
                        prec[i][j] = sigma_inv[t, s] * ztz[k, l] + psi_inv[i, j]
    chol = linalg.chol_list(prec)
    w = linalg.solve_lower_list(chol, h)
    b = linalg.solve_upper_t_list(chol, [w[i] + normals[i] for i in range(r * q)])
    return jnp.stack(b), jnp.stack([chol[i][i] for i in range(r * q)])


#: The random effects' factorisation and solves as ONE compiled CPU kernel, up to 2^20 input values:
#: unrolled, the r q x r q factorisation is many small XLA kernels (82 of the ~200 of a sweep with 5
#: targets and a random slope), each costing tens of milliseconds to compile. Benchmark model (b),
#: same process, wrapped against not: one chain compiled 1.3-1.6 s faster with the sweep as fast;
#: 64 and 256 chains (1.6 and 6.4 million input values, one thread) compiled 0.9-1.1 s faster but
#: swept 4-6% slower (190.6 against 179.2 and 842.8 against 810.4 ms), hence the limit. Never a
#: vmapped call (chains or groups batched): 300 vmapped replications of two groups (the calibration
#: check), and 9 of 50 fuzzed shapes of vmapped chains, made XLA emit invalid LLVM IR for it;
#: under ``vmap``, :func:`_posterior_draw_mapped` calls it once per mapped index instead.
_posterior_draw = single_kernel(_posterior_draw_fn, groups=((0, 1, 2, 3, 4),), max_elements=2**20,
                               batched=False)


@jax.custom_batching.custom_vmap
def _posterior_draw_mapped(normals, zte, ztz, sigma_inv, psi_inv):
    """:func:`_posterior_draw` whose ``vmap`` (chains of the vmapped one-chain kernel, groups)
    is a ``lax.map``: one call per mapped index with one chain's (or group's) shapes, the
    compiled kernel of a single chain in a loop; nested ``vmap``s nest the loops. Unwrapped
    (XLA's thunks), the factorisation is 82 of the 242 loops of benchmark model (b)'s vmapped
    sweep. There, XLA's backend compile of a first call took 2.41-2.67 s with 8 to 256 chains
    against 3.17-3.42 s (``pan_speed.py --compile``, one run each, 2026-11-27 06:00 UTC); ms per
    iteration of 8 / 64 / 256 chains 8.7-10.4 / 114-130 / 373-483 against 7.2-14.1 / 84-127 /
    419-463 (three runs each, alternating processes: within the machine's noise); the same draws
    as one chain at a time, bit for bit. Fuzzed: 165 shapes (1-5 targets, 1-3 random effects,
    3-79 clusters, 2-281 chains, one or two groups), all compiled. Where single kernels are off,
    a plain ``vmap``. (Since 2026-11-27 09:00 chains of data of model (b)'s size loop over the
    one-chain kernel on a CPU instead, :func:`.pan_chains.loops`; this rule serves smaller data.)"""
    return _posterior_draw(normals, zte, ztz, sigma_inv, psi_inv)


@_posterior_draw_mapped.def_vmap
def _posterior_draw_map_rule(axis_size, in_batched, normals, zte, ztz, sigma_inv, psi_inv):
    args = (normals, zte, ztz, sigma_inv, psi_inv)
    leaves, tree = jax.tree_util.tree_flatten(args)
    flags = jax.tree_util.tree_leaves(in_batched)
    if not kernel_enabled():
        axes = jax.tree_util.tree_unflatten(tree, [0 if f else None for f in flags])
        return jax.vmap(_posterior_draw, in_axes=tuple(axes))(*args), (True, True)

    # under a further vmap (leaves batched by it) the map's body calls this rule again; else it calls
    # the kernel directly (a trace less of the factorisation)
    draw = _posterior_draw_mapped if any(is_batched(leaf) for leaf in leaves) else _posterior_draw

    def one(mapped):
        it = iter(mapped)
        full = [next(it) if f else leaf for leaf, f in zip(leaves, flags)]
        return draw(*jax.tree_util.tree_unflatten(tree, full))

    return jax.lax.map(one, [leaf for leaf, f in zip(leaves, flags) if f]), (True, True)


def psi_scale(b, cluster_mask, dinv, batch: int = 0):
    """Scale of Psi's inverse-Wishart conditional: ``Dinv + sum_i vec(b_i) vec(b_i)^T`` over real clusters
    (``batch`` trailing axes of b kept: (r q, J, C) -> (r q, r q, C))."""
    bm = jnp.where(cluster_mask, b, 0.0)
    return _expand(dinv, batch) + gram(bm, batch)


def sigma_scale(eps, x, used, xtx_inv, binv, batch: int = 0):
    """Scale of Sigma's conditional with beta integrated out, and ``beta_hat``.

    Args:
        eps: (r, J, L) ``y - Z b``; x: (p, J, L); used: (J, L) bool; xtx_inv: (p, p).
        batch: trailing batch axes of eps (x and used then carry singleton axes there).

    Returns:
        (``Binv + sum delta delta^T`` (r, r, *B), beta_hat (p, r, *B)).
    """
    xu = jnp.where(used, x, 0.0)
    beta_hat = _left_multiply(xtx_inv, cross_products(xu, eps, batch), batch)
    delta = jnp.where(used, eps - linear_predictor(x, beta_hat), 0.0)
    return _expand(binv, batch) + gram(delta, batch), beta_hat


def draw_psi(normals, uniforms, b, cluster_mask, n_clusters, c, dinv):
    """``Psi ~ IW(c + J, Dinv + sum_i vec(b_i) vec(b_i)^T)`` over real clusters.

    ``normals``/``uniforms``: flat, sizes ``linalg.bartlett_noise_size(r q)``.

    Returns:
        (psi (r q, r q), gamma_exhausted flag).
    """
    psi, _, _, exhausted = param_linalg.inverse_wishart(c + n_clusters, psi_scale(b, cluster_mask, dinv), normals, uniforms)
    return psi, exhausted


def draw_sigma(normals, uniforms, eps, x, used, xtx_inv, n_used, a, binv):
    """``Sigma ~ IW(a + n* - p, Binv + sum delta delta^T)`` with beta integrated out.

    Args:
        normals, uniforms: flat, sizes ``linalg.bartlett_noise_size(r)``.
        eps: (r, J, L) ``y - Z b``.
        x: (p, J, L); used: (J, L) bool; xtx_inv: (p, p).

    Returns:
        (sigma (r, r), beta_hat (p, r), gamma flag).
    """
    sigma, _, _, beta_hat, exhausted = draw_sigma_factored(normals, uniforms, eps, x, used, xtx_inv, n_used, a, binv)
    return sigma, beta_hat, exhausted


def draw_sigma_factored(normals, uniforms, eps, x, used, xtx_inv, n_used, a, binv):
    """:func:`draw_sigma` that also returns a square root ``T`` (``T T^T = Sigma``) and ``Sigma^{-1}``
    from the inverse-Wishart draw itself (no second factorisation).

    Returns:
        (sigma, root, sigma_inv, beta_hat, gamma flag).
    """
    scale, beta_hat = sigma_scale(eps, x, used, xtx_inv, binv)
    sigma, root, sigma_inv, exhausted = param_linalg.inverse_wishart(a + n_used - x.shape[0], scale, normals, uniforms)
    return sigma, root, sigma_inv, beta_hat, exhausted


def draw_beta(normals, beta_hat, xtx_chol_inv_t, sigma_root):
    """``vec(beta) ~ N(vec(beta_hat), Sigma kron (X^T X)^{-1})``; normals (p, r); ``sigma_root``
    any ``T`` with ``T T^T = Sigma`` (e.g. the Cholesky factor)."""
    mm = param_linalg.matmul
    return beta_hat + mm(mm(xtx_chol_inv_t, normals), sigma_root.T)


def draw_missing(normals, y_obs, obs, mean, sigma_inv, miss_index, miss_valid):
    """Missing targets from their normal distribution given the observed targets of the row.

    For each row, residuals ``e = y - mean`` follow N(0, Sigma); with precision ``Lambda`` the
    missing part has precision ``Lambda_mm`` and mean ``-Lambda_mm^{-1} Lambda_mo e_o``. Every row
    solves the r x r system ``A e = h`` with ``A = Lambda`` on the missing block and the identity
    elsewhere (its Cholesky factor keeps that block structure), and normals are drawn only for
    the missing cells (scattered through ``miss_index``).

    Args:
        normals: (M,) standard normals, one per missing-cell slot.
        y_obs: (r, J, L) observed data (anything in missing cells).
        obs: (r, J, L) bool.
        mean: (r, J, L) ``X beta + Z b``.
        sigma_inv: (r, r).
        miss_index: (M,) flat indices into (r * J * L), padded with ``r * J * L``.
        miss_valid: (M,) bool.

    Returns:
        y: (r, J, L) with observed cells equal to ``y_obs`` bit for bit.
    """
    r = y_obs.shape[0]
    e_obs = [jnp.where(obs[t], y_obs[t] - mean[t], 0.0) for t in range(r)]
    # masks as nested selects on ``obs`` itself: ``~obs[t]`` and ``miss[i] & miss[j]`` became one
    # small XLA kernel each (15 of a sweep's ~240 for 5 targets), to compile and to run every sweep
    a = [[None] * (i + 1) for i in range(r)]
    for i in range(r):
        for j in range(i):
            a[i][j] = jnp.where(obs[i], 0.0, jnp.where(obs[j], 0.0, sigma_inv[i, j]))
        a[i][i] = jnp.where(obs[i], 1.0, sigma_inv[i, i])
    h = []
    for i in range(r):
        s = sigma_inv[i, 0] * e_obs[0]
        for j in range(1, r):
            s = s + sigma_inv[i, j] * e_obs[j]
        h.append(jnp.where(obs[i], 0.0, -s))
    noise = scatter_missing(normals, y_obs.shape, miss_index, miss_valid)
    chol = linalg.chol_list(a)
    w = linalg.solve_lower_list(chol, h)
    e_mis = linalg.solve_upper_t_list(chol, [w[i] + noise[i] for i in range(r)])
    return jnp.where(obs, y_obs, mean + jnp.stack(e_mis))


def scatter_missing(normals, shape, miss_index, miss_valid):
    """The missing-cell normals (M,) placed in an (r, J, L) grid ``shape`` (zeros elsewhere)."""
    normals = jnp.where(miss_valid, normals, 0.0)
    size = int(np.prod(shape, dtype=np.int64))
    noise = jnp.zeros(size + 1, normals.dtype).at[miss_index].set(normals)
    return noise[:-1].reshape(shape)
