"""posterior_summary's batch-means MCSE (the R reference script's formula)."""

import numpy as np

from mitml_jax.results.posterior import batch_means_mcse


def test_single_chain_batch_means_equal_r_formula():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=1037)) * 0.01 + rng.normal(size=1037)  # autocorrelated
    b = len(x) // 50
    means = np.array([x[i * b:(i + 1) * b].mean() for i in range(50)])
    expected = means.std(ddof=1) / np.sqrt(50)  # R: sd(m) / sqrt(nb), trailing draws dropped
    np.testing.assert_allclose(batch_means_mcse(x[None, :]), expected, rtol=1e-12)


def test_batch_means_pool_chains_and_track_iid_standard_error():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(8, 5000, 2, 1))  # iid: MCSE ~ 1 / sqrt(40000)
    mcse = batch_means_mcse(draws)
    assert mcse.shape == (2, 1)
    np.testing.assert_allclose(mcse, 1 / np.sqrt(40000), rtol=0.15)
    assert np.isnan(batch_means_mcse(draws[:, :10])).all()  # fewer draws than batches
