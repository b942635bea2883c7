"""The chains-innermost pan sweep (kernels/pan_chains.py) against the vmapped one-chain kernel and
against chains run one by one through run_chains."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mitml_jax.arrays import build_arrays
from mitml_jax.kernels import pan, pan_chains
from mitml_jax.priors import check_pan_prior, to_pan_prior
from mitml_jax.sampling import run as run_module
from mitml_jax.sampling.keys import chain_keys
from mitml_jax.spec.model_spec import build_spec
from test_pan_sampler import _data


def _grouped_slopes():
    """2 groups, random slope, a single-row cluster, a row with every target missing."""
    return _data(), "y1 + y2 ~ 1 + x + s + (1 + x | id)", "g"


def _many_patterns(seed=1, clusters=12, rows=6):
    """5 targets missing at random: more patterns than MAX_PATTERNS (row-by-row missing draw)."""
    rng = np.random.default_rng(seed)
    cid = np.repeat(np.arange(clusters), rows)
    y = rng.normal(size=(len(cid), 5)) + rng.normal(size=clusters)[cid, None]
    y[rng.random(size=y.shape) < 0.3] = np.nan
    df = pd.DataFrame(y, columns=[f"y{i}" for i in range(5)])
    df["id"], df["x"] = cid, rng.normal(size=len(cid))
    return df, "y0 + y1 + y2 + y3 + y4 ~ 1 + x + (1 | id)", None


def _large_many_patterns():
    """As _many_patterns with 60 clusters of 8 rows: 2,400 target cells, a chain's data large
    enough for the loop over chains (pan_chains.loops)."""
    return _many_patterns(seed=4, clusters=60, rows=8)


def _few_patterns(seed=2):
    """3 targets, random intercept, a handful of patterns (per-pattern missing draw)."""
    rng = np.random.default_rng(seed)
    cid = np.repeat(np.arange(9), 7)
    y = rng.normal(size=(len(cid), 3)) + rng.normal(size=9)[cid, None]
    y[rng.random(len(cid)) < 0.3, 0] = np.nan
    y[rng.random(len(cid)) < 0.2, 2] = np.nan
    y[4, :] = np.nan
    df = pd.DataFrame(y, columns=["a", "b", "c"])
    df["id"] = cid
    return df, "a + b + c ~ 1 + (1 | id)", None


def _complete_target(seed=3):
    """Three targets, one never missing, one missing in group "u" only, large means (1e6) against
    a residual spread of 1, and a random slope: the sums of the chains-innermost sweep leave
    targets without missing cells out and must not lose digits to the means."""
    rng = np.random.default_rng(seed)
    cid = np.repeat(np.arange(10), 6)
    x = rng.normal(size=len(cid))
    y = 1e6 + rng.normal(size=(len(cid), 3)) + rng.normal(size=10)[cid, None] + 0.5 * x[:, None]
    group = np.where(cid < 5, "u", "v")
    y[rng.random(len(cid)) < 0.3, 0] = np.nan
    y[(rng.random(len(cid)) < 0.3) & (group == "u"), 2] = np.nan
    df = pd.DataFrame(y, columns=["a", "b", "c"])
    df["id"], df["x"], df["g"] = cid, x, group
    return df, "a + b + c ~ 1 + x + (1 + x | id)", "g"


#: the missing-cell sweep runs for data on CPU devices only (cell_stats.available); on a GPU the
#: other tests compare the vmapped kernel with itself
cpu_only = pytest.mark.skipif(jax.default_backend() != "cpu", reason="cell statistics are built for CPU data only")

MODELS = {"grouped_slopes": _grouped_slopes, "many_patterns": _many_patterns, "few_patterns": _few_patterns,
          "complete_target": _complete_target, "large_many_patterns": _large_many_patterns}
CHAINS = pan_chains.MIN_CHAINS + 1
# shared jitted steps: tests with the same model and chain count reuse one compilation
VMAPPED = jax.jit(jax.vmap(pan.build_kernel(), in_axes=(0, 0, None, None)))
INNERMOST = jax.jit(pan_chains.batched_step(pan.build_kernel()))


def _inputs(name, chains):
    data, formula, group = MODELS[name]()
    spec = build_spec(data, formula=formula, group=group, kind="pan")
    arrays, layout = build_arrays(spec.design(data))
    dims = layout.dims
    pa = pan.prepare_pan_arrays(arrays)
    prior = to_pan_prior(check_pan_prior(None, dims["r"], dims["q"]), dims["G"], jnp.float64)
    s0 = pan.init(pa, prior)
    state = jax.tree_util.tree_map(lambda a: jnp.asarray(np.repeat(np.asarray(a)[None], chains, 0)), s0)
    return pa, prior, state


@cpu_only
def test_chains_innermost_applies_from_min_chains_with_the_per_pattern_draw():
    n = pan_chains.MIN_CHAINS
    assert _inputs("grouped_slopes", 1)[0].data.y.shape[0] == 2
    assert pan_chains.applies(n, _inputs("few_patterns", 1)[0])
    assert not pan_chains.applies(n - 1, _inputs("few_patterns", 1)[0])
    assert _inputs("many_patterns", 1)[0].row_pattern is None  # row-by-row draw: vmapped kernel
    assert not pan_chains.applies(n, _inputs("many_patterns", 1)[0])


@cpu_only
@pytest.mark.parametrize("name", ["few_patterns", "grouped_slopes", "complete_target"])
def test_chains_innermost_sweep_equals_vmapped_kernel(name):
    chains = CHAINS
    pa, prior, state = _inputs(name, chains)
    assert pan_chains.applies(chains, pa)
    old, new = VMAPPED, INNERMOST
    keys = chain_keys(jax.random.key(3), np.arange(chains))
    s_old, s_new = state, state
    # rounding at the data's scale: targets near 1e6 leave the kernels' sums 1e6 times eps apart
    atol = 1e-11 * max(1.0, float(np.abs(np.asarray(pa.data.y)).max()) / 1e2)
    for t in range(3):
        k = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
        s_old, i_old = old(k, s_old, pa, prior)
        s_new, i_new = new(k, s_new, pa, prior)
        for field in s_old._fields:
            np.testing.assert_allclose(np.asarray(getattr(s_new, field)), np.asarray(getattr(s_old, field)),
                                       rtol=1e-9, atol=atol, err_msg=f"{name}: {field} at sweep {t}")
        assert i_new.nonfinite.shape == (chains,) and not np.any(i_new.nonfinite)
        np.testing.assert_array_equal(np.asarray(i_new.gamma_exhausted), np.asarray(i_old.gamma_exhausted))
    obs = np.asarray(pa.data.obs)[None]
    np.testing.assert_array_equal(np.asarray(s_new.y)[np.broadcast_to(obs, s_new.y.shape)],
                                  np.asarray(state.y)[np.broadcast_to(obs, state.y.shape)])
    assert not np.allclose(np.asarray(s_new.beta[0]), np.asarray(s_new.beta[1]))  # chains differ


def test_nonfinite_flag_is_per_chain():
    chains = CHAINS
    pa, prior, state = _inputs("few_patterns", chains)
    state = state._replace(sigma=state.sigma.at[2].set(jnp.nan))
    keys = chain_keys(jax.random.key(0), np.arange(chains))
    _, info = INNERMOST(keys, state, pa, prior)
    np.testing.assert_array_equal(np.asarray(info.nonfinite), np.arange(chains) == 2)


@cpu_only
def test_layout_round_trip_and_other_batches_keep_the_chain_first_layout():
    pa, _, state = _inputs("grouped_slopes", pan_chains.MIN_CHAINS)
    inner = pan_chains.enter(state, pa)
    cells = pa.cells  # the missing cells by target: (G, r_m, Mt)
    assert inner.y.shape == cells.cell.shape + (pan_chains.MIN_CHAINS,)
    assert int(np.asarray(cells.valid).sum()) == int(np.asarray(pa.data.miss_valid).sum())
    assert inner.beta.shape == state.beta.shape
    np.testing.assert_array_equal(np.asarray(pan_chains.leave(inner, pa).y), np.asarray(state.y))
    _, _, small = _inputs("grouped_slopes", pan_chains.MIN_CHAINS - 1)
    assert pan_chains.enter(small, pa) is small and pan_chains.leave(small, pa) is small
    pa_rows, _, many = _inputs("many_patterns", pan_chains.MIN_CHAINS)
    assert pan_chains.enter(many, pa_rows) is many


def test_run_chains_with_chains_innermost_reproduces_chains_run_alone():
    chains = CHAINS
    pa, prior, state = _inputs("grouped_slopes", chains)

    def go(ids):
        st = jax.tree_util.tree_map(lambda a: a[: len(ids)], state)
        return run_module.run_chains(pan.build_kernel(), st, pa, prior, jax.random.key(5), n_burn=7, n_iter=3,
                                     n_saves=2, transform=pan.transform, save=pan.save_missing,
                                     chain_ids=ids, progress=False)

    both = go(np.arange(chains))
    for c in (0, chains - 1):
        alone = go([c])
        for name in ("beta", "psi", "sigma"):
            np.testing.assert_allclose(both.burnin[name][c], alone.burnin[name][0], rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(both.imputation[name][c], alone.imputation[name][0], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(both.saves[c], alone.saves[0], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(both.state.y[c], alone.state.y[0], rtol=1e-9, atol=1e-11)
    assert both.state.y.shape == state.y.shape  # the returned state is chain-first again


@cpu_only
def test_cell_statistics_equal_the_sums_over_rows():
    """The sums the chains-innermost sweep builds from the missing cells (observed part on the host)
    equal the sums over the completed rows (used rows only)."""
    pa, _, state = _inputs("complete_target", pan_chains.MIN_CHAINS)
    inner = pan_chains.enter(state, pa)
    d, cells = pa.data, pa.cells
    for g in range(d.y.shape[0]):
        sub = jax.tree_util.tree_map(lambda a: a[g], cells)
        beta_t = jnp.moveaxis(state.beta[:, g], 0, -1) - sub.beta0[..., None]
        yy, xy, zy = pan_chains._sums(inner.y[g], sub, d.y.shape[2])
        zte = pan_chains._residual_sums(zy, sub, beta_t)
        y = np.moveaxis(np.asarray(state.y[:, g]), 0, -1)  # (r, J, L, C)
        x, z, used = np.asarray(d.x[g]), np.asarray(d.z[g]), np.asarray(d.used[g])
        offset = np.einsum("kjl,kt->tjl", x, np.asarray(sub.beta0))[..., None]
        yt = np.where(used[..., None], y - offset, 0.0)
        np.testing.assert_allclose(yy, np.einsum("tjlc,sjlc->tsc", yt, yt), rtol=1e-12, atol=1e-8)
        np.testing.assert_allclose(xy, np.einsum("kjl,tjlc->ktc", x, yt), rtol=1e-12, atol=1e-8)
        eps = np.where(used[..., None], y - np.einsum("kjl,ktc->tjlc", x, np.moveaxis(np.asarray(state.beta[:, g]), 0, -1)), 0.0)
        np.testing.assert_allclose(np.stack(zte), np.einsum("kjl,tjlc->ktjc", z, eps), rtol=1e-12, atol=1e-6)


def test_float32_keeps_the_row_sums():
    data, formula, group = _few_patterns()
    spec = build_spec(data, formula=formula, group=group, kind="pan")
    arrays, _ = build_arrays(spec.design(data), dtype=np.float32)
    assert pan.prepare_pan_arrays(arrays).cells is None
    assert not pan_chains.applies(pan_chains.MIN_CHAINS, pan.prepare_pan_arrays(arrays))


@cpu_only
def test_blocks_of_the_chains_innermost_sweep_get_its_compiler_options():
    """run_chains compiles a block that runs this sweep without YNNPACK fusions (pan_chains'
    COMPILER_OPTIONS); one chain's block keeps XLA's defaults but for the kernel's own options
    (512-bit vectors, as every pan block)."""
    pa, _, _ = _inputs("few_patterns", 1)
    kernel = pan.build_kernel()
    assert run_module._batch_options(kernel, pan_chains.MIN_CHAINS, pa) == tuple(sorted(pan_chains.COMPILER_OPTIONS.items()))
    assert run_module._batch_options(kernel, 1, pa) is None
    assert kernel.compiler_options == {"xla_cpu_prefer_vector_width": 512}
    assert pan_chains.COMPILER_OPTIONS["xla_cpu_prefer_vector_width"] == 512
    pa_rows, _, _ = _inputs("many_patterns", 1)  # more than MAX_PATTERNS patterns: the vmapped kernel
    assert run_module._batch_options(kernel, pan_chains.MIN_CHAINS, pa_rows) is None


def test_cell_statistics_only_for_data_on_the_cpu():
    """On a GPU the vmapped kernel runs (it measured as fast or faster there): arrays whose devices
    are not CPUs get no cell statistics, so pan_chains.applies is False for them."""
    from types import SimpleNamespace

    from mitml_jax.kernels import cell_stats

    data, formula, group = _few_patterns()
    spec = build_spec(data, formula=formula, group=group, kind="pan")
    arrays, _ = build_arrays(spec.design(data))
    pa = pan.prepare_pan_arrays(arrays)
    on_cpu = jax.default_backend() == "cpu"
    assert (pa.cells is not None) == on_cpu and cell_stats._on_cpu(arrays.y) == on_cpu
    gpu = SimpleNamespace(sharding=SimpleNamespace(device_set=(SimpleNamespace(platform="gpu"),)))
    assert not cell_stats._on_cpu(gpu)
    assert not cell_stats.available(arrays._replace(y=SimpleNamespace(dtype=np.dtype(np.float64), shape=arrays.y.shape,
                                                                      sharding=gpu.sharding)), pa.row_pattern)


@cpu_only
@pytest.mark.parametrize("name", ["many_patterns", "grouped_slopes"])
def test_vmapped_kernel_writes_noise_and_bartlett_diagonals_to_buffers(name):
    """Chains vmapped over the one-chain kernel keep two CPU conditionals (computed_once): the
    sweep's noise hash and the Bartlett factors' gamma draw, each written once to a buffer (fused
    into their consumers, the gamma draw alone grew to 750 KB of LLVM IR for benchmark model (b)).
    Their predicate comes from the data, so the chain vmap leaves them conditionals."""
    pa, prior, state = _inputs(name, CHAINS)
    keys = chain_keys(jax.random.key(3), np.arange(CHAINS))
    text = VMAPPED.lower(keys, state, pa, prior).compile().as_text()
    assert text.count(" conditional(") == 2


@cpu_only
@pytest.mark.parametrize("name", ["grouped_slopes", "complete_target"])
def test_chains_innermost_sweep_writes_noise_and_bartlett_diagonals_to_buffers(name):
    """The chains-innermost sweep keeps the same two conditionals with several groups: the gamma
    draws' predicate comes from all groups' data outside the groups' vmap (a group's own
    ``n_clusters > 0`` was batched there, the conditional became a select and the draws fused
    into their consumers; the grouped Introduction model then swept 8 chains in 0.067-0.086
    against 0.050-0.071 ms per iteration)."""
    pa, prior, state = _inputs(name, CHAINS)
    assert pan_chains.applies(CHAINS, pa) and pa.data.y.shape[0] == 2
    keys = chain_keys(jax.random.key(3), np.arange(CHAINS))
    text = INNERMOST.lower(keys, state, pa, prior).compile().as_text()
    assert text.count(" conditional(") == 2


@cpu_only
def test_chains_loop_over_the_one_chain_kernel_for_larger_data_on_a_cpu():
    """Where the chains-innermost sweep does not apply, chains on a CPU run one after another
    through the one-chain kernel once a chain's data hold LOOP_MIN_CELLS target cells (smaller
    data, and GPUs, keep the vmap)."""
    large = _inputs("large_many_patterns", 1)[0]
    assert large.data.y.size >= pan_chains.LOOP_MIN_CELLS and not pan_chains.applies(3, large)
    assert pan_chains.loops(3, large) and not pan_chains.loops(1, large)
    small = _inputs("many_patterns", 1)[0]
    assert small.data.y.size < pan_chains.LOOP_MIN_CELLS and not pan_chains.loops(3, small)
    assert not pan_chains.loops(3, _inputs("few_patterns", 1)[0])  # the missing-cell sweep


@cpu_only
def test_looped_chains_draw_what_one_chain_draws_bit_for_bit():
    """Chain 0 of a 3-chain run is the one-chain run with the same seed, bit for bit, once the
    chains loop over the one-chain kernel (vmapped, they differed in the last bits)."""
    from mitml_jax import pan_impute

    data, formula, _ = _large_many_patterns()
    one = pan_impute(data, formula, n_burn=3, n_iter=2, m=1, chains=1, seed=11, progress=False)
    three = pan_impute(data, formula, n_burn=3, n_iter=2, m=3, chains=3, seed=11, progress=False)
    for name in ("beta", "psi", "sigma"):
        np.testing.assert_array_equal(np.asarray(three.imputation[name])[0], np.asarray(one.imputation[name])[0])
    np.testing.assert_array_equal(three.replacement[:, 0], one.replacement[:, 0])
