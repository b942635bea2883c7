"""Rank-normalised R-hat, ESS and MCSE equal ArviZ's (legacy 0.x definitions) to 1e-8.

The draws and ArviZ's values live in tests/reference/arviz_diagnostics.npz so that these checks
run without arviz; ``python tests/test_diagnostics_rank.py`` regenerates the file (needs arviz).
"""

import os

import numpy as np
import pytest

import mitml_jax as mj
from mitml_jax.diagnostics.nested import default_superchains, rhat_nested
from mitml_jax.diagnostics.rank import rank_diagnostics
from mitml_jax.errors import MitmlError, MitmlTypeError

FIXTURE = os.path.join(os.path.dirname(__file__), "reference", "arviz_diagnostics.npz")
STATS = {
    "rhat": ("rhat", "rank"), "ess_bulk": ("ess", "bulk"), "ess_tail": ("ess", "tail"),
    "ess_mean": ("ess", "mean"), "ess_sd": ("ess", "sd"),
    "mcse_mean": ("mcse", "mean"), "mcse_sd": ("mcse", "sd"),
}


def _cases():
    """Fixture draws: AR(1) chains with ties, odd lengths, offsets, one chain, tiny chains."""
    rng = np.random.default_rng(20261125)
    cases = []
    for c, d, k, phi in [(4, 100, 4, 0.5), (3, 51, 3, 0.9), (2, 7, 2, 0.0), (8, 30, 3, 0.95),
                         (1, 40, 2, 0.3), (6, 200, 3, -0.4)]:
        e = rng.standard_normal((c, d, k))
        x = np.empty_like(e)
        x[:, 0] = e[:, 0]
        for t in range(1, d):
            x[:, t] = phi * x[:, t - 1] + e[:, t]
        x[..., 0] = np.round(x[..., 0])  # ties
        x[:, :, 1] += 0.5 * np.arange(c)[:, None]  # chains disagree
        cases.append(x)
    return cases


def _arviz_values(az, x):
    ds = az.convert_to_dataset(x)
    out = {}
    for name, (fn, method) in STATS.items():
        if fn == "rhat" and x.shape[0] < 2:
            out[name] = np.full(x.shape[2:], np.nan)
            continue
        out[name] = getattr(az, fn)(ds, method=method)["x"].values
    return out


def _load():
    data = np.load(FIXTURE)
    n = int(data["n_cases"])
    return [(data[f"case{i}_draws"], {s: data[f"case{i}_{s}"] for s in STATS}) for i in range(n)]


def test_fixture_matches_cases():
    for (draws, _), x in zip(_load(), _cases()):
        np.testing.assert_array_equal(draws, x)


@pytest.mark.parametrize("case", range(6))
def test_rank_diagnostics_equal_arviz_fixture(case):
    draws, ref = _load()[case]
    got = rank_diagnostics(draws, which=tuple(STATS))
    for name in STATS:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-8, atol=0, equal_nan=True,
                                   err_msg=name)


def test_public_functions_and_shapes():
    draws, ref = _load()[0]
    np.testing.assert_allclose(mj.rhat(draws), ref["rhat"], rtol=1e-8)
    np.testing.assert_allclose(mj.ess(draws, method="tail"), ref["ess_tail"], rtol=1e-8)
    np.testing.assert_allclose(mj.mcse(draws, method="sd"), ref["mcse_sd"], rtol=1e-8)
    # parameter shape is kept; a single parameter gives a float
    assert mj.rhat(draws.reshape(4, 100, 2, 2)).shape == (2, 2)
    assert isinstance(mj.ess(draws[:, :, 0]), float)


def test_bad_input_raises():
    with pytest.raises(MitmlError, match="draws"):
        mj.rhat(np.zeros(10))
    with pytest.raises(MitmlError, match="method"):
        mj.ess(np.zeros((2, 10)), method="median")
    with pytest.raises(MitmlTypeError):
        mj.rhat(np.array([["a", "b"], ["c", "d"]]))


def test_nan_and_constant_draws():
    x = np.random.default_rng(0).standard_normal((4, 50, 3))
    x[1, 3, 0] = np.nan
    x[:, :, 2] = 1.5
    r = rank_diagnostics(x, which=("rhat", "ess_bulk", "ess_mean"))
    assert np.isnan(r["rhat"][0]) and np.isnan(r["ess_bulk"][0])
    assert np.isfinite(r["rhat"][1])
    assert r["ess_mean"][2] == 4 * 50  # ArviZ: constant draws -> number of draws


def test_chunking_does_not_change_results(monkeypatch):
    import mitml_jax.diagnostics.rank as rank

    x = np.random.default_rng(3).standard_normal((3, 40, 7))
    full = rank.rank_diagnostics(x)
    monkeypatch.setattr(rank, "_CHUNK_ELEMENTS", 100)
    chunked = rank.rank_diagnostics(x)
    for k in full:
        np.testing.assert_allclose(full[k], chunked[k], rtol=1e-12)


def test_rank_rhat_detects_disagreeing_chains():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 500, 2))
    x[0, :, 1] += 1.0
    r = mj.rhat(x)
    assert r[0] < 1.01 and r[1] > 1.05


def test_nested_rhat():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 5, 2))
    ids = default_superchains(16, 4)
    good = rhat_nested(x, ids)
    x[:4, :, 1] += 3.0  # one superchain elsewhere
    bad = rhat_nested(x, ids)
    assert abs(good[0] - bad[0]) < 1e-12 and bad[1] > 1.5 and good[1] < 1.2
    # hand computation for one parameter
    y = x[:, :, 1].reshape(4, 4, 5)
    cm = y.mean(2)
    w = (y.var(2, ddof=1).mean(1) + cm.var(1, ddof=1)).mean()
    np.testing.assert_allclose(bad[1], np.sqrt(1 + cm.mean(1).var(ddof=1) / w), rtol=1e-12)
    with pytest.raises(MitmlError, match="superchain"):
        rhat_nested(x, np.zeros(16))  # one superchain
    with pytest.raises(MitmlError, match="at least 2 superchains"):
        default_superchains(16, 1)
    with pytest.raises(MitmlError, match="run more chains"):
        default_superchains(3, 4)
    # every chain counts: 18 chains form superchains of 5, 4, 5 and 4 chains, each superchain's
    # statistics from its own chains (a one-chain superchain has no between-chain variance)
    z = rng.standard_normal((18, 5))
    ids = default_superchains(18, 4)
    assert np.bincount(ids).tolist() == [5, 4, 5, 4]
    groups = [z[ids == k] for k in range(4)]
    w = np.mean([g.var(1, ddof=1).mean() + g.mean(1).var(ddof=1) for g in groups])
    b = np.var([g.mean() for g in groups], ddof=1)
    np.testing.assert_allclose(rhat_nested(z, ids), np.sqrt(1 + b / w), rtol=1e-12)
    ids1 = np.r_[np.zeros(17), 1]
    w1 = (z[:17].var(1, ddof=1).mean() + z[:17].mean(1).var(ddof=1) + z[17].var(ddof=1)) / 2
    b1 = np.var([z[:17].mean(), z[17].mean()], ddof=1)
    np.testing.assert_allclose(rhat_nested(z, ids1), np.sqrt(1 + b1 / w1), rtol=1e-12)


def test_arviz_live():
    az = pytest.importorskip("arviz")
    for x in _cases():
        ref = _arviz_values(az, x)
        got = rank_diagnostics(x, which=tuple(STATS))
        for name in STATS:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-8, equal_nan=True)


if __name__ == "__main__":  # regenerate the fixture
    import warnings

    warnings.filterwarnings("ignore")
    import arviz as az

    arrays = {"n_cases": np.array(len(_cases())), "arviz_version": np.array(az.__version__)}
    for i, x in enumerate(_cases()):
        arrays[f"case{i}_draws"] = x
        for name, value in _arviz_values(az, x).items():
            arrays[f"case{i}_{name}"] = value
    np.savez_compressed(FIXTURE, **arrays)
    print("wrote", FIXTURE)


def test_fast_sort_repairs_near_equal_values_and_ties():
    from mitml_jax.diagnostics.rank_normal import sort_order as _sort_order
    from mitml_jax.diagnostics.rank_normal import z_scatter as _z_scatter
    from mitml_jax.diagnostics.rank_normal import z_table as _z_table

    rng = np.random.default_rng(11)
    base = 1.0 + rng.integers(0, 5, size=(3, 4000)) * 1e-13  # differ below the kept bits
    base[:, ::7] = 2.0  # exact ties
    base[1] = -base[1]
    base[2, :50] = 0.0
    base[2, 50:60] = -0.0
    order, s = _sort_order(base)
    np.testing.assert_array_equal(s, np.sort(base, axis=1))
    np.testing.assert_array_equal(np.take_along_axis(base, order, axis=1), s)
    from scipy.special import ndtri

    def average_ranks(row):
        _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        before = np.cumsum(counts) - counts
        return (before + (counts + 1) / 2.0)[inverse]

    z = _z_scatter(s, order, _z_table(4000))
    ref = ndtri((np.array([average_ranks(r) for r in base]) - 0.375) / (4000 + 0.25))
    np.testing.assert_allclose(z, ref, rtol=1e-14, atol=0)


@pytest.mark.parametrize("lags, fft_lags", [(2, 128), (5, 128), (1000, 128), (2, 4), (3, 8)])
def test_direct_lags_and_fft_fallback_agree_with_arviz(monkeypatch, lags, fft_lags):
    import mitml_jax.diagnostics.ess_geyer as geyer
    import mitml_jax.diagnostics.rank as rank

    monkeypatch.setattr(geyer, "_DIRECT_LAGS", lags)
    monkeypatch.setattr(geyer, "_FFT_LAGS", fft_lags)
    for draws, ref in _load():
        got = rank.rank_diagnostics(draws, which=("ess_bulk", "ess_tail", "ess_mean"))
        for name in got:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-8, equal_nan=True)
