"""mitml's convergence statistics against R's own functions on varied chains (mitml 0.4-4).

tests/reference/crosscheck_implist/make_stats.R calls mitml:::.GelmanRubin (n.Rhat = 2..7),
.SDprop (and its n.eff) and .reducedACF (lag 1, smoothed lags k and 2k) on AR(1) chains with
positive and negative correlation, a level shift, a trend, a partly constant chain, a constant
chain and very short chains. Where the mean of a chain is large against its spread, mitml's
``cov(s2, xbar^2) - 2 mu cov(s2, xbar)`` cancels (R loses ~7 digits at mean/sd = 4e4 and all of
them at 5e9, even returning NaN); ours uses the equal, centred ``cov(s2, (xbar - mu)^2)``, so there
it is compared with the same statistic of the shifted chain (R-hat does not depend on a shift).
"""

import json
import os

import numpy as np
import pytest

from mitml_jax.diagnostics.mitml_stats import reduced_acf, sd_prop, segment_rhat

HERE = os.path.join(os.path.dirname(__file__), "reference", "crosscheck_implist")
with open(os.path.join(HERE, "stats.json")) as _handle:
    CHAINS = {c["name"]: c for c in json.load(_handle)}
ILL_CONDITIONED = {"big_mean_80": 5e4, "tiny_spread_40": 5.0}


def _floats(values):
    return np.array([np.nan if v is None else v for v in np.atleast_1d(values)], dtype=float)


def _rhats(x):
    return np.array([float(segment_rhat(x, m)) if len(x) // m >= 2 else np.nan
                     for m in range(2, 8)])


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_segment_rhat_equals_r(name):
    c = CHAINS[name]
    x = np.asarray(c["x"], dtype=float)
    ours, theirs = _rhats(x), _floats(c["rhat"])
    if name in ILL_CONDITIONED:
        centred = _rhats(x - ILL_CONDITIONED[name])
        np.testing.assert_allclose(ours, centred, rtol=0, atol=1e-6 if "tiny" in name else 1e-10)
        assert np.nanmax(np.abs(theirs - centred)) > 1e-9  # R's digits are gone
        return
    both = ~np.isnan(theirs)
    np.testing.assert_allclose(ours[both], theirs[both], rtol=0, atol=1e-10)
    # R's NaN (sqrt of a negative when df < 2) is NaN here too; no R-hat where R has none
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_sdprop_and_acf_equal_r(name):
    c = CHAINS[name]
    x = np.asarray(c["x"], dtype=float)
    sdp, n_eff = sd_prop(x, return_n_eff=True)
    assert float(sdp) == pytest.approx(c["sdprop"], rel=1e-10, abs=1e-14)
    assert float(n_eff) == pytest.approx(c["n_eff"], rel=1e-10)
    # the 1e-9 noise of tiny_spread_40 is stored with ~7 significant digits
    atol = 1e-6 if name == "tiny_spread_40" else 1e-10
    np.testing.assert_allclose(reduced_acf(x, c["k"]), _floats(c["acf"]), rtol=0, atol=atol)
