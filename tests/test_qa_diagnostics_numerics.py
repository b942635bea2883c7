"""Numerical robustness of the convergence diagnostics on degenerate and extreme draws.

Regression tests of the QA pass on ``mitml_jax.diagnostics`` (rank.py, mitml_stats.py): every
statistic is compared with a plain, slow reference written here (ArviZ's legacy definitions line
by line, or mitml's formulas), on both the general path (small inputs) and the tagged-key fast
path (2^14 draws or more, an even number per chain). Where ArviZ's own floating-point arithmetic
misbehaves (a variance that should be exactly zero comes out as rounding noise), the test states
the exact answer instead.
"""

import warnings

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import rankdata

from mitml_jax.diagnostics import rank as rank_module
from mitml_jax.diagnostics.rank import rank_diagnostics

ALL = ("rhat", "ess_bulk", "ess_tail", "ess_mean", "ess_sd", "mcse_mean", "mcse_sd")


# -- plain references ---------------------------------------------------------------------------
def _z(a):
    r = rankdata(a, method="average").reshape(a.shape)
    return ndtri((r - 0.375) / (a.size + 0.25))


def _rhat(a):
    n = a.shape[1]
    b = n * np.var(a.mean(axis=1), ddof=1)
    w = np.mean(np.var(a, axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((b / w + n - 1) / n)


def _split(a):
    h = a.shape[1] // 2
    return np.vstack([a[:, :h], a[:, -h:]])


def _ref_rhat_rank(a):
    """ArviZ's ``_rhat_rank`` of one parameter's (chain, draw) array, with Python's max."""
    s = _split(a)
    return max(_rhat(_z(s)), _rhat(_z(np.abs(s - np.median(s)))))


def _paths(monkeypatch, path):
    """Force the general path (the fast one is taken by the natural sizes below)."""
    if path == "general":
        monkeypatch.setattr(rank_module, "_ROW_MIN_DRAWS", 10**18)


# -- rank-normalised R-hat: the folded R-hat ----------------------------------------------------
@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize("c, d", [(3, 5462), (2, 8192), (3, 50)])
def test_rhat_of_constant_chains_with_different_constants_is_infinite_not_nan(monkeypatch,
                                                                              path, c, d):
    # every split chain constant, the constants differ: within-chain variance 0, between > 0,
    # so R-hat is infinite (ArviZ: 9.5e15 for (3, 5462) from rounding noise; we gave NaN: the
    # folded within-chain variance, from an uncentred sum of squares, cancelled below zero)
    _paths(monkeypatch, path)
    x = np.broadcast_to(np.arange(c, dtype=float)[:, None, None], (c, d, 1)).copy()
    x[:, :, 0] *= 0.7
    got = rank_diagnostics(x, which=("rhat",))["rhat"][0]
    assert not np.isnan(got)
    assert got > 1e6
    # the same with the chains at +-1 (folded draws constant: the folded R-hat alone is 0/0)
    y = np.where(np.arange(c)[:, None, None] < (c + 1) // 2, -1.0, 1.0) * np.ones((c, d, 1))
    got = rank_diagnostics(y, which=("rhat",))["rhat"][0]
    assert not np.isnan(got) and got > 1e6


@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize("c, d", [(3, 5462), (3, 50), (5, 20), (4, 50)])
def test_rhat_with_all_folded_draws_equal_is_the_bulk_rhat(monkeypatch, path, c, d):
    # two values balanced around the median: |x - median| is the same for every draw, so the
    # folded R-hat is 0/0 and ArviZ's max(bulk, folded) (Python's max) keeps the bulk R-hat;
    # we returned NaN (np.maximum propagates it)
    _paths(monkeypatch, path)
    rng = np.random.default_rng(c * d)
    x = np.where(rng.permutation(c * d).reshape(c, d) < c * d // 2, -1.0, 1.0)
    got = rank_diagnostics(x[:, :, None], which=("rhat",))["rhat"][0]
    ref = _ref_rhat_rank(x)
    assert np.isfinite(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-8)


# -- warnings -----------------------------------------------------------------------------------
def _draws_that_warned():
    rng = np.random.default_rng(11)
    e = rng.standard_normal((4, 50, 1))
    inf = e.copy()
    inf[0, 1, 0] = np.inf
    both = e.copy()
    both[0, 0, 0], both[1, 2, 0] = np.inf, -np.inf
    return {
        "constant, one chain": np.full((1, 40, 1), 3.7),  # mcse_sd 0 / 0
        "scale 1e-300": e * 1e-300,  # squares underflow: mcse_sd 0 / 0
        "scale 1e307": e * 1e307,  # moments overflow (40 warnings)
        "+inf draw": inf,
        "+inf and -inf draws": both,
    }


@pytest.mark.parametrize("label", list(_draws_that_warned()))
def test_no_floating_point_warnings_and_values_as_arviz(label):
    x = _draws_that_warned()[label]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = rank_diagnostics(x, which=ALL)
    # the rank-based statistics stay exact (NaN only where ArviZ's definition gives NaN)
    if x.shape[0] > 1 and np.isfinite(x).all():
        np.testing.assert_allclose(got["rhat"], [_ref_rhat_rank(x[:, :, 0])], rtol=1e-8)
    # moment statistics as ArviZ gives them: NaN where a moment is not finite (0 / 0, an
    # overflow, an infinite draw); ArviZ's absolute constancy test makes the ESS of draws spread
    # less than 1e-15 the number of draws
    expected_ess_mean = {"constant, one chain": 40.0, "scale 1e-300": 200.0}
    np.testing.assert_array_equal(got["ess_mean"], [expected_ess_mean.get(label, np.nan)])
    assert np.isnan(got["mcse_sd"][0]) == (label != "constant, one chain")


@pytest.mark.parametrize("shape", [(1, 40), (4, 50), (3, 51), (2, 8192)])
def test_mcse_of_constant_draws_is_zero(shape):
    # MCSE of the mean and of the sd of constant draws: 0 (ArviZ: NaN from 0 / 0 for (1, 40),
    # 0 or 3e-17 from rounding noise for the others; we gave NaN or 0 / 3e-17 alike)
    import mitml_jax as mj

    x = np.full(shape, 3.7)
    assert mj.mcse(x, method="mean") == 0.0
    assert mj.mcse(x, method="sd") == 0.0



# -- ESS and MCSE of the mean and sd: a large mean against a small spread ------------------------
@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize("c, d, phi", [(4, 50, 0.0), (2, 8192, 0.5), (4, 3000, 0.99)])
def test_moment_statistics_do_not_depend_on_a_large_mean(monkeypatch, path, c, d, phi):
    # ESS and MCSE are shift-invariant; ArviZ (and we) took chain means of 1e12 + noise rounded
    # to the last bit (1.2e-4 against chain means spread ~1e-4): ESS of the mean 237.6 for
    # (4, 50) where the draws shifted exactly to mean 0 give 256.9 (ArviZ: 231.9)
    _paths(monkeypatch, path)
    rng = np.random.default_rng(d)
    e = rng.standard_normal((c, d, 1))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, d):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    big = 1e12 + 1e-3 * x
    which = ("ess_mean", "mcse_mean", "ess_sd", "mcse_sd", "rhat", "ess_bulk", "ess_tail")
    got = rank_diagnostics(big, which=which)
    ref = rank_diagnostics(big - 1e12, which=which)  # exact (Sterbenz)
    for name in which:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-9, err_msg=name)


# -- mitml's statistics: a large mean against a small spread ------------------------------------
def _offset_chains():
    """(label, draws, the same draws shifted exactly to a small mean)."""
    rng = np.random.default_rng(2026)
    e = rng.standard_normal((2, 60))
    big = 1e12 + 1e-3 * e  # x - 1e12 is exact (Sterbenz)
    last_bit = 1.0 + rng.integers(0, 4, (2, 60)) * np.spacing(1.0)  # 1 + k ulp
    return [("1e12 + 1e-3 noise", big, big - 1e12),
            ("1 + k ulp", last_bit, (last_bit - 1.0) * 2.0**52)]


@pytest.mark.parametrize("case", [0, 1])
def test_mitml_statistics_do_not_depend_on_a_large_mean(case):
    # R-hat, SDprop and the ACF are shift-invariant; computed on x - mean(x) with the mean
    # rounded to the draws' last bits they were off by 1% (segment R-hat), 13% (ACF lag 1) and,
    # for draws 1 + k ulp, 40% (SDprop) and 0.15 (ACF lag 1); mitml is off as well
    from mitml_jax.diagnostics.mitml_stats import reduced_acf, sd_prop, segment_rhat

    _, x, exact = _offset_chains()[case]
    for m in (3, 4):
        np.testing.assert_allclose(segment_rhat(x, m), segment_rhat(exact, m), rtol=1e-12)
    got, got_neff = sd_prop(x, return_n_eff=True)
    ref, ref_neff = sd_prop(exact, return_n_eff=True)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(got_neff, ref_neff, rtol=1e-12)
    np.testing.assert_allclose(reduced_acf(x, 10), reduced_acf(exact, 10), rtol=1e-12, atol=1e-15)


def test_acf_of_a_large_mean_equals_exact_rational_arithmetic():
    from fractions import Fraction

    from mitml_jax.diagnostics.mitml_stats import autocorrelation

    x = _offset_chains()[0][1][0]
    xs = [Fraction(float(v)) for v in x]
    mu = sum(xs) / len(xs)
    y = [v - mu for v in xs]
    ss = sum(v * v for v in y)
    ref = [float(sum(y[i] * y[i + lag] for i in range(len(y) - lag)) / ss) for lag in range(4)]
    np.testing.assert_allclose(autocorrelation(x, 3), ref, rtol=1e-12)


def test_summary_segment_rhat_and_moments_with_a_large_mean():
    import sys
    import os

    sys.path.insert(0, os.path.dirname(__file__))
    from diagnostics_fakes import fake_imputations

    from mitml_jax.diagnostics.mitml_stats import segment_rhat

    imp = fake_imputations(n_iter=10, m=6)
    chain = imp.imputation["beta"][0, :, 0, 0, 0].copy()
    imp.imputation["beta"][0, :, 0, 0, 0] = 1e13 + (chain - 1.0) * 1e-2  # exact shift below
    shifted = imp.imputation["beta"][0, :, 0, 0, 0] - 1e13
    f = imp.summary(n_rhat=3).to_frame()
    row = f[(f.block == "beta") & (f.row == 1) & (f.col == 1)].iloc[0]
    assert row.rhat_segments == pytest.approx(segment_rhat(shifted, 3), rel=1e-12)
    assert row["mean"] - 1e13 == pytest.approx(shifted.mean(), abs=2e-3)  # 1e13's last bit
    assert row["sd"] == pytest.approx(shifted.std(ddof=1), rel=1e-10)


# -- nested R-hat -------------------------------------------------------------------------------
def _ref_nested(y, ids):
    """Nested R-hat of one parameter's (chain, draw) draws, from its definition."""
    labels = sorted(set(ids[ids >= 0]))
    means = [y[ids == k].mean() for k in labels]
    within = []
    for k in labels:
        ch = y[ids == k]
        b = np.var(ch.mean(axis=1), ddof=1) if ch.shape[0] > 1 else 0.0
        w = np.mean(np.var(ch, axis=1, ddof=1)) if ch.shape[1] > 1 else 0.0
        within.append(b + w)
    return np.sqrt(1.0 + np.var(means, ddof=1) / np.mean(within))


def test_nested_rhat_with_a_large_mean_and_infinite_draws():
    from mitml_jax.diagnostics.nested import default_superchains, rhat_nested

    rng = np.random.default_rng(8)
    ids = default_superchains(8, 4)
    x = rng.standard_normal((8, 10, 2))
    big = 1e12 + 1e-3 * x  # was 1.036 where the exactly shifted draws give 1.043
    np.testing.assert_allclose(rhat_nested(big, ids),
                               [_ref_nested(big[:, :, j] - 1e12, ids) for j in range(2)],
                               rtol=1e-10)
    y = x.copy()
    y[0, 3, 1] = np.inf  # NaN for that parameter only, and no RuntimeWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = rhat_nested(y, ids)
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[0], _ref_nested(x[:, :, 0], ids), rtol=1e-12)


# -- shapes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 0, 2), (0, 10, 2), (0, 0), (3, 0), (2, 10, 0)])
def test_no_chains_or_no_draws_give_nan_not_a_numpy_error(shape):
    # (3, 0, 2) and (0, 10, 2) raised NumPy's "cannot reshape array of size 0" ValueError, and
    # ess(relative=True) of (0, 0) a ZeroDivisionError; fewer than 4 draws is documented as NaN
    import mitml_jax as mj

    x = np.zeros(shape)
    expected = np.full(shape[2:], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = rank_diagnostics(x, which=ALL)
        for name in ALL:
            np.testing.assert_array_equal(got[name], expected)
        for method in ("rank", "split", "identity"):
            np.testing.assert_array_equal(mj.rhat(x, method=method), expected)
        np.testing.assert_array_equal(mj.ess(x, relative=True), expected)
        np.testing.assert_array_equal(mj.mcse(x, method="sd"), expected)


def test_classic_rhat_with_an_infinite_draw_is_nan_for_that_parameter_without_warnings():
    import mitml_jax as mj

    x = np.random.default_rng(3).standard_normal((4, 50, 2))
    ref = [mj.rhat(x[:, :, 0], method=m) for m in ("split", "identity")]
    x[0, 3, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [mj.rhat(x, method=m) for m in ("split", "identity")]
    for g, r in zip(got, ref):
        assert g[0] == r and np.isnan(g[1])


# -- mitml's statistics: NaN and infinite draws ----------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_acf_of_a_chain_with_a_bad_draw_is_nan_not_zero(bad):
    # the ACF of such a chain was 0 at every lag (as for a constant chain: perfect mixing in
    # summary()'s ACF table); mitml stops with an error; the other chains are unaffected
    from mitml_jax.diagnostics.mitml_stats import autocorrelation, reduced_acf, sd_prop

    x = np.random.default_rng(4).standard_normal((3, 60))
    ref = reduced_acf(x, 5)
    x[1, 7] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = reduced_acf(x, 5)
        rho = autocorrelation(x, 4)
        sdp = sd_prop(x)
    assert np.isnan(got[1]).all() and np.isnan(rho[1]).all() and np.isnan(sdp[1])
    np.testing.assert_array_equal(got[[0, 2]], ref[[0, 2]])


def test_summary_acf_of_an_entry_with_a_nan_draw_is_nan():
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from diagnostics_fakes import fake_imputations

    imp = fake_imputations(n_iter=10, m=6)
    imp.imputation["beta"][0, 7, 0, 0, 0] = np.nan
    f = imp.summary(n_rhat=3, goodness_of_appr=True, autocorrelation=True).to_frame()
    row = f[(f.block == "beta") & (f.row == 1) & (f.col == 1)].iloc[0]
    assert np.isnan([row.acf_lag1, row.acf_lagk, row.acf_lag2k, row.sd_prop]).all()
    assert np.isfinite(f.acf_lag1.iloc[1:]).all()


@pytest.mark.parametrize("n_rhat", [3, None])
def test_summary_of_many_chains_does_not_depend_on_a_large_mean(n_rhat):
    # pooled sd, MCSE, nested R-hat and ESS of an entry with draws 1e13 + 1e-2 noise equal
    # those of the same draws shifted exactly to a small mean (the chain means were rounded to
    # 1e13's last bit: sd 0.001218 for 0.001251, MCSE 8.63e-5 for 8.86e-5, nested R-hat 1.0
    # for 1.009)
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from diagnostics_fakes import fake_imputations

    imp = fake_imputations(chains=8, n_iter=5, m=8)
    small = imp.imputation["beta"][:, :, 0, 0, 0].copy()
    imp.imputation["beta"][:, :, 0, 0, 0] = 1e13 + (small - 1.0) * 1e-2
    big = imp.summary(n_rhat=n_rhat).to_frame().iloc[0]
    imp.imputation["beta"][:, :, 0, 0, 0] -= 1e13  # exact (Sterbenz)
    ref = imp.summary(n_rhat=n_rhat).to_frame().iloc[0]
    for name in ("sd", "mcse_mean", "rhat_nested", "rhat_rank", "ess_bulk", "ess_tail",
                 "rhat_segments", "rhat_segments_max"):
        if n_rhat is None and name.startswith("rhat_segments"):
            continue
        assert big[name] == pytest.approx(ref[name], rel=1e-9), name
    assert big["mean"] - 1e13 == pytest.approx(ref["mean"], abs=2e-3)  # 1e13's last bit


def test_nested_rhat_of_no_draws_is_nan():
    # NumPy's "cannot reshape array of size 0" ValueError before
    from mitml_jax.diagnostics.nested import default_superchains, rhat_nested

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = rhat_nested(np.zeros((8, 0, 2)), default_superchains(8, 4))
    assert got.shape == (2,) and np.isnan(got).all()
