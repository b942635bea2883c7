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


def test_posterior_summary_of_short_chains_uses_chain_means():
    """Many short chains (fewer draws than batches): every chain is one batch instead of NaN."""
    from types import SimpleNamespace

    from mitml_jax.results.posterior import posterior_summary

    rng = np.random.default_rng(2)
    draws = rng.normal(size=(200, 10, 1, 2, 2))  # 200 chains x 10 draws, iid
    imp = SimpleNamespace(blocks=("beta",), imputation={"beta": draws}, burnin={"beta": draws[:1, :3]})
    out = posterior_summary(imp)
    chain_means = draws.mean(axis=1)[:, 0].reshape(200, 4)
    np.testing.assert_allclose(out["mcse"], chain_means.std(axis=0, ddof=1) / np.sqrt(200), rtol=1e-12)
    # iid: the MCSE of 2,000 draws, 1 / sqrt(2000), within the sd estimate's error (199 df: 5%)
    np.testing.assert_allclose(out["mcse"], 1 / np.sqrt(2000), rtol=0.2)
    assert posterior_summary(imp, phase="burnin")["mcse"].isna().all()  # one chain of 3 draws
