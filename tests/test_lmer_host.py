"""lmer's NumPy optimiser (host_fit) against the compiled JAX one (optimize.fit_batch).

Both run the same Newton algorithm, so they must agree to rounding: the same number of accepted
steps, ``theta`` and the estimates to 1e-8 relative (the algorithm's own accuracy is ~1e-8 on
``theta``; observed differences ~1e-12), the gradient at the optimum to 1e-9 absolute.
All JAX fits here have one of two shapes (m = 2, J = 12, q = 1 or 2), so two compilations (the
first shared with test_lmer_api).
"""

import jax
import numpy as np
import pandas as pd
import pytest

from mitml_jax.analysis.lmer import batch as lmer_batch
from mitml_jax.analysis.lmer import lmer
from mitml_jax.analysis.lmer.deviance import LmerStats, profiled
from mitml_jax.analysis.lmer.design import build_design, build_stats, pad_fixed, padded_size
from mitml_jax.analysis.lmer.formula import parse_lmer_formula
from mitml_jax.analysis.lmer.host_fit import fit_batch_host, profiled_host
from mitml_jax.analysis.lmer.optimize import fit_batch
from mitml_jax.errors import MitmlWarning


def simulate(seed, n_clusters=12, size=8, slope_sd=0.6, drop_cluster=False):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), size)
    x = rng.normal(size=len(g))
    u0 = rng.normal(size=n_clusters)
    u1 = slope_sd * rng.normal(size=n_clusters)
    y = 2.0 + 0.7 * x + u0[g] + u1[g] * x + rng.normal(size=len(g))
    frame = pd.DataFrame({"y": y, "x": x, "w": rng.normal(size=len(g)), "id": g + 1})
    return frame[frame["id"] != 3].reset_index(drop=True) if drop_cluster else frame


def _stats(formula, data):
    d = build_design(parse_lmer_formula(formula), data)
    return build_stats(d.y, d.x, d.z, d.imp, d.cluster, d.m, d.n_clusters)[0]


def _jax_fit(stats, reml, maxiter):
    p = stats.xtx.shape[-1]
    out = jax.device_get(fit_batch(pad_fixed(stats, padded_size(p)), np.bool_(reml),
                                   np.int32(maxiter)))
    out = {key: np.asarray(value) for key, value in out.items()}
    out["beta"], out["lx"] = out["beta"][:, :p], out["lx"][:, :p, :p]
    return out


CASES = {
    "intercept REML": ("y ~ 1 + x + (1|id)", [simulate(s) for s in (1, 2)], True, 100),
    "intercept ML, 3 fixed": ("y ~ 1 + x + w + (1|id)", [simulate(s) for s in (4, 5)], False, 100),
    "cluster absent": ("y ~ 1 + x + (1|id)",
                       [simulate(7, drop_cluster=True), simulate(8)], True, 100),
    "not converged": ("y ~ 1 + x + (1|id)", [simulate(s) for s in (1, 2)], True, 1),
    "slopes REML": ("y ~ 1 + x + (1 + x|id)", [simulate(s) for s in (10, 11)], True, 100),
    "slopes ML, singular": ("y ~ 1 + x + (1 + x|id)",
                            [simulate(s, slope_sd=0.0) for s in (13, 14)], False, 100),
}


@pytest.mark.parametrize("case", list(CASES))
def test_host_fit_matches_jax_fit(case):
    formula, data, reml, maxiter = CASES[case]
    stats = _stats(formula, data)
    ours, ref = fit_batch_host(stats, reml, maxiter), _jax_fit(stats, reml, maxiter)
    assert set(ours) == set(ref)
    np.testing.assert_array_equal(ours["iterations"], ref["iterations"])
    for key in ("theta", "deviance", "beta", "sigma2", "lx", "lam"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-8, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(ours["gradient"], ref["gradient"], atol=1e-9)
    np.testing.assert_allclose(ours["hessian"], ref["hessian"], rtol=1e-6, atol=1e-8)
    if case == "slopes ML, singular":
        assert np.min(np.abs(ours["theta"][:, [0, 2]])) < 1e-4
    if case == "not converged":
        assert np.all(ours["iterations"] == 1)


@jax.jit
def _jax_profiled_and_grad(theta, stats, reml):
    """profiled() at every point of every data set, and the autodiff gradient at point 0."""
    one = jax.vmap(lambda t, s: profiled(t, s, reml), in_axes=(0, None))
    grad = jax.vmap(jax.grad(lambda t, s: profiled(t, s, reml)["deviance"]))
    return jax.vmap(one)(theta, stats), grad(theta[:, 0], stats)


@pytest.mark.parametrize("q", [1, 2, 3])
def test_profiled_host_and_complex_step_gradient(q):
    rng = np.random.default_rng(q)
    m, n_clusters, p = 2, 5, 3
    zx = rng.normal(size=(m, n_clusters, 6, q + p + 1))
    stats = LmerStats(
        ztz=np.einsum("mjna,mjnb->mjab", zx[..., :q], zx[..., :q]),
        ztx=np.einsum("mjna,mjnb->mjab", zx[..., :q], zx[..., q : q + p]),
        zty=np.einsum("mjna,mjn->mja", zx[..., :q], zx[..., -1]),
        xtx=np.einsum("mjna,mjnb->mab", zx[..., q : q + p], zx[..., q : q + p]),
        xty=np.einsum("mjna,mjn->ma", zx[..., q : q + p], zx[..., -1]),
        yty=np.einsum("mjn,mjn->m", zx[..., -1], zx[..., -1]),
        n=np.full(m, 6.0 * n_clusters),
        n_fixed=np.full(m, float(p)),
    )
    k = q * (q + 1) // 2
    theta = rng.normal(size=(m, 4, k))
    for reml in (True, False):
        ours = profiled_host(theta, LmerStats(*(a[:, None] for a in stats)), reml)
        ref, grad = _jax_profiled_and_grad(theta, stats, np.bool_(reml))
        for key in ("deviance", "beta", "sigma2", "lx"):
            np.testing.assert_allclose(ours[key], ref[key], rtol=1e-10, atol=1e-12, err_msg=key)
        shifted = theta[:, :1, None, :] + 1e-30j * np.eye(k)
        cs = profiled_host(shifted, LmerStats(*(a[:, None, None] for a in stats)), reml)
        np.testing.assert_allclose(cs["deviance"].imag[:, 0] / 1e-30, grad, rtol=1e-9, atol=1e-9)


def test_run_fit_chooses_host_for_small_batches(monkeypatch):
    data = [simulate(s) for s in (1, 2)]
    stats = _stats("y ~ 1 + x + (1|id)", data)
    assert lmer_batch.use_host(stats)
    big = stats._replace(ztx=np.zeros((1000, 1000, 1, 2)))
    assert not lmer_batch.use_host(big)
    wide = stats._replace(ztx=np.zeros((2, 12, 1, 9)))
    assert not lmer_batch.use_host(wide)
    calls = []
    monkeypatch.setattr(lmer_batch, "fit_batch_host",
                        lambda *a: calls.append(1) or fit_batch_host(*a))
    host = lmer("y ~ 1 + x + (1|id)", data)
    assert calls
    monkeypatch.setattr(lmer_batch, "HOST_MAX_WORK", -1)
    calls.clear()
    compiled = lmer("y ~ 1 + x + (1|id)", data)
    assert not calls
    for a, b in zip(host, compiled):
        np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9)
        np.testing.assert_allclose(a.mitml_extra(), b.mitml_extra(), rtol=1e-7)
        np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-12)
        np.testing.assert_allclose(a.vcov, b.vcov, rtol=1e-7)


def test_host_fit_warns_like_jax_fit(monkeypatch):
    data = [simulate(s, slope_sd=0.0) for s in (13, 14)]
    with pytest.warns(MitmlWarning, match="singular"):
        host = lmer("y ~ 1 + x + (1 + x|id)", data, reml=False)
    monkeypatch.setattr(lmer_batch, "HOST_MAX_WORK", -1)
    with pytest.warns(MitmlWarning, match="singular"):
        compiled = lmer("y ~ 1 + x + (1 + x|id)", data, reml=False)
    assert [f.singular for f in host] == [f.singular for f in compiled]
    assert [f.converged for f in host] == [f.converged for f in compiled]
