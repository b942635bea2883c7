"""The tagged-float-key path of the rank diagnostics (rank_row) equals the plain definitions.

Argsort, Blom scores with average ranks, folded-rank chain sums and counts below a quantile are
checked against numpy/scipy on rows built to defeat approximations: values equal above the kept
bits, exact ties, signed zeros, denormals, huge and tiny scales, large offsets; and the whole
diagnostics against the general path and ArviZ.
"""

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import rankdata

from mitml_jax.diagnostics import rank as rank_module
from mitml_jax.diagnostics import rank_row
from mitml_jax.diagnostics.rank import rank_diagnostics

from test_diagnostics_speedpaths import _folded_reference, _hard_rows


def _more_rows(rng, size):
    return [
        1e6 + rng.standard_normal(size),
        1e-300 * rng.standard_normal(size),
        1e300 * rng.standard_normal(size),
        np.r_[rng.standard_normal(size - 2), 5e-324, -5e-324],
        np.abs(rng.standard_normal(size)),
        -np.abs(rng.standard_normal(size)),
        np.round(rng.standard_normal(size), 2) + 3,
        np.where(rng.random(size) < 0.5, 0.0, -0.0) + rng.integers(0, 3, size),
        np.r_[np.zeros(size - 1), 1.0],
        np.full(size, -2.5),
        1.0 + rng.integers(0, 3, size) * 2.0**-40 + rng.standard_normal(size) * 2.0**-44,
    ]


def _check_row(v, n):
    size = len(v)
    rr = rank_row.row_ranks(v, {})
    assert rr is not None
    s = np.sort(v)
    np.testing.assert_array_equal(v[rr.order], s)
    assert (rr.low, rr.high) == (s[0], s[-1])
    z = rank_row.bulk_scores(rr, np.empty(size))
    np.testing.assert_allclose(z, ndtri((rankdata(v) - 0.375) / (size + 0.25)), rtol=1e-14,
                               atol=0)
    sums, squares = rank_row.folded_sums(v, rr, n, {})
    ref_s, ref_q = _folded_reference(v[None], n)
    np.testing.assert_allclose(sums, ref_s[0], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(squares, ref_q.sum(), rtol=1e-12, atol=1e-9)
    for q in [s[0], s[-1], s[size // 2], 0.9 * s[size // 20] + 0.1 * s[size // 20 + 1], 0.0,
              np.nextafter(s[size // 3], np.inf), np.nextafter(s[size // 3], -np.inf)]:
        assert rank_row.count_at_most(v, rr, q) == np.count_nonzero(v <= q)


@pytest.mark.parametrize("size, n", [(2000, 250), (186, 31), (6, 3), (40000, 500)])
def test_row_ranks_equal_definitions(size, n):
    rng = np.random.default_rng(size)
    for v in list(_hard_rows(rng, size)) + _more_rows(rng, size):
        _check_row(v, n)


@pytest.fixture(autouse=True)
def _row_path_for_small_inputs(monkeypatch):
    monkeypatch.setattr(rank_module, "_ROW_MIN_DRAWS", 0)


def test_row_ranks_declines_infinite_draws():
    rng = np.random.default_rng(3)
    assert rank_row.row_ranks(np.r_[np.inf, rng.standard_normal(99)], {}) is None
    assert rank_row.row_ranks(np.r_[-np.inf, rng.standard_normal(99)], {}) is None
    assert rank_row.row_ranks(np.r_[1.7e308, -1.7e308, rng.standard_normal(98)], {}) is None
    x = rng.standard_normal((4, 50, 2))
    x[0, 0, 0] = np.inf  # the general path takes over for that chunk
    got = rank_diagnostics(x, which=("rhat", "ess_bulk", "ess_tail"))
    assert np.isfinite(got["ess_bulk"]).all()


def _draws(rng, c, d, k):
    e = rng.standard_normal((c, d, k))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, d):
        x[:, t] = 0.6 * x[:, t - 1] + e[:, t]
    x[..., 0] = np.round(x[..., 0], 1)  # ties
    x[..., 1] = 300.0 + 1e-7 * x[..., 1]  # offset, small spread
    x[:, :, 2] += np.arange(c)[:, None]  # chains disagree
    return x


def test_fast_path_equals_general_path(monkeypatch):
    rng = np.random.default_rng(8)
    which = ("rhat", "ess_bulk", "ess_tail", "ess_mean", "mcse_mean")
    taken = []
    real = rank_module.rank_rows
    monkeypatch.setattr(rank_module, "rank_rows",
                        lambda *a, **kw: taken.append(real(*a, **kw)) or taken[-1])
    for c, d in [(6, 400), (3, 64), (2, 4), (6, 401), (3, 65), (2, 5)]:  # odd: middle draws apart
        x = _draws(rng, c, d, 4)
        taken.clear()
        fast = rank_diagnostics(x, which=which)
        assert taken and all(t is not None for t in taken)
        with monkeypatch.context() as mp:
            mp.setattr(rank_module, "rank_rows", lambda *a, **kw: None)
            slow = rank_diagnostics(x, which=which)
        for name in which:
            np.testing.assert_allclose(fast[name], slow[name], rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("draws", [300, 301])
def test_fast_path_equals_arviz(draws):
    az = pytest.importorskip("arviz")
    x = _draws(np.random.default_rng(9), 8, draws, 4)
    got = rank_diagnostics(x, which=("rhat", "ess_bulk", "ess_tail"))
    ds = az.convert_to_dataset(x)
    np.testing.assert_allclose(got["rhat"], az.rhat(ds, method="rank")["x"].values, rtol=1e-8)
    for method in ("bulk", "tail"):
        np.testing.assert_allclose(got[f"ess_{method}"],
                                   az.ess(ds, method=method)["x"].values, rtol=1e-8)


def test_order_statistics_of_split_draws_and_middles():
    """Odd chains: the tail quantiles are of all draws, the split draws (sorted through their
    keys) and the middle draws (sorted apart) together."""
    rng = np.random.default_rng(12)
    for size, extra_size in [(2000, 7), (50, 50), (9, 1), (300, 400)]:
        for v, extra in [(rng.standard_normal(size), rng.standard_normal(extra_size)),
                         (np.round(rng.standard_normal(size), 1),
                          np.round(rng.standard_normal(extra_size), 1)),
                         (rng.standard_normal(size), rng.standard_normal(extra_size) + 10),
                         (rng.standard_normal(size), rng.standard_normal(extra_size) - 10)]:
            rr = rank_row.row_ranks(v, {})
            extra = np.sort(extra)
            union = np.sort(np.r_[v, extra])
            for t in {0, 1, len(union) // 2, len(union) - 2, len(union) - 1, int(0.05 * len(union))}:
                assert rank_row._kth_of_union(v, rr, extra, t) == union[t]
            for prob in (0.05, 0.95):
                aleph = len(union) * prob + (1 - prob)
                kk = int(np.clip(np.floor(aleph), 1, len(union) - 1))
                gamma = float(np.clip(aleph - kk, 0, 1))
                expected = (1 - gamma) * union[kk - 1] + gamma * union[kk]
                assert rank_row._quantile_type7(v, rr, prob, extra) == expected
