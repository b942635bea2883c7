"""Simulation-based calibration of jomo's kernel: binary level-1 target and level-2 target.

Test model and proper-prior construction: mitml_jax.validation.jomo_sbc (pseudo-cluster for beta,
beta2 and Omega; box-consistent rejection simulation of the categorical data).
"""

import numpy as np
import pytest

import mitml_jax  # noqa: F401  (enables float64)
from mitml_jax.validation.jomo_sbc import BOX, make_jomo_problem, run_jomo_sbc

ALPHA = 1e-3


def test_jomo_sbc_simulation_is_consistent():
    """Fast: the simulated replications are what the jomo kernel's model says (no kernel compile)."""
    prob = make_jomo_problem(30, seed=5, batch=4000)
    a = prob.arrays
    codes = np.asarray(a.codes)[..., 0]
    y = np.asarray(a.y_obs)
    assert prob.truth.shape == (30, len(prob.names))
    assert np.all(np.isfinite(prob.truth))
    # rejection envelope for the flat latent coefficients is far wider than what is accepted
    assert np.all(prob.envelope_margin < 0.8)
    assert 0.002 < prob.acceptance < 0.2
    # both categories occur, codes only where observed, pseudo cluster (last) has no category
    assert set(np.unique(codes[:, :-1])) <= {-1, 0, 1} and np.all(codes[:, -1] == -1)
    assert (codes == 0).any() and (codes == 1).any()
    # Omega is positive definite with the fixed latent variance; Psi positive definite
    names = list(prob.names)
    o11, o12 = prob.truth[:, names.index("omega[y,y]")], prob.truth[:, names.index("omega[y,l]")]
    assert np.all(o12**2 < o11)
    # pseudo-rows carry the fixed pseudo-data in every replication
    assert np.allclose(y[:, -1, :2, 0], 0.0) and np.all(np.ptp(y[:, -1, :, 0], axis=0) == 0)
    assert BOX == (-3.0, 4.0)


@pytest.mark.slow
def test_jomo_sbc_full():
    """300 replications, 99 draws thinned by 20 after 500 sweeps (see the module for the model)."""
    prob = make_jomo_problem(300, seed=0)
    res = run_jomo_sbc(prob, seed=1, n_burn=500, n_draws=99, thin=20)
    print(res.table())
    assert res.failed(ALPHA) == []
