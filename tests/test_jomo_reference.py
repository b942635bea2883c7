"""Slow statistical checks of ``jomo_impute`` against R's jomo and simulated truth."""

import json
import os

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax.diagnostics.rank import mcse

REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "level2_jomo.json")


def _compare(imp, params):
    """Posterior mean within 4 * sqrt(mcse_R^2 + mcse_ours^2), sd within 10% (non-constant)."""
    bad = []
    for p in params:
        draws = imp.imputation[p["par"]][:, :, p["group"] - 1, p["row"] - 1, p["col"] - 1]
        if p["sd"] == 0:
            assert np.allclose(draws, p["mean"])
            continue
        ours = float(mcse(draws))
        tol = 4 * np.sqrt(p["mcse"] ** 2 + ours**2)
        if abs(draws.mean() - p["mean"]) > tol or abs(draws.std() / p["sd"] - 1) > 0.10:
            bad.append((p["par"], p["row"], p["col"], p["mean"], float(draws.mean()), p["sd"],
                        float(draws.std()), tol))
    return bad


@pytest.mark.slow
def test_level2_vignette_model_matches_r_jomo():
    with open(REFERENCE) as fh:
        ref = json.load(fh)
    imp = mj.jomo_impute(
        mj.load_leadership(),
        formula=["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"],
        n_burn=1000, n_iter=250, m=80, chains=8, seed=2024, progress=False,
    )
    assert imp.imputation["beta"].shape[:2] == (8, 2500)
    bad = _compare(imp, ref["params"])
    assert not bad, bad


def _simulate_two_level(seed, n_clusters=150, size=12):
    rng = np.random.default_rng(seed)
    psi = np.array([[0.6, 0.2], [0.2, 0.4]])
    sigma = np.array([[1.0, 0.4], [0.4, 1.5]])
    beta = np.array([1.0, -2.0])
    u = rng.multivariate_normal(np.zeros(2), psi, size=n_clusters)
    cl = np.repeat(np.arange(n_clusters), size)
    y = beta + u[cl] + rng.multivariate_normal(np.zeros(2), sigma, size=len(cl))
    data = pd.DataFrame({"id": cl, "y1": y[:, 0], "y2": y[:, 1]})
    data.loc[rng.random(len(cl)) < 0.25, "y1"] = np.nan
    data.loc[rng.random(len(cl)) < 0.15, "y2"] = np.nan
    return data, beta, psi, sigma


@pytest.mark.slow
def test_continuous_two_level_recovers_simulated_truth():
    """Continuous two-level model: posterior means near the generating values (MAR data)."""
    data, beta, psi, sigma = _simulate_two_level(5)
    imp = mj.jomo_impute(data, formula="y1 + y2 ~ 1 + (1|id)", n_burn=500, n_iter=100, m=40,
                         chains=4, seed=3, progress=False)
    est_beta = imp.imputation["beta"][:, :, 0, 0, :].reshape(-1, 2)
    est_psi = imp.imputation["psi"][:, :, 0].reshape(-1, 2, 2)
    est_sigma = imp.imputation["sigma"][:, :, 0].reshape(-1, 2, 2)
    # within 4 posterior sds of the truth
    assert np.all(np.abs(est_beta.mean(0) - beta) < 4 * est_beta.std(0))
    assert np.all(np.abs(est_psi.mean(0) - psi) < 4 * est_psi.std(0))
    assert np.all(np.abs(est_sigma.mean(0) - sigma) < 4 * est_sigma.std(0))


def _simulate_categorical(seed, n_clusters=80, size=10):
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_clusters), size)
    u = rng.normal(scale=0.5, size=n_clusters)
    x = 0.5 + u[cl] + rng.normal(size=len(cl))
    latent = rng.multivariate_normal([0.3, -0.2], [[1, 0.5], [0.5, 1]], size=len(cl))
    latent += 0.4 * (x - 0.5)[:, None]
    cat = np.where(latent.max(1) > 0, latent.argmax(1), 2)
    levels = np.array(["a", "b", "c"])
    data = pd.DataFrame({"id": cl, "x": x,
                         "g": pd.Categorical(levels[cat], categories=list(levels))})
    data.loc[rng.random(len(cl)) < 0.2, "x"] = np.nan
    data.loc[rng.random(len(cl)) < 0.2, "g"] = np.nan
    return data, np.bincount(cat, minlength=3) / len(cat)


@pytest.mark.slow
@pytest.mark.parametrize("random_l1", ["none", "full"])
def test_multicategory_target_imputations_follow_observed_shares(random_l1):
    """Three categories (two latents); imputed shares close to the complete-data shares."""
    data, shares = _simulate_categorical(8)
    imp = mj.jomo_impute(data, formula="x + g ~ 1 + (1|id)", random_L1=random_l1, n_burn=400,
                         n_iter=50, m=20, chains=4, seed=1, progress=False)
    assert imp.imputation["beta"].shape[-1] == 3  # x, g1, g2
    sig = imp.imputation["sigma"][:, :, 0]
    if random_l1 == "none":
        assert np.all(sig[..., 1, 1] == 1.0) and np.all(sig[..., 1, 2] == 0.5)
    else:
        assert sig.shape[-2] == 3 * 80
        assert np.all(sig[..., 1::3, 1] == 1.0)
        assert np.all(np.isfinite(imp.extra["a"])) and np.all(imp.extra["a"] >= 3)
    done = pd.concat([imp.complete(print=i) for i in range(1, 21)])
    got = done["g"].value_counts(normalize=True).reindex(["a", "b", "c"]).to_numpy()
    assert np.all(np.abs(got - shares) < 0.05)
    observed = data["g"].notna()
    first = imp.complete(print=1)
    assert (first.loc[observed, "g"] == data.loc[observed, "g"]).all()


@pytest.mark.slow
def test_single_level_with_interleaved_groups_maps_rows_back():
    """Single-level jomo with groups whose rows interleave (mitml's bug B1 fixed)."""
    rng = np.random.default_rng(2)
    n = 400
    grp = np.tile(["g1", "g2"], n // 2)
    shift = np.where(grp == "g1", -5.0, 5.0)
    y1 = shift + rng.normal(size=n)
    y2 = 0.5 * y1 + rng.normal(size=n)
    data = pd.DataFrame({"grp": grp, "y1": y1, "y2": y2})
    data.loc[rng.random(n) < 0.3, "y1"] = np.nan
    imp = mj.jomo_impute(data, formula="y1 + y2 ~ 1", group="grp", n_burn=200, n_iter=20, m=5,
                         progress=False, seed=4)
    assert "psi" not in imp.imputation and imp.imputation["beta"].shape[2] == 2
    done = imp.complete(print=1)
    miss = data["y1"].isna()
    means = done[miss].groupby("grp")["y1"].mean()
    assert means["g1"] < -3 and means["g2"] > 3


@pytest.mark.slow
def test_exact_beta2_option_is_the_full_conditional_step():
    """``JomoConfig.exact_beta2``: beta2 from its full conditional given u1 (flat prior),
    ``N((X2'X2)^-1 X2'(w - u1 c'), s^2 (X2'X2)^-1)`` with ``c = Psi_w1 Psi_11^-1`` and
    ``s^2 = Psi_ww - c Psi_1w``, computed here in NumPy. The standard normal of the draw is
    recovered from jomo's marginal step (same key, same noise position):
    ``beta2 = (X2'X2)^-1 X2'w + sqrt((X2'X2)^-1 Psi_ww) e`` (one level-2 target, intercept only)."""
    import dataclasses

    import jax

    from mitml_jax.kernels import jomo
    from mitml_jax.kernels.jomo_design import build_group_problems
    from mitml_jax.spec.model_spec import build_spec

    data = mj.load_leadership()
    spec = build_spec(data, formula=["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"],
                      kind="jomo")
    prob = build_group_problems(spec, spec.design(data))[0]
    assert prob.config.p2 == 1 and prob.config.r2 == 1 and not prob.config.cat2_blocks
    prior = jomo.default_prior(prob.config)
    state = jomo.init(prob.arrays, prob.config, prior)
    plain = jax.jit(jomo.build_kernel(prob.config))
    for i in range(3):  # move away from the starting values (u1 = 0)
        state, _ = plain(jax.random.key(i), state, prob.arrays, prior)
    exact = jax.jit(jomo.build_kernel(dataclasses.replace(prob.config, exact_beta2=True)))
    key = jax.random.key(99)
    a, _ = exact(key, state, prob.arrays, prior)
    c, _ = plain(key, state, prob.arrays, prior)

    d1 = prob.config.d1
    psi, u1 = np.asarray(state.psi), np.asarray(state.u1)
    x2, w = np.asarray(prob.arrays.x2), np.asarray(state.y2)
    xtx_inv = np.linalg.inv(x2.T @ x2)
    coef = np.linalg.solve(psi[:d1, :d1], psi[:d1, d1:]).T  # (1, d1)
    s2 = psi[d1:, d1:] - coef @ psi[:d1, d1:]
    e = (np.asarray(c.beta2) - xtx_inv @ x2.T @ w) / np.sqrt(xtx_inv * psi[d1:, d1:])
    expected = xtx_inv @ x2.T @ (w - u1 @ coef.T) + np.sqrt(xtx_inv * s2) * e
    np.testing.assert_allclose(np.asarray(a.beta2), expected, rtol=1e-10)
    assert not np.allclose(np.asarray(a.beta2), np.asarray(c.beta2))
