"""pan_impute end to end on a small simulated data set (fast; shapes shared to reuse compilation)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mitml_jax import MitmlError, MitmlTypeError, SamplerFailure, pan_impute
from mitml_jax.sampling import run as run_module

FORMULA = "y1 + y2 ~ 1 + x + s + (1 + x | id)"
# every pan_impute call here shares one data shape (2 groups, random slope) and chains in {1, 2}:
# two compiled programs serve the whole module.
ARGS = dict(group="g", n_burn=20, n_iter=5, progress=False)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [1, 4, 6, 5, 3, 6, 2, 5]  # includes a single-row cluster
    cid = np.repeat(np.arange(len(sizes)) * 10 + 7, sizes)
    n = len(cid)
    x = rng.normal(size=n)
    u = rng.normal(size=len(sizes))[np.repeat(np.arange(len(sizes)), sizes)]
    y1 = 1 + 0.5 * x + u + rng.normal(size=n)
    y2 = -1 + 0.3 * y1 + rng.normal(size=n)
    s = np.where(rng.random(n) < 0.5, "F", "M")
    df = pd.DataFrame({"id": cid, "x": x, "y1": y1, "y2": y2, "g": np.where(cid < 40, "b", "a"), "s": s, "w": "k"})
    df.loc[[2, 5, 11, 30], "y1"] = np.nan
    df.loc[[3, 5, 17, 20], "y2"] = np.nan  # row 5: every target missing
    return df


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def imp(data):
    return pan_impute(data, FORMULA, seed=11, chains=2, m=3, **ARGS)


def test_observed_cells_identical_and_missing_cells_filled(data, imp):
    original = data.copy()
    assert imp.replacement.shape == (8, 3)
    assert np.all(np.isfinite(imp.replacement))
    obs = original[["y1", "y2"]].notna().to_numpy()
    for i in range(1, 4):
        completed = imp.complete(i)
        np.testing.assert_array_equal(completed[["y1", "y2"]].to_numpy()[obs], original[["y1", "y2"]].to_numpy()[obs])
        assert not completed[["y1", "y2"]].isna().any().any()
    pd.testing.assert_frame_equal(data, original)  # caller's frame untouched
    # mitml's index order: column-major over targets, rows ascending (0-based; y1 is column 2)
    np.testing.assert_array_equal(imp.index, [[2, 2], [5, 2], [11, 2], [30, 2], [3, 3], [5, 3], [17, 3], [20, 3]])
    # imputations differ between imputation draws
    assert not np.allclose(imp.replacement[:, 0], imp.replacement[:, 1])


def test_draw_shapes_groups_and_result_fields(imp):
    assert imp.kind == "pan" and imp.chains == 2 and imp.m == 3
    assert imp.burnin["beta"].shape == (2, 20, 2, 3, 2)
    assert imp.imputation["psi"].shape == (2, 10, 2, 4, 4)
    assert imp.imputation["sigma"].shape == (2, 10, 2, 2, 2)
    # m = 3 over 2 chains: 2 from chain 0, 1 from chain 1, at the end of each n_iter segment
    np.testing.assert_array_equal(imp.imputation_source, [[0, 4], [0, 9], [1, 4]])
    assert imp.labels["beta"] == (("(Intercept)", "x", "sM"), ("y1", "y2"))
    assert imp.labels["psi"][0] == ("y1:(Intercept)", "y1:x", "y2:(Intercept)", "y2:x")
    assert imp.extra["group_labels"] == ["b", "a"]
    assert set(imp.failures) == {"nonfinite", "gamma_exhausted"}
    assert int(imp.failures["nonfinite"].sum()) == 0
    # separate parameters per group
    assert not np.allclose(imp.imputation["beta"][:, :, 0], imp.imputation["beta"][:, :, 1])
    summ = imp.posterior_summary()
    assert list(summ.columns) == ["par", "row", "col", "group", "mean", "sd", "mcse"]
    assert len(summ) == 2 * (6 + 16 + 4)
    first = summ.iloc[0]
    assert (first.par, first.row, first.col, first.group) == ("beta", 1, 1, 1)
    np.testing.assert_allclose(first["mean"], imp.imputation["beta"][:, :, 0, 0, 0].mean())
    # the saved state is the last draw of every chain
    np.testing.assert_array_equal(np.asarray(imp.state.beta), imp.imputation["beta"][:, -1])


def test_same_seed_identical_and_no_recompilation(data, imp):
    before = run_module.trace_count()
    again = pan_impute(data, FORMULA, seed=11, chains=2, m=3, **ARGS)
    assert run_module.trace_count() == before  # same shapes: no new trace/compile
    np.testing.assert_array_equal(again.replacement, imp.replacement)
    np.testing.assert_array_equal(again.imputation["beta"], imp.imputation["beta"])
    other = pan_impute(data, FORMULA, seed=12, chains=2, m=3, **ARGS)
    assert not np.array_equal(other.replacement, imp.replacement)
    # other values of the same shape, another m, keep_chains: no recompilation either
    shifted = data.assign(y1=data.y1 + 1.0)
    diag = pan_impute(shifted, FORMULA, seed=11, chains=2, m=4, keep_chains="diagonal", **ARGS)
    assert run_module.trace_count() == before
    assert diag.imputation["psi"].shape == (2, 10, 2, 4, 1)
    assert diag.burnin["sigma"].shape == (2, 20, 2, 2, 1)
    full = pan_impute(shifted, FORMULA, seed=11, chains=2, m=4, **ARGS)
    np.testing.assert_array_equal(diag.imputation["psi"][..., 0], np.diagonal(full.imputation["psi"], axis1=-2, axis2=-1))
    np.testing.assert_array_equal(diag.imputation["beta"], full.imputation["beta"])
    assert run_module.trace_count() == before


def test_chains_vmapped_equal_chains_run_alone(data, imp):
    one = pan_impute(data, FORMULA, seed=11, chains=1, m=2, **ARGS)
    # chain 0 of the vmapped run is the single chain (its key is fold_in(key, 0) either way)
    np.testing.assert_allclose(imp.imputation["beta"][0], one.imputation["beta"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(imp.replacement[:, :2], one.replacement, rtol=1e-12, atol=1e-12)
    assert not np.allclose(imp.imputation["beta"][0], imp.imputation["beta"][1])


def test_run_chains_single_chain_id_reproduces_that_chain(data):
    from mitml_jax.arrays import build_arrays
    from mitml_jax.kernels import pan
    from mitml_jax.priors import check_pan_prior, to_pan_prior
    from mitml_jax.spec.model_spec import build_spec

    spec = build_spec(data, formula=FORMULA, group="g", kind="pan")
    arrays, _ = build_arrays(spec.design(data))
    pa = pan.prepare_pan_arrays(arrays)
    prior = to_pan_prior(check_pan_prior(None, 2, 2), 2, jnp.float64)
    s0 = pan.init(pa, prior)

    def go(ids):
        st = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (len(ids),) + a.shape), s0)
        return run_module.run_chains(pan.build_kernel(), st, pa, prior, jax.random.key(5), n_burn=20, n_iter=5,
                                     n_saves=2, transform=pan.transform, save=pan.save_missing,
                                     chain_ids=ids, progress=False)

    both, alone = go([0, 1]), go([1])
    np.testing.assert_allclose(both.imputation["sigma"][1], alone.imputation["sigma"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(both.saves[1], alone.saves[0], rtol=1e-12, atol=1e-12)


def test_save_pred_appends_derived_predictors(data):
    imp = pan_impute(data, FORMULA, seed=1, chains=1, m=2, save_pred=True, **ARGS)
    assert imp.data.columns[-1] == "sM"
    np.testing.assert_array_equal(imp.data["sM"].to_numpy(), (data["s"] == "M").to_numpy().astype(float))
    assert "sM" not in data.columns


def test_bad_arguments_raise_clear_errors(data):
    ARGS = dict(n_burn=20, n_iter=5, m=2, progress=False)  # noqa: N806
    with pytest.raises(MitmlError, match="Binv"):
        pan_impute(data, FORMULA, prior={"a": 2, "Binv": np.eye(3), "c": 2, "Dinv": np.eye(2)}, **ARGS)
    with pytest.raises(MitmlError, match="positive definite"):
        pan_impute(data, FORMULA, prior={"a": 2, "Binv": -np.eye(2), "c": 2, "Dinv": np.eye(2)}, **ARGS)
    with pytest.raises(MitmlError, match="missing component"):
        pan_impute(data, FORMULA, prior={"a": 2}, **ARGS)
    with pytest.raises(MitmlTypeError):
        pan_impute(data, FORMULA, seed="x", **ARGS)
    with pytest.raises(MitmlError, match="keep_chains"):
        pan_impute(data, FORMULA, keep_chains="some", **ARGS)
    with pytest.raises(MitmlError, match="n_iter"):
        pan_impute(data, FORMULA, n_burn=10, n_iter=0, m=2, progress=False)
    with pytest.raises(MitmlError, match="missing data"):
        pan_impute(data.fillna(0.0), FORMULA, **ARGS)


def test_nonfinite_draws_raise_sampler_failure_naming_iteration():
    from typing import NamedTuple

    class S(NamedTuple):
        v: jax.Array
        t: jax.Array

    def kernel(key, state, arrays, prior):
        t = state.t + 1
        v = jnp.where(t >= 7, jnp.nan, state.v + jax.random.normal(key))
        return S(v, t), {"flag": jnp.isnan(v)}

    state = S(jnp.zeros(2), jnp.zeros(2, jnp.int32))
    with pytest.raises(SamplerFailure, match="iteration 7"):
        run_module.run_chains(kernel, state, None, None, jax.random.key(0), n_burn=10, n_iter=2, n_saves=1,
                              transform=lambda s: {"v": s.v}, save=lambda s, a: s.v, progress=False)
