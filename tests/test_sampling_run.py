"""Host-side pieces of the generic driver: block sizing and the split of m over chains."""

import jax
import numpy as np
import pytest

from mitml_jax.sampling import run as run_module
from mitml_jax.sampling.collect import saves_needed, split_imputations


def test_blocks_bound_device_memory_not_iterations():
    small = {"beta": jax.ShapeDtypeStruct((1, 1, 1, 3), np.float64)}
    save = {"y": jax.ShapeDtypeStruct((1, 1, 500), np.float64)}
    block_len, n_slots = run_module._block_sizes(small, save, 100)
    assert block_len == run_module.BLOCK_ITERATIONS and n_slots == run_module.MAX_SAVES_PER_BLOCK
    # the static sizes do not depend on n_iter (no recompilation for another n_iter) ...
    assert run_module._block_sizes(small, save, 7) == (block_len, n_slots)
    # ... unless a segment is longer than a block
    assert run_module._block_sizes(small, save, 1500) == (2048, n_slots)
    big = {"psi": jax.ShapeDtypeStruct((256, 1, 10, 10), np.float64)}  # 256 chains
    big_save = {"y": jax.ShapeDtypeStruct((256, 1, 10**5), np.float64)}
    block_len, n_slots = run_module._block_sizes(big, big_save, 10)
    assert block_len * 256 * 100 * 8 <= run_module.BLOCK_BYTES
    assert n_slots * 256 * 10**5 * 8 <= run_module.SAVE_BYTES or n_slots == 1


def test_plan_segments_saves_and_blocks():
    plan = run_module._plan(n_burn=25, n_imp=60, n_iter=20, block_len=10, n_slots=4)
    assert plan[:3] == [(0, 10, 10, "burnin"), (10, 10, 10, "burnin"), (20, 5, 10, "burnin")]
    # n_iter above the block length never happens (block_sizes grows the block): one segment each
    plan = run_module._plan(n_burn=0, n_imp=60, n_iter=20, block_len=64, n_slots=2)
    assert plan == [(0, 40, 20, "imputation"), (40, 20, 20, "imputation")]
    plan = run_module._plan(n_burn=3, n_imp=30, n_iter=3, block_len=1000, n_slots=128)
    assert plan == [(0, 3, 1000, "burnin"), (3, 30, 3, "imputation")]
    covered = [t for t0, n, _, _ in run_module._plan(17, 40, 4, 12, 2) for t in range(t0, t0 + n)]
    assert covered == list(range(57))


def test_imputations_split_evenly_chain_by_chain():
    np.testing.assert_array_equal(split_imputations(5, 2), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]])
    np.testing.assert_array_equal(split_imputations(2, 4), [[0, 0], [1, 0]])
    assert saves_needed(5, 2) == 3 and saves_needed(2, 4) == 1 and saves_needed(8, 4) == 2


def test_other_n_iter_and_n_burn_reuse_the_compiled_block(monkeypatch):
    import pandas as pd

    import mitml_jax as mj

    rng = np.random.default_rng(4)
    data = pd.DataFrame({"y": rng.normal(size=60), "x": rng.normal(size=60), "g": np.repeat(np.arange(12), 5)})
    data.loc[::4, "y"] = np.nan
    args = dict(formula="y ~ 1 + x + (1|g)", seed=3, progress=False)
    first = mj.pan_impute(data, n_burn=10, n_iter=5, m=2, **args)
    before = run_module.trace_count()
    other = mj.pan_impute(data, n_burn=7, n_iter=3, m=3, **args)
    assert run_module.trace_count() == before  # n_burn, n_iter and m are run-time values
    # the same chain: iteration t draws the same numbers whatever the segment lengths
    np.testing.assert_array_equal(other.burnin["beta"][:, :7], first.burnin["beta"][:, :7])
    # blocks of 4 iterations: more, shorter blocks give the same draws and saves
    monkeypatch.setattr(run_module, "BLOCK_ITERATIONS", 4)
    small = mj.pan_impute(data, n_burn=7, n_iter=3, m=3, **args)
    np.testing.assert_array_equal(small.imputation["beta"], other.imputation["beta"])
    np.testing.assert_array_equal(small.replacement, other.replacement)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options reach CPU programs only")
def test_kernel_compiler_options_reach_the_block(monkeypatch):
    """A kernel's ``compiler_options`` attribute is used to compile its block (jomo sets one);
    here an option the backend is told it accepts, so that the compile error shows it arrived."""
    import jax.numpy as jnp
    import pytest

    from mitml_jax.kernels import xla_options

    monkeypatch.setattr(xla_options, "accepted", lambda name, value, backend="cpu": True)

    def kernel(key, state, arrays, prior):
        return state + 1.0, jnp.zeros((), jnp.int32)

    kernel.compiler_options = {"xla_no_such_option_for_this_test": True}
    with pytest.raises(Exception, match="xla_no_such_option_for_this_test"):
        run_module.run_chains(kernel, np.zeros((1, 2)), None, None, jax.random.key(0), n_burn=1, n_iter=1,
                              n_saves=1, transform=lambda s: {"x": s}, save=lambda s, a: s, progress=False)


def test_cpu_compiler_options_are_not_given_to_other_backends(monkeypatch):
    """jomo's sweep and lmer's fit carry XLA CPU options; a GPU refused them ("INVALID_ARGUMENT:
    No such compile option: 'xla_cpu_use_fusion_emitters'"), so jomo_impute failed on every GPU
    (seen on an H200). The options now reach the compiler on the CPU backend only."""
    from mitml_jax.analysis.lmer import optimize
    from mitml_jax.kernels import jomo, xla_options

    known = {k: v for k, v in jomo.COMPILER_OPTIONS.items() if xla_options.accepted(k, v)}
    assert xla_options.for_backend(jomo.COMPILER_OPTIONS, "cpu") == (known or None)
    assert xla_options.for_backend(jomo.COMPILER_OPTIONS, "gpu") is None
    assert xla_options.for_backend(None, "cpu") is None
    # an option the installed XLA does not have (JAX 0.11 dropped xla_cpu_use_fusion_emitters,
    # and jomo_impute failed on CPU there too) is left out
    assert not xla_options.accepted("xla_no_such_option", True)
    assert xla_options.for_backend({"xla_no_such_option": True}, "cpu") is None
    monkeypatch.setattr(xla_options.jax, "default_backend", lambda: "gpu")
    assert xla_options.for_backend(optimize.COMPILER_OPTIONS) is None
    assert optimize._compiled_fit("gpu") is not optimize._compiled_fit("cpu")
