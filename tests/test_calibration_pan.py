"""Simulation-based calibration of pan's Gibbs kernel (Talts et al. 2018).

Test model (mitml_jax.validation.pan_sbc): two groups, two targets, fixed intercept + x, random
intercept and slope of x, 8 clusters of 3-6 rows per group, a fixed MCAR pattern with rows whose
targets are all missing; proper prior via pseudo-rows (beta | Sigma ~ MN(0, 4 I, Sigma)).
"""

import numpy as np
import pytest

import mitml_jax  # noqa: F401  (enables float64)
from mitml_jax.validation.pan_sbc import make_pan_problem, run_pan_sbc
from mitml_jax.validation.sbc import rank_chi2

ALPHA = 1e-3


@pytest.fixture(scope="module")
def small_problem():
    return make_pan_problem(60, seed=3, n_groups=1, cluster_sizes=(3, 4, 5, 3, 4, 5), r=1, n_slots=2)


def test_rank_chi2_uniform_and_skewed():
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 100, size=(2000, 3))
    skewed = np.minimum(rng.integers(0, 100, size=(2000, 1)), rng.integers(0, 100, size=(2000, 1)))
    assert np.all(rank_chi2(uniform, 99) > ALPHA)
    assert rank_chi2(skewed, 99)[0] < 1e-10
    with pytest.raises(ValueError):
        rank_chi2(uniform, 98)


def test_pan_sbc_smoke_and_power(small_problem):
    """Machinery check (few replications): ranks in range, no sampler flags, and a sampler whose
    Sigma degrees of freedom are off by 20 (as if pan's n* counted rows wrongly) is detected."""
    prob = small_problem
    res = run_pan_sbc(prob, n_burn=30, n_draws=19, thin=1, n_bins=5)
    assert res.ranks.shape == (60, len(prob.names))
    assert res.ranks.min() >= 0 and res.ranks.max() <= 19
    assert res.flags.sum() == 0
    # observed data are not ranked; every quantity varies across replications
    assert np.all(res.ranks.std(axis=0) > 0)
    wrong = prob.prior._replace(a=prob.prior.a + 20.0)
    bad = run_pan_sbc(prob, n_burn=30, n_draws=19, thin=1, n_bins=5, sampler_prior=wrong)
    p_sigma = [p for n, p in zip(bad.names, bad.p_values) if n.startswith("sigma") and n.endswith("0,0]")]
    assert min(p_sigma) < ALPHA


@pytest.mark.slow
def test_pan_sbc_full():
    """500 replications, 99 draws thinned by 5 after 200 burn-in sweeps; every beta, Sigma and Psi
    entry of both groups and 3 imputed cells per group: ranks uniform by chi-square (20 bins)."""
    prob = make_pan_problem(500, seed=11)
    res = run_pan_sbc(prob, seed=12, n_burn=200, n_draws=99, thin=5)
    print(res.table())
    assert res.flags.sum() == 0
    assert res.failed(ALPHA) == []
    # power: the same test catches Sigma's degrees of freedom off by p = 2 (pan's "a + n* - p"
    # without the "- p"); measured p-value 1.6e-11 for sigma[0,0,0]
    wrong = prob.prior._replace(a=prob.prior.a + 2.0)
    bad = run_pan_sbc(prob, seed=12, n_burn=200, n_draws=99, thin=5, sampler_prior=wrong)
    assert any(n.startswith("sigma") for n, _ in bad.failed(ALPHA))
