"""Simulation-based calibration of jomo's kernel: binary level-1 target and level-2 target.

Test model and proper-prior construction: mitml_jax.validation.jomo_sbc (pseudo-cluster for beta,
beta2 and Omega; box-consistent rejection simulation of the categorical data).

Finding (measured, CPU, float64): with the level-2 target, 1000 replications (99 draws thinned by
20 after 500 sweeps) reject uniformity for beta[1,y] (p = 6e-18, U-shaped: draws too narrow) and
for the data-dependent quantity loglik[w | u1] (p = 6e-20, ranks increasing: draws of
(beta2, Psi, u1) fit the level-2 data worse than the truth); every other quantity passes
(min p = 0.02). The same model without the level-2 target passes everywhere (min p = 0.008).
jomo's beta2 update (jomo2comC.c, reproduced by kernels/jomo.py step 4) is GLS with the
marginal Psi_ww, ignoring u1, which is not the full conditional of beta2 when u_w and u1 are
correlated. Replacing only that step by its full conditional (``JomoConfig.exact_beta2``)
makes every quantity pass on the same data sets (beta[1,y] p = 0.025, loglik p = 0.90), and a
run thinned by 60 (500 other replications) still rejects loglik[w | u1] (p = 1e-4), so the cause
is the beta2 step, not autocorrelation.
"""

import dataclasses

import numpy as np
import pytest

import mitml_jax  # noqa: F401  (enables float64)
from mitml_jax.kernels import jomo
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


# Finding (see the report in the module docstring of this file): jomo's beta2 step draws the
# level-2 fixed effects by GLS with the *marginal* Psi_ww, ignoring the level-1 random effects u1
# (jomo2comC.c does the same, and the kernel reproduces it on purpose). That step is not a full
# conditional of the joint posterior when u_w and u1 are correlated, and SBC detects it.
KNOWN_MISCALIBRATED = ("beta[1,y]", "loglik[w | u1]")


@pytest.fixture(scope="module")
def level2_problem():
    return make_jomo_problem(1000, seed=7)


@pytest.fixture(scope="module")
def level2_sbc(level2_problem):
    return level2_problem, run_jomo_sbc(level2_problem, seed=1, n_burn=500, n_draws=99, thin=20)


@pytest.mark.slow
def test_jomo_sbc_level2_model(level2_sbc):
    """1000 replications, 99 draws thinned by 20 after 500 sweeps: beta, beta2, Psi, Omega, imputed
    y, latent, w are calibrated (chi-square, 20 bins, alpha 0.001), except the known finding."""
    _, res = level2_sbc
    print(res.table())
    failed = [name for name, _ in res.failed(ALPHA)]
    assert [n for n in failed if n not in KNOWN_MISCALIBRATED + OMEGA_MH] == []


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="jomo's beta2 step ignores u1 (marginal Psi_ww GLS), reproduced from jomo2comC.c")
def test_jomo_sbc_level2_known_finding(level2_sbc):
    """Strict xfail: turns into a failure (remove the marker) once the beta2 step conditions on u1."""
    _, res = level2_sbc
    p = dict(zip(res.names, res.p_values))
    assert all(p[n] >= ALPHA for n in KNOWN_MISCALIBRATED)


@pytest.mark.slow
def test_jomo_sbc_level2_with_conditional_beta2(level2_problem):
    """Evidence for the finding: the same data sets, seeds and thinning, with only jomo's beta2 step
    replaced by its full conditional given u1, pass in every quantity but the Metropolis-updated
    Omega entries (see OMEGA_MH; measured before the speed work: beta[1,y] p = 0.025,
    loglik[w | u1] p = 0.90, min p = 0.015)."""
    kernel = jomo.build_kernel(dataclasses.replace(level2_problem.config, exact_beta2=True))
    res = run_jomo_sbc(level2_problem, seed=1, n_burn=500, n_draws=99, thin=20, kernel=kernel)
    print(res.table())
    assert [n for n, _ in res.failed(ALPHA) if n not in OMEGA_MH] == []


# Second finding: the free elements of the level-1 covariance Omega (next to the fixed latent
# variance) are updated by jomo's random-walk Metropolis step, whose proposal sd depends on the
# current diagonal and which redraws until positive definite, without the Hastings correction for
# either (kernels/mh_covariance.py reproduces jomo1ranC.c). Its ranks are slightly off in every run:
# omega[y,y] mean rank 0.466 to 0.471 (p = 0.003 to 0.05) and omega[y,l] p down to 0.0009, with the
# sampler before and after the speed work of 2026-11-25 alike (SBC seeds 1 to 3), so at alpha = 0.001
# they pass or fail by the seed; they are reported, not asserted.
OMEGA_MH = ("omega[y,y]", "omega[y,l]")


@pytest.mark.slow
def test_jomo_sbc_without_level2():
    """Control: the same model without the level-2 target (jomo1ran sweep, Psi 2 x 2) is calibrated
    in every quantity but the Metropolis-updated Omega entries (1000 replications)."""
    prob = make_jomo_problem(1000, seed=7, level2=False)
    res = run_jomo_sbc(prob, seed=1, n_burn=500, n_draws=99, thin=20)
    print(res.table())
    assert [n for n, _ in res.failed(ALPHA) if n not in OMEGA_MH] == []
