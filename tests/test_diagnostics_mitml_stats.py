"""mitml's segment R-hat, SDprop and reduced ACF on the spec's test vector (R 4.2.2 values)."""

import numpy as np
import pytest

from mitml_jax.diagnostics.mitml_stats import (
    autocorrelation, reduced_acf, sd_prop, segment_rhat, smoothed_acf,
)
from mitml_jax.errors import MitmlError

T = np.arange(1, 61, dtype=float)
X = np.sin(T) + T / 40 + np.cos(T**2)


def test_gelman_rubin_segments_spec_values():
    assert segment_rhat(X, 3) == pytest.approx(1.16959425624363, rel=1e-12)
    assert segment_rhat(X, 4) == pytest.approx(1.19725875908528, rel=1e-12)


def test_sdprop_spec_values():
    sdp, n_eff = sd_prop(X, return_n_eff=True)
    assert sdp == pytest.approx(0.265055970187999, rel=1e-10)
    assert n_eff == pytest.approx(14.2339297582899, rel=1e-10)


def test_reduced_acf_spec_values():
    lag1, lagk, lag2k = reduced_acf(X, 10)
    assert lag1 == pytest.approx(0.457698464947136, rel=1e-12)
    assert lagk == pytest.approx(-0.233128113110901, rel=1e-12)
    assert lag2k == pytest.approx(0.0896422673206672, rel=1e-12)


def test_acf_matches_direct_sum():
    y = X - X.mean()
    direct = [np.sum(y[: 60 - k] * y[k:]) / np.sum(y**2) for k in range(6)]
    np.testing.assert_allclose(autocorrelation(X, 5), direct, rtol=1e-12)


def test_vectorised_over_leading_axes():
    stacked = np.stack([X, 2 * X + 1, X[::-1]])[None]  # (1, 3, 60)
    r = segment_rhat(stacked, 3)
    assert r.shape == (1, 3)
    np.testing.assert_allclose(r[0, :2], segment_rhat(X, 3), rtol=1e-12)  # affine invariant
    s = sd_prop(stacked)
    np.testing.assert_allclose(s[0, :2], sd_prop(X), rtol=1e-10)
    a = reduced_acf(stacked, 10)
    assert a.shape == (1, 3, 3)
    np.testing.assert_allclose(a[0, 2], reduced_acf(X[::-1], 10), rtol=1e-12)


def test_constant_chain_edge_cases():
    c = np.full(30, 2.0)
    assert segment_rhat(c, 3) == 1.0
    assert sd_prop(c) == 0.0
    np.testing.assert_array_equal(reduced_acf(c, 5), [0.0, 0.0, 0.0])


def test_short_chain_gives_nan_not_error():
    # bug B7: mitml errors when 2k + 2 >= N; here the lag-2k entry is NaN instead
    y = X[:20]
    lag1, lagk, lag2k = reduced_acf(y, 9)
    assert np.isfinite(lag1) and np.isfinite(lagk) and np.isnan(lag2k)
    assert np.isnan(smoothed_acf(autocorrelation(y, 3), 1))


def test_bad_segments():
    with pytest.raises(MitmlError, match="n_rhat"):
        segment_rhat(X, 1)
    with pytest.raises(MitmlError, match="n_rhat"):
        segment_rhat(X[:5], 3)


@pytest.mark.parametrize("layout", ["contiguous", "moveaxis"])
def test_segment_moments_in_blocks_equal_definitions(monkeypatch, layout):
    from mitml_jax.diagnostics import mitml_stats

    monkeypatch.setattr(mitml_stats, "_BLOCK_BYTES", 8 * 61 * 4)  # four rows per block
    rng = np.random.default_rng(5)
    base = rng.standard_normal((5, 61, 3)) * [1.0, 10.0, 1e3] + [0.0, 5.0, -7.0]
    # (chain, param, draw): a view of (chain, draw, param) draws, or a contiguous copy
    x = np.moveaxis(base, 1, 2)
    if layout == "contiguous":
        x = np.ascontiguousarray(x)
    xbar, s2, n = mitml_stats.segment_moments(x, 3)
    seg = x[..., :60].reshape(5, 3, 3, 20)
    assert n == 20 and xbar.shape == s2.shape == (5, 3, 3)
    np.testing.assert_allclose(xbar, seg.mean(axis=-1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(s2, seg.var(axis=-1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(segment_rhat(x, 3)[2, 1], segment_rhat(x[2, 1], 3), rtol=1e-13)
