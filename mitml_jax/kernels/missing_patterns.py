"""Missing targets drawn through per-pattern coefficients (pan's step 5 without per-row factorisations).

A row's missing targets given its observed ones depend on the row only through its residuals
``e = y - mean`` and its missingness pattern. With precision ``Lambda = Sigma^{-1}`` and ``A`` equal
to ``Lambda`` on the missing block and the identity elsewhere (``A = L L^T``):
``e_mis = A^{-1} H e + L^{-T} z`` with ``H = -Lambda`` restricted to (missing rows, observed
columns) and ``z`` standard normals in the missing cells (:func:`conditionals.draw_missing`
solves the same system row by row).

A data set has few distinct patterns (at most ``2^r``, usually a handful), so ``B = A^{-1} H``
and ``S = L^{-T}`` are computed once per pattern (a (K,) batch of r x r problems per chain) and
every row picks its pattern's entries with a select on its pattern number. What is left per row is
multiply-adds and selects, which XLA fuses into one loop per target: no square roots or divisions
per row, and no intermediate (J, L) arrays between fusions (which made the per-row version cost
about 1.6 ms of a 3.8 ms sweep at 64 chains, memory traffic once the chains' arrays leave the cache).

:func:`row_patterns` finds the patterns on the host (:func:`kernels.pan.prepare_pan_arrays`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import conditionals as cond
from . import linalg

__all__ = ["MAX_PATTERNS", "MAX_TARGETS", "MIN_BATCH", "draw_missing", "row_patterns", "pattern_coefficients", "coefficients_finite",
           "draw_missing_patterns"]

#: Most distinct patterns (per group, padded to the largest group) for which the per-pattern draw is used.
#: Every row selects its coefficients through a chain of K - 1 selects (about 2 r (K - 1) per row):
#: with 32 patterns of 5 targets (benchmark model (b)) that was twice as slow as the row-by-row draw.
MAX_PATTERNS = 8
#: Smallest vmap batch (chains) for which :func:`draw_missing` uses the per-pattern draw: its per-pattern
#: algebra is several dozen tiny XLA operations, a fixed cost that one chain does not recover
#: (one chain of benchmark model (a): about 0.085 ms per sweep against 0.055 ms row by row).
MIN_BATCH = 4
#: Most targets for which the per-pattern draw is used (its per-row work grows as r^2 K).
MAX_TARGETS = 8


def row_patterns(obs, max_patterns: int = MAX_PATTERNS):
    """Missingness patterns per group: ``(pattern_miss (G, K, r) bool, row_pattern (G, J, L) int32)``.

    ``pattern_miss[g, k, t]`` is True where target t is missing in pattern k of group g; rows
    (padding included) hold the number of their pattern. Pattern 0 is "nothing missing" in every
    group (padded rows use it; groups with fewer patterns repeat it). Returns ``(None, None)``
    when there are more than ``max_patterns`` patterns or :data:`MAX_TARGETS` targets.
    """
    obs = np.asarray(obs, bool)  # (G, r, J, L)
    n_groups, r = obs.shape[:2]
    if r > MAX_TARGETS:
        return None, None
    weights = (1 << np.arange(r, dtype=np.int64))[:, None, None]
    code = ((~obs) * weights).sum(axis=1)  # (G, J, L), 0 = nothing missing
    per_group = [np.unique(np.r_[0, code[g].ravel()]) for g in range(n_groups)]  # host, G is small
    n_patterns = max(len(u) for u in per_group)
    if n_patterns > max_patterns:
        return None, None
    codes = np.zeros((n_groups, n_patterns), np.int64)
    row_pattern = np.zeros(code.shape, np.int32)
    for g, u in enumerate(per_group):
        codes[g, : len(u)] = u
        row_pattern[g] = np.searchsorted(u, code[g])
    pattern_miss = (codes[:, :, None] >> np.arange(r)) & 1 == 1
    return pattern_miss, row_pattern


def pattern_coefficients(sigma_inv, pattern_miss):
    """``(B, S)`` per pattern, each a nested list ``[t][j]`` of (K,) arrays (None where always zero).

    ``B[t][j]`` multiplies the residual of observed target j in the mean of missing target t;
    ``S[t][j]`` (j >= t) multiplies the normal of missing cell j in the draw of target t.

    Args:
        sigma_inv: (r, r) precision of the level-1 residuals, or (r, r, *B) with trailing batch
            axes (e.g. chains): the coefficients are then (K, *B) arrays.
        pattern_miss: (K, r) bool.
    """
    r = sigma_inv.shape[0]
    trailing = (1,) * (sigma_inv.ndim - 2)
    miss = pattern_miss.reshape(pattern_miss.shape + trailing)  # (K, r, *1)
    m = [miss[:, t] for t in range(r)]
    # the pair masks as two arrays: one small XLA kernel each, not one per pair
    both = miss[:, :, None] & miss[:, None, :]  # (K, r, r, *1): i and j missing
    cross = miss[:, :, None] & ~miss[:, None, :]  # i missing, j observed
    a = [[None] * (i + 1) for i in range(r)]
    for i in range(r):
        for j in range(i):
            a[i][j] = jnp.where(both[:, i, j], sigma_inv[i, j], 0.0)
        a[i][i] = jnp.where(m[i], sigma_inv[i, i], 1.0)
    # A^{-1} = L^{-T} L^{-1} from the entries of L^{-1}, then B = -A^{-1} Lambda_mo: about half
    # the small arrays (each its own XLA kernel to compile) of solving L w = e_j for every j and
    # L L^T x = h_j for every observed column j
    l_inv = linalg.inv_lower_list(linalg.chol_list(a))  # l_inv[i][j] = (L^-1)_ij, j <= i
    s = [[l_inv[j][t] if j >= t else None for j in range(r)] for t in range(r)]  # (L^-T)_tj = (L^-1)_jt
    a_inv = {}
    for t in range(r):
        for i in range(t + 1):
            total = l_inv[t][t] * l_inv[t][i]
            for k in range(t + 1, r):
                total = total + l_inv[k][t] * l_inv[k][i]
            a_inv[(t, i)] = a_inv[(i, t)] = total
    b = [[None] * r for _ in range(r)]
    for t in range(r):
        for j in range(r):
            if t != j:
                # -sum_i A^{-1}_ti Lambda_ij over missing i, observed j (0 unless t is missing: A^{-1}
                # is the identity outside the missing block)
                total = sum(a_inv[(t, i)] * jnp.where(cross[:, i, j], sigma_inv[i, j], 0.0) for i in range(r))
                b[t][j] = -total
    return b, s


def coefficients_finite(sigma_inv, pattern_miss, coefficients=None):
    """True when every coefficient of :func:`pattern_coefficients` is finite: a scalar, or (*B,)
    flags for trailing batch axes of ``sigma_inv``.

    ``coefficients``: the ``(B, S)`` the draw uses, when the caller has them. Pass them: XLA did
    not merge a second computation of the coefficients with the first (about 25 more small
    kernels to compile, a fifth of the sweep's, for benchmark model (a) at 8 and 64 chains).
    """
    b, s = pattern_coefficients(sigma_inv, pattern_miss) if coefficients is None else coefficients
    entries = jnp.stack([e for rows in (b, s) for row in rows for e in row if e is not None])
    return jnp.all(jnp.isfinite(entries), axis=tuple(range(entries.ndim - (sigma_inv.ndim - 2))))


def _pick(row_pattern, values):
    """Every row's entry: values (r, K) -> (r, J, L) (a select chain XLA fuses into its consumer)."""
    shape = values.shape[:1] + row_pattern.shape
    out = jnp.broadcast_to(values[:, 0, None, None], shape)
    for k in range(1, values.shape[1]):
        out = jnp.where(row_pattern == k, values[:, k, None, None], out)
    return out


def _column(entries, j, like):
    """Column j of a nested ``[t][j]`` list of (K,) arrays as an (r, K) array (zeros for None)."""
    return jnp.stack([entries[t][j] if entries[t][j] is not None else jnp.zeros_like(like) for t in range(len(entries))])


def draw_missing_patterns(noise, y_obs, obs, mean, sigma_inv, pattern_miss, row_pattern, coefficients=None):
    """Missing targets from their conditional normal given the row's observed targets.

    Written over whole (r, J, L) arrays (target axis included), so the draw is one fused loop
    that writes the new ``y`` directly (a stack of per-target results became a slow
    concatenate-and-transpose fusion on CPU).

    Args:
        noise: (r, J, L) standard normals in the missing cells (zeros elsewhere).
        y_obs: (r, J, L) observed data, 0 in missing cells.
        obs: (r, J, L) bool.
        mean: (r, J, L) ``X beta + Z b``.
        sigma_inv: (r, r).
        pattern_miss: (K, r) bool; row_pattern: (J, L) int32 (see :func:`row_patterns`).
        coefficients: optional ``pattern_coefficients(sigma_inv, pattern_miss)``, if computed already.

    Returns:
        y: (r, J, L) with observed cells equal to ``y_obs`` bit for bit.
    """
    r = y_obs.shape[0]
    b, s = pattern_coefficients(sigma_inv, pattern_miss) if coefficients is None else coefficients
    like = b[1][0] if r > 1 else s[0][0]
    e = y_obs - mean  # B[t][j] is 0 where j is missing, so e_j needs no mask
    v = mean
    for j in range(r):
        if r > 1:
            v = v + _pick(row_pattern, _column(b, j, like)) * e[j][None]
        v = v + _pick(row_pattern, _column(s, j, like)) * noise[j][None]
    return jnp.where(obs, y_obs, v)


def _row_draw(normals, y_obs, obs, mean, sigma_inv, miss_index, miss_valid, pattern_miss, row_pattern):
    y = cond.draw_missing(normals, y_obs, obs, mean, sigma_inv, miss_index, miss_valid)
    # as in _pattern_draw, the inputs are checked instead of y (a check of y duplicated the draw's
    # last loops); a precision that is finite but numerically not positive definite on a missing
    # block would show up one sweep later, in the random effects
    return y, jnp.all(jnp.isfinite(sigma_inv))


def _pattern_draw(normals, y_obs, obs, mean, sigma_inv, miss_index, miss_valid, pattern_miss, row_pattern):
    grid = cond.scatter_missing(normals, y_obs.shape, miss_index, miss_valid)
    coefficients = pattern_coefficients(sigma_inv, pattern_miss)
    y = draw_missing_patterns(grid, y_obs, obs, mean, sigma_inv, pattern_miss, row_pattern, coefficients)
    # y is an affine function of finite data, the mean, the coefficients and the normals, so the
    # coefficients are checked instead of y: a check of y made XLA fuse the whole draw a second
    # time into the check (a second draw every sweep); the caller checks the mean's inputs
    return y, coefficients_finite(sigma_inv, pattern_miss, coefficients)


@jax.custom_batching.custom_vmap
def draw_missing(normals, y_obs, obs, mean, sigma_inv, miss_index, miss_valid, pattern_miss, row_pattern):
    """Missing targets of one group of one chain: row by row (:func:`conditionals.draw_missing`),
    or through the per-pattern coefficients when chains are batched.

    The kernel vmaps over groups inside and ``run_chains`` over chains outside. The first vmap
    met (groups) only records its axes; the choice is made at the next one (chains): per-pattern
    when that batch has at least :data:`MIN_BATCH` members, else row by row (no second vmap: row
    by row). Both ways give the same numbers up to rounding.

    Arguments as :func:`conditionals.draw_missing` plus ``pattern_miss`` and ``row_pattern`` of
    :func:`row_patterns`.

    Returns:
        (y (r, J, L), finite): ``finite`` is False when the draw can hold NaN or infinite values
        (non-finite precision or coefficients; the mean's inputs are the caller's to check).
    """
    return _row_draw(normals, y_obs, obs, mean, sigma_inv, miss_index, miss_valid, pattern_miss, row_pattern)


@draw_missing.def_vmap
def _draw_missing_vmap(axis_size, in_batched, *args):
    return _batched(tuple(0 if batched else None for batched in in_batched))(*args), (True, True)


@functools.lru_cache(maxsize=None)
def _batched(axes):
    """:func:`draw_missing` vmapped with ``in_axes=axes``, deciding its way at the next vmap."""

    @jax.custom_batching.custom_vmap
    def draw(*args):
        return jax.vmap(_row_draw, in_axes=axes)(*args)

    @draw.def_vmap
    def draw_vmap(axis_size, in_batched, *args):
        fn = jax.vmap(_pattern_draw if axis_size >= MIN_BATCH else _row_draw, in_axes=axes)
        out = jax.vmap(fn, in_axes=tuple(0 if batched else None for batched in in_batched))(*args)
        return out, (True, True)

    return draw
