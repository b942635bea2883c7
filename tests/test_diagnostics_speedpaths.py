"""The fast paths of the rank diagnostics equal their plain definitions.

* folded ranks by merging the two halves of the sorted draws (with exact order restored where
  the packed keys agree, ties averaged) equal scipy's average ranks of ``|x - median|``;
* tail ESS from the positions of the indicator's ones equals the ESS of the dense indicator;
* direct lag sums equal their definition.
"""

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import rankdata

from mitml_jax.diagnostics import ess_geyer
from mitml_jax.diagnostics.ess_geyer import ess_core, ess_indicator, lag_sums
from mitml_jax.diagnostics.rank_normal import folded_chain_sums, sort_order, z_table


def _folded_reference(v, n):
    out_s, out_q = [], []
    for row in v:
        size = row.size
        z = ndtri((rankdata(np.abs(row - np.median(row))) - 0.375) / (size + 0.25))
        z = z.reshape(size // n, n)
        out_s.append(z.sum(axis=1))
        out_q.append((z * z).sum(axis=1))
    return np.array(out_s), np.array(out_q)


def _hard_rows(rng, size):
    """Rows with near-equal folded values (below the packed keys' bits), ties and signed zeros."""
    rows = []
    base = rng.standard_normal(size)
    rows.append(base)
    near = 1.0 + rng.integers(0, 6, size=size) * 1e-13  # agree in the kept bits
    near[: size // 2] = -near[: size // 2]  # mirrored around a median near 0
    rows.append(near)
    tied = np.round(rng.standard_normal(size) * 3)  # many exact ties on both sides
    rows.append(tied)
    zeros = rng.standard_normal(size)
    zeros[: size // 4] = 0.0
    zeros[size // 4 : size // 3] = -0.0
    rows.append(zeros)
    offset = 489.0 + 1e-9 * rng.integers(0, 50, size=size)  # large mean, tiny spread
    rows.append(offset)
    return np.array(rows)


@pytest.mark.parametrize("m, n", [(8, 250), (6, 31), (2, 3)])
def test_folded_chain_sums_equal_average_ranks(m, n):
    rng = np.random.default_rng(m * 100 + n)
    v = _hard_rows(rng, m * n)
    order, s = sort_order(v)
    sums, squares = folded_chain_sums(v, s, order, n, z_table(m * n))
    ref_s, ref_q = _folded_reference(v, n)
    np.testing.assert_allclose(sums, ref_s, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(squares, ref_q.sum(axis=1), rtol=1e-12)


def test_folded_chain_sums_odd_total():
    rng = np.random.default_rng(4)
    v = _hard_rows(rng, 3 * 41)
    order, s = sort_order(v)
    sums, squares = folded_chain_sums(v, s, order, 41, z_table(3 * 41))
    ref_s, ref_q = _folded_reference(v, 41)
    np.testing.assert_allclose(sums, ref_s, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(squares, ref_q.sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("lags", [2, 4, 16, 1000])
def test_ess_indicator_equals_dense(monkeypatch, lags):
    monkeypatch.setattr(ess_geyer, "_DIRECT_LAGS", lags)
    rng = np.random.default_rng(lags)
    m, n = 6, 120
    rows, dense = [], []
    for p, phi in [(0.05, 0.0), (0.05, 0.9), (0.5, 0.7), (0.95, 0.3), (0.0, 0.0), (1.0, 0.0)]:
        e = rng.standard_normal((m, n))
        y = np.empty_like(e)
        y[:, 0] = e[:, 0]
        for t in range(1, n):
            y[:, t] = phi * y[:, t - 1] + np.sqrt(1 - phi**2) * e[:, t]
        ind = y <= np.quantile(y, p) if 0 < p < 1 else np.full((m, n), p == 1.0)
        ind[0, :3] = True  # ones at the chain boundaries
        ind[1, -3:] = True
        if p in (0.0, 1.0):
            ind[:] = p == 1.0
        dense.append(ind.astype(float))
        rows.append(np.flatnonzero(ind.ravel()))
    got = ess_indicator(rows, m, n)
    ref = ess_core(np.array(dense))
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert got[-1] == got[-2] == m * n  # constant indicators


def test_lag_sums_definition():
    rng = np.random.default_rng(2)
    y = rng.standard_normal((3, 5, 40))
    got = lag_sums(y, 7)
    ref = np.array([[np.sum(y[k, :, : 40 - lag] * y[k, :, lag:]) for lag in range(7)]
                    for k in range(3)])
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("size", [2000, 93])
def test_sort_order_ties_from_keys_equal_average_ranks(size):
    from mitml_jax.diagnostics.rank_normal import z_scatter

    rng = np.random.default_rng(size)
    v = _hard_rows(rng, size)
    v[0, :5] = [0.0, -0.0, 0.0, -0.0, 1e-300]  # signed zeros tie; a denormal-free tiny value
    order, s, ties = sort_order(v, return_ties=True)
    np.testing.assert_array_equal(s, np.sort(v, axis=1))
    np.testing.assert_array_equal(np.take_along_axis(v, order, axis=1), s)
    z = z_scatter(s, order, z_table(size), ties)
    ref = ndtri((np.array([rankdata(row) for row in v]) - 0.375) / (size + 0.25))
    np.testing.assert_allclose(z, ref, rtol=1e-14, atol=0)
    # the ties found from s alone give the same scores
    np.testing.assert_array_equal(z, z_scatter(s, order, z_table(size)))


def test_rank_diagnostics_gathered_groups_equal_single_parameters(monkeypatch):
    import mitml_jax.diagnostics.rank as rank

    x = np.random.default_rng(8).standard_normal((3, 40, 7)).astype(np.float32)
    x[:, :, 3] = np.round(x[:, :, 3])
    which = ("rhat", "ess_bulk", "ess_tail", "ess_mean", "mcse_mean")
    single = [rank.rank_diagnostics(x[:, :, j], which) for j in range(7)]
    monkeypatch.setattr(rank, "_CHUNK_ELEMENTS", 100)
    monkeypatch.setattr(rank, "_GATHER", 2)  # four gathered groups, the last one short
    grouped = rank.rank_diagnostics(x, which)
    for name in which:
        np.testing.assert_allclose(grouped[name], [s[name] for s in single], rtol=1e-12)
    by_parameter = rank.rank_diagnostics_by_parameter(
        np.ascontiguousarray(np.moveaxis(x.astype(float), 2, 0)), which)
    for name in which:
        np.testing.assert_allclose(grouped[name], by_parameter[name], rtol=1e-12)


def test_row_dot_long_rows_in_blocks():
    from mitml_jax.diagnostics.ess_geyer import row_dot

    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((3, 20001)), rng.standard_normal((3, 20001))
    np.testing.assert_allclose(row_dot(a, b), np.einsum("ij,ij->i", a, b), rtol=1e-12)
    np.testing.assert_allclose(row_dot(a[:, :100], b[:, :100]),
                               np.einsum("ij,ij->i", a[:, :100], b[:, :100]), rtol=1e-12)


def test_centred_lag_sums_in_blocks(monkeypatch):
    from mitml_jax.diagnostics.ess_geyer import centred_lag_sums

    monkeypatch.setattr(ess_geyer, "_BLOCK_BYTES", 8 * 40 * 3)  # three chains per block
    y = np.random.default_rng(10).standard_normal((2, 7, 40)) + 5.0
    mean, _, sums, squares = centred_lag_sums(y, 6)
    yc = y - y.mean(axis=2, keepdims=True)
    np.testing.assert_allclose(mean, y.mean(axis=2), rtol=1e-15)
    np.testing.assert_allclose(squares, (yc * yc).sum(axis=2), rtol=1e-12)
    np.testing.assert_allclose(sums, lag_sums(yc, 6), rtol=1e-12)


@pytest.mark.parametrize("n_rhat", [None, 3, 4])
def test_summary_chain_moments_from_segments(n_rhat):
    """With segment R-hat on, chain means and variances come from the segment moments."""
    from diagnostics_fakes import fake_imputations
    from mitml_jax.diagnostics.mitml_stats import segment_rhat
    from mitml_jax.diagnostics.nested import default_superchains, rhat_nested

    imp = fake_imputations(chains=8, n_iter=5, m=8, phi=0.7)  # 40 draws: 3 segments leave one
    x = imp.imputation["sigma"][:, :, 0, 2, 1] * 1e3 + 1e4  # large mean, moderate spread
    imp.imputation["sigma"][:, :, 0, 2, 1] = x
    f = imp.summary(n_rhat=n_rhat).to_frame()
    row = f[(f.block == "sigma") & (f.row == 3) & (f.col == 2)].iloc[0]
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-13)
    assert row["sd"] == pytest.approx(x.std(ddof=1), rel=1e-11)
    assert row.rhat_nested == pytest.approx(rhat_nested(x, default_superchains(8, 4)), rel=1e-10)
    if n_rhat:
        seg = segment_rhat(x, n_rhat)
        assert row.rhat_segments == pytest.approx(seg.mean(), rel=1e-12)
        assert row.rhat_segments_max == pytest.approx(seg.max(), rel=1e-12)
