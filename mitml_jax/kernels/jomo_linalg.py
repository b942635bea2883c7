"""Small dense draws used by the jomo sweeps: Wishart / inverse-Wishart, conditional normals.

Thin layer over pan's :mod:`mitml_jax.kernels.linalg` (unrolled small-matrix Cholesky and
triangular solves, Bartlett draws with a fixed number of gamma proposals), plus the
pattern-wise conditional-normal draws of missing values. Pure JAX; works under ``vmap``/``scan``.

Why not :mod:`.param_linalg` (pan's parameter-matrix algebra, the same arithmetic: ``chol``,
``spd_inverse`` and ``inverse_wishart_from_noise`` agree with ``param_linalg.chol``,
``spd_inverse`` and ``inverse_wishart(...)[0]`` to rounding, at most 4e-16 relative for d <= 6,
and ``small_matmul`` with ``param_linalg.matmul`` exactly; checked 2026-11-26):

* dimension: ``param_linalg`` calls LAPACK above 4 x 4 because pan factorises one or two
  matrices per chain. jomo factorises the same way batches of matrices: the cluster covariances of
  ``random_L1`` (J of them per chain, :mod:`.random_l1`), the per-pattern blocks of the
  conditional draws and the per-cluster precisions of the random effects. A batched LAPACK call
  factorises one matrix after the other (about 75 ns per 3 x 3 matrix against 8 ns unrolled,
  ``spec/performance-notes.md``), so these functions stay unrolled up to ``linalg.UNROLL_MAX``;
* assembly: :func:`chol`, :func:`spd_inverse` and :func:`inverse_wishart_from_noise` keep the
  entries as lists and stack them once; ``param_linalg`` builds its factors column by column.
  Swapped into the sweep of the Level-2 vignette model (one chain, CPU time per sweep pinned to
  one core, one process, load ~4): ``param_linalg.chol`` +8 us, ``spd_inverse`` +5.5 us of 95 us;
* :func:`small_matmul` sums the ``k`` products by a chain of adds, which XLA fuses into the
  surrounding elementwise loop; ``param_linalg.matmul`` reduces over an axis (a separate reduce
  loop on CPU), and only ``small_matmul`` accepts a vector ``b`` (falls back to ``@``). Same
  numbers; in the sweep above +2 us with ``param_linalg.matmul`` (within the noise).

Conventions: ``X ~ IW(df, S)`` means ``X^-1 ~ Wishart(df, S^-1)``, which is how jomo's C code
reads its updates (``Psi^-1 ~ W(J + dim, (sum u u' + Dinv)^-1)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import linalg as la

__all__ = [
    "small_matmul",
    "entries",
    "stack_entries",
    "chol_and_inverse",
    "cross_product",
    "chol",
    "spd_inverse",
    "logdet_from_chol",
    "inverse_wishart",
    "wishart",
    "wishart_noise_size",
    "wishart_from_noise",
    "inverse_wishart_from_noise",
    "chol_solve",
    "conditional_normal_draw",
    "conditional_normal_from_noise",
    "draw_missing_rows",
    "pattern_matrices",
    "pattern_inverse_factors",
    "draw_missing_rows_factored",
    "rows_of",
    "set_columns",
    "sum_over_rows",
]

#: Padded cluster sizes up to this are summed by an unrolled chain of adds (see sum_over_rows).
UNROLL_ROWS = 32

#: Matrix products contracting at most this many terms are unrolled (see small_matmul).
UNROLL_CONTRACTION = 8

def chol(a):
    """Lower Cholesky factor of SPD matrices (..., d, d): :func:`..linalg.chol`'s arithmetic,
    stacked once from lists of entries."""
    if a.shape[-1] > la.UNROLL_MAX:
        return la.chol(a)
    return stack_entries(la.chol_list(entries(a)))


def small_matmul(a, b):
    """``a @ b`` (batch dimensions broadcast) as elementwise products and an unrolled sum.

    On CPU every ``dot`` is a library call (and XLA hands dots of a few hundred rows to two
    threads); products that contract a handful of terms are cheaper fused into the surrounding
    elementwise loop. Falls back to ``@`` above ``UNROLL_CONTRACTION`` terms.
    """
    k = a.shape[-1]
    if k > UNROLL_CONTRACTION or b.ndim < 2:
        return a @ b
    total = a[..., :, 0, None] * b[..., None, 0, :]
    for i in range(1, k):
        total = total + a[..., :, i, None] * b[..., None, i, :]
    return total


def cross_product(a, b=None):
    """``a' b`` for tall ``a`` (n, p) and ``b`` (n, m) (default ``b = a``) as one reduction over
    the rows (no library ``dot``)."""
    b = a if b is None else b
    return (a[:, :, None] * b[:, None, :]).sum(axis=0)


def entries(a):
    """Nested lists ``e[i][j] = a[..., i, j]`` of a (..., d, d) array (structure of arrays)."""
    d = a.shape[-1]
    return [[a[..., i, j] for j in range(d)] for i in range(d)]


def stack_entries(e):
    """The (..., d, d) array of nested lists ``e`` (``None`` entries are zeros), in one stack."""
    d = len(e)
    ref = next(x for row in e for x in row if x is not None)
    zero = jnp.zeros_like(ref)
    flat = [e[i][j] if j < len(e[i]) and e[i][j] is not None else zero
            for i in range(d) for j in range(d)]
    return jnp.stack(flat, axis=-1).reshape(ref.shape + (d, d))


def spd_inverse(a):
    """Inverse of symmetric positive definite matrices (..., d, d) via the unrolled Cholesky,
    kept as lists of entries until one final stack (exactly symmetric)."""
    return chol_and_inverse(a)[1]


def chol_and_inverse(a):
    """``(chol(a), spd_inverse(a))`` of SPD matrices (..., d, d) from one factorisation."""
    if a.shape[-1] > la.UNROLL_MAX:
        factor = la.chol(a)
        li = la.inv_lower(factor)
        return factor, jnp.swapaxes(li, -1, -2) @ li
    l = la.chol_list(entries(a))
    li = stack_entries(la.inv_lower_list(l))
    return stack_entries(l), small_matmul(jnp.swapaxes(li, -1, -2), li)


def logdet_from_chol(l):
    """``log|A|`` from the lower Cholesky factor of ``A`` (..., d, d)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(l, axis1=-2, axis2=-1)), axis=-1)


def wishart(key, df, scale):
    """One draw of Wishart(df, scale) (mean ``df * scale``)."""
    return la.draw_wishart(key, df, la.chol(scale))[0]


def inverse_wishart(key, df, scale):
    """One draw of IW(df, scale): the inverse of a Wishart(df, scale^-1) draw."""
    return la.draw_inverse_wishart(key, df, scale)[0]


def wishart_noise_size(d: int) -> tuple:
    """(normals, uniforms) one (inverse) Wishart draw of dimension ``d`` consumes."""
    return la.bartlett_noise_size(d)


def wishart_from_noise(df, scale, normals, uniforms):
    """Wishart(df, scale) from flat noise of :func:`wishart_noise_size` (mean ``df * scale``)."""
    d = scale.shape[-1]
    if d > la.UNROLL_MAX:
        bartlett = la.bartlett_from_noise(df, d, normals, uniforms)[0]
    else:  # the same matrix without the scatter of the below-diagonal normals
        bartlett = stack_entries(_bartlett_entries(df, d, normals, uniforms))
    factor = small_matmul(la.chol(scale), bartlett)
    return la.symmetrize(small_matmul(factor, factor.T))


def inverse_wishart_from_noise(df, scale, normals, uniforms):
    """IW(df, scale) (the inverse of a Wishart(df, scale^-1) draw) from flat noise.

    :func:`..linalg.inverse_wishart_from_noise` (same numbers) with its products unrolled:
    with ``S = C C'`` and Bartlett ``A``, ``X = (C A^-T)(C A^-T)'``.
    """
    d = scale.shape[-1]
    if d > la.UNROLL_MAX:
        a = la.bartlett_from_noise(df, d, normals, uniforms)[0]
        t = la.chol(scale) @ jnp.swapaxes(la.inv_lower(a), -1, -2)
        return la.symmetrize(t @ jnp.swapaxes(t, -1, -2))
    a_inv = stack_entries(la.inv_lower_list(_bartlett_entries(df, d, normals, uniforms)))
    t = small_matmul(chol(scale), jnp.swapaxes(a_inv, -1, -2))
    return la.symmetrize(small_matmul(t, jnp.swapaxes(t, -1, -2)))


def _bartlett_entries(df, d: int, normals, uniforms):
    """:func:`..linalg.bartlett_from_noise` (same noise, same numbers) as lower entries lists:
    ``A_ii = sqrt(chi2(df - i))``, ``A_ij`` the trailing normals row by row (no scatter)."""
    n_prop = la.GAMMA_PROPOSALS
    dfs = jnp.asarray(df, normals.dtype) - jnp.arange(d, dtype=normals.dtype)
    g, _ = la.gamma_from_noise(0.5 * dfs, normals[: n_prop * d].reshape(n_prop, d),
                               uniforms.reshape(n_prop + 1, d))
    diag = jnp.sqrt(2.0 * g)
    below = normals[n_prop * d:]
    rows, cols = np.tril_indices(d, -1)
    out = [[None] * (i + 1) for i in range(d)]
    for i in range(d):
        out[i][i] = diag[i]
    for n, (i, j) in enumerate(zip(rows, cols)):
        out[i][j] = below[n]
    return out


def sum_over_rows(x):
    """``x.sum(axis=1)`` for per-cluster row products ``x`` (J, L, ...).

    For small ``L`` as an unrolled chain of adds, which XLA fuses with the products into one
    elementwise loop; as a reduction, XLA's CPU backend hands such tiny per-cluster sums to a
    library kernel that costs several times more.
    """
    n_rows = x.shape[1]
    if n_rows > UNROLL_ROWS:
        return x.sum(axis=1)
    total = x[:, 0]
    for row in range(1, n_rows):
        total = total + x[:, row]
    return total


def chol_solve(l, b):
    """Solve ``(L L') X = B`` for a lower factor ``l`` (d, d) and ``B`` (d, m) (or (..., d, m))."""
    return jnp.swapaxes(la.cho_solve(l[..., None, :, :], jnp.swapaxes(b, -1, -2)), -1, -2)


def pattern_matrices(cov, patterns):
    """Per-pattern conditional-normal matrices of N(0, cov).

    Args:
        cov: (d, d) covariance.
        patterns: (P, d) boolean, True = missing coordinate.

    Returns:
        ``(prec, minv, chol)``: ``prec = cov^-1`` (d, d); ``minv`` (P, d, d) holds ``(Lambda_mm)^-1`` on the missing block and
        the identity elsewhere (``Lambda = cov^-1``), ``chol`` (P, d, d) its Cholesky factor. For a vector with
        deviation ``dev`` from its mean, the missing part given the observed part is
        ``mean_m - minv (m * (Lambda (o * dev)))`` plus ``chol @ z`` on the missing coordinates.
    """
    d = cov.shape[-1]
    prec = spd_inverse(cov)
    m = patterns.astype(cov.dtype)
    mm = m[:, :, None] * m[:, None, :]
    eye = jnp.eye(d, dtype=cov.dtype)
    block = prec[None] * mm + eye[None] * (1.0 - m)[:, :, None]
    minv = la.symmetrize(spd_inverse(block))
    return prec, minv, la.chol(minv)


def conditional_normal_draw(key, values, means, cov, patterns, pattern_id):
    """Draw the missing coordinates of each row from N(means, cov) given its observed ones.

    Args:
        key: PRNG key.
        values: (N, d) current values (missing coordinates are ignored).
        means: (N, d) means.
        cov: (d, d) covariance shared by all rows.
        patterns: (P, d) boolean missingness patterns (True = missing).
        pattern_id: (N,) int index into ``patterns``.

    Returns:
        (N, d) values with the missing coordinates redrawn and the observed ones unchanged.
    """
    z = jax.random.normal(key, values.shape, dtype=values.dtype)
    return conditional_normal_from_noise(z, values, means, cov, patterns, pattern_id)


def conditional_normal_from_noise(normals, values, means, cov, patterns, pattern_id, prec=None):
    """:func:`conditional_normal_draw` given standard normals (N, d); ``prec`` is ``cov^-1``
    when the caller has it (see :func:`draw_missing_rows_factored`)."""
    prec = spd_inverse(cov) if prec is None else prec
    li = pattern_inverse_factors(prec, patterns)
    return draw_missing_rows_factored(normals, values, means, prec, rows_of(li, pattern_id),
                                      patterns[pattern_id])


def set_columns(a, pos: int, block):
    """``a.at[..., pos : pos + k].set(block)`` as a concatenation (no scatter in the sweep: see
    :mod:`.kernel_call`)."""
    return jnp.concatenate([a[..., :pos], block, a[..., pos + block.shape[-1] :]], axis=-1)


#: Tables of up to this many rows are read by a chain of selects in :func:`rows_of`.
SELECT_ROWS_MAX = 16


def rows_of(table, index):
    """``table[index]`` for a small table of per-pattern matrices (P, ...) and many rows' indices
    (N,), as a chain of selects (one per table row) over the flattened entries.

    The values are ``table[index]`` exactly. Neither a gather nor a product: XLA's gather of
    (N, d, d) entries is an element-by-element loop on CPU, and the product of one-hot indicators
    with the table (one library matmul, 0.92-0.93 times the gather's CPU time in the Level-2
    vignette model's sweep, 206 rows x 7 patterns of 3 x 3) keeps the sweep from being compiled
    as one kernel (:mod:`.kernel_call`), where the select chain fuses into its consumers.
    Tables of more than ``SELECT_ROWS_MAX`` rows are gathered.
    """
    n_patterns = table.shape[0]
    if n_patterns > SELECT_ROWS_MAX:
        return table[index]
    flat = table.reshape(n_patterns, -1)
    out = jnp.broadcast_to(flat[0], index.shape + flat.shape[1:])
    for p in range(1, n_patterns):
        out = jnp.where((index == p)[:, None], flat[p], out)
    return out.reshape(index.shape + table.shape[1:])


def pattern_inverse_factors(prec, patterns):
    """``L^-1`` (P, d, d) for ``L`` the lower Cholesky factor of each pattern's block
    ``Lambda_mm`` of the precision ``prec`` (d, d), padded with the identity on the observed
    coordinates (so ``L^-T L^-1`` is :func:`pattern_matrices`' ``minv``)."""
    d = prec.shape[-1]
    m = patterns.astype(prec.dtype)
    block = prec[None] * (m[:, :, None] * m[:, None, :]) + jnp.eye(d, dtype=prec.dtype) * (1.0 - m)[
        :, :, None]
    if d > la.UNROLL_MAX:
        return la.inv_lower(la.chol(block))
    return stack_entries(la.inv_lower_list(la.chol_list(entries(block))))


def draw_missing_rows_factored(normals, values, means, prec, li_rows, miss):
    """Conditional-normal draw of the missing coordinates from per-row ``L^-1`` factors.

    With ``t = m * (Lambda (o * dev))`` the missing part is ``mean_m - L^-T L^-1 t + L^-T z``:
    the law of :func:`draw_missing_rows` (covariance ``L^-T L^-1 = Lambda_mm^-1``) with one
    factorisation per pattern instead of two. ``prec`` (d, d) shared; ``li_rows`` (N, d, d) from
    :func:`pattern_inverse_factors`; ``miss`` (N, d) boolean.
    """
    m = miss.astype(values.dtype)
    t = small_matmul((values - means) * (1.0 - m), prec) * m
    w = normals * m - _rows_matvec(li_rows, t)
    draw = means + _rows_matvec(li_rows, w, transpose=True)
    return jnp.where(miss, draw, values)


def _rows_matvec(mats, vecs, transpose=False):
    """Per-row ``mats @ vecs`` (or ``mats' @ vecs``) for (N, d, d) x (N, d), the sum unrolled
    over the small ``d`` (elementwise; a reduction over a size-d axis is a slower loop on CPU)."""
    d = vecs.shape[-1]
    cols = [mats[..., k, :] if transpose else mats[..., :, k] for k in range(d)]
    total = cols[0] * vecs[..., 0, None]
    for k in range(1, d):
        total = total + cols[k] * vecs[..., k, None]
    return total


def _matvec(mats, vecs):
    """Per-row ``mats @ vecs`` for tiny (N, d, d) x (N, d) as broadcast + sum (a batched dot of
    d x d matrices is dispatched matrix by matrix on CPU)."""
    return (mats * vecs[..., None, :]).sum(axis=-1)


def draw_missing_rows(normals, values, means, prec, minv_rows, chol_rows, miss):
    """Conditional-normal draw of the missing coordinates with per-row pattern matrices.

    ``normals`` (N, d) standard normals; ``prec`` is (d, d) or per row (N, d, d);
    ``minv_rows``/``chol_rows`` (N, d, d) come from :func:`pattern_matrices`; ``miss`` (N, d) boolean.
    """
    m = miss.astype(values.dtype)
    dev = (values - means) * (1.0 - m)
    if prec.ndim == 2:
        t = small_matmul(dev, prec) * m
    else:
        t = _matvec(prec, dev) * m
    shift = -_matvec(minv_rows, t)
    z = normals
    noise = _matvec(chol_rows, z * m)
    draw = means + shift + noise
    return jnp.where(miss, draw, values)
