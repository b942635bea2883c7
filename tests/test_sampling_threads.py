"""Chains split over CPU threads (sampling/threads.py) and the diagnostics' thread cap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mitml_jax as mj
from mitml_jax.diagnostics.rank import diagnostic_threads
from mitml_jax.errors import MitmlError
from mitml_jax.sampling import run as run_module
from mitml_jax.sampling import threads
from mitml_jax.kernels import param_linalg
from mitml_jax.kernels.kernel_call import any_equation, jax_version
from mitml_jax.sampling.run import InterruptedChains, run_chains


#: chains are split over threads only where they run on a CPU (a GPU run is never split, and the
#: variable is not read there): these tests need CPU arrays, so they skip where the default backend
#: is another (seen on an H200 with JAX_PLATFORMS=cuda)
cpu_only = pytest.mark.skipif(jax.default_backend() != "cpu", reason="chains split over CPU threads only")


@pytest.fixture
def cores(monkeypatch):
    """Pretend the process may run on 8 cores (CI has 2), so the caps below decide."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    return monkeypatch


def _parts(chains, key=None):
    return threads.chain_parts(chains, np.zeros((chains, 2)), key if key is not None else jax.random.key(0))


@cpu_only
def test_parts_divide_the_chains_and_follow_the_cap(cores):
    assert _parts(1) == 1 and _parts(64) == 8 and _parts(6) == 6 and _parts(7) == 7 and _parts(9) == 3
    cores.setenv("MITML_JAX_CHAIN_THREADS", "2")
    assert _parts(64) == 2 and _parts(7) == 1
    cores.setenv("MITML_JAX_CHAIN_THREADS", "1")
    assert _parts(64) == 1
    cores.setenv("MITML_JAX_CHAIN_THREADS", "16")  # never more than the cores
    assert _parts(64) == 8


def test_keys_of_other_implementations_are_not_split(cores):
    """rbg's random bits under vmap depend on the batch: splitting would change the draws."""
    assert _parts(8, jax.random.key(0, impl="rbg")) == 1


@cpu_only
@pytest.mark.parametrize("value", ["0", "two", "-3"])
def test_bad_thread_settings_name_the_variable(cores, value):
    cores.setenv("MITML_JAX_CHAIN_THREADS", value)
    with pytest.raises(MitmlError, match="MITML_JAX_CHAIN_THREADS"):
        _parts(8)
    cores.setenv("MITML_JAX_DIAGNOSTIC_THREADS", value)
    with pytest.raises(MitmlError, match="MITML_JAX_DIAGNOSTIC_THREADS"):
        diagnostic_threads(10)


def test_diagnostic_thread_cap(cores):
    assert diagnostic_threads(10) == 4 and diagnostic_threads(2) == 2
    cores.setenv("MITML_JAX_DIAGNOSTIC_THREADS", "6")
    assert diagnostic_threads(10) == 6
    cores.setenv("MITML_JAX_DIAGNOSTIC_THREADS", "1")
    assert diagnostic_threads(10) == 1


def test_split_chains_give_the_draws_of_one_part(cores):
    """The same chains in 4, 2 and 1 parts: equal draws (to rounding: the compiled programs differ
    in the number of chains) and each chain its own stream."""
    data = mj.load_studentratings()
    args = dict(formula="ReadDis + SES ~ 1 + (1|ID)", n_burn=20, n_iter=5, m=8, chains=4, seed=11, progress=False)
    runs = {}
    for cap in ("4", "2", "1"):
        cores.setenv("MITML_JAX_CHAIN_THREADS", cap)
        runs[cap] = mj.pan_impute(data, **args)
    for cap in ("4", "2"):
        np.testing.assert_allclose(runs[cap].replacement, runs["1"].replacement, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(runs[cap].imputation["beta"], runs["1"].imputation["beta"], rtol=1e-10,
                                   atol=1e-12)
    beta = runs["4"].imputation["beta"]
    assert beta.shape[0] == 4 and len({float(b) for b in beta[:, -1, 0, 0, 0]}) == 4


def _walk(key, state, arrays, prior):
    return {"x": state["x"] + jax.random.normal(key, state["x"].shape)}, {"n": jnp.int32(1)}


def test_split_run_is_the_unsplit_run_and_ctrl_c_keeps_every_part(cores, monkeypatch):
    monkeypatch.setattr(run_module, "BLOCK_ITERATIONS", 4)
    kw = dict(n_burn=6, n_iter=2, n_saves=3, transform=lambda s: {"x": s["x"]}, save=lambda s, a: s["x"],
              progress=False)

    def run(cap, **extra):
        cores.setenv("MITML_JAX_CHAIN_THREADS", cap)
        return run_chains(_walk, {"x": jnp.zeros((6, 2))}, None, None, jax.random.key(5), **kw, **extra)

    whole, split = run("1"), run("3")
    for a, b in ((whole.burnin["x"], split.burnin["x"]), (whole.saves, split.saves),
                 (whole.state["x"], split.state["x"]), (whole.failures["n"], split.failures["n"])):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert split.failures["n"].tolist() == [12] * 6

    calls = []

    def stop(done):  # Ctrl-C after the third block (burn-in 4 + 2, then 2 saves of 2 iterations)
        calls.append(done)
        if done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedChains) as info:
        run("3", after_block=stop)
    part = info.value.run
    assert calls == [4, 6, 10] and info.value.iterations_done == 10
    assert part.burnin["x"].shape == (6, 6, 2) and part.saves.shape == (6, 2, 2)
    np.testing.assert_allclose(part.saves, whole.saves[:, :2], rtol=1e-12)
    assert part.state["x"].shape == (6, 2) and part.failures["n"].tolist() == [10] * 6


def test_the_kernel_is_traced_once_when_split(cores):
    """The shape probe traces the step for one part's chains, as the block function does: with
    the probe on all chains the kernel was traced twice (0.9 s of a model (b) first call)."""
    traced = []

    def kernel(key, state, arrays, prior):
        traced.append(1)
        return {"x": state["x"] + jax.random.normal(key, state["x"].shape)}, {"n": jnp.int32(1)}

    cores.setenv("MITML_JAX_CHAIN_THREADS", "2")
    run_chains(kernel, {"x": jnp.zeros((4, 3))}, None, None, jax.random.key(1), n_burn=2, n_iter=1, n_saves=1,
               transform=lambda s: {"x": s["x"]}, save=lambda s, a: s["x"], progress=False)
    assert len(traced) == 1


def _cholesky_kernel(cholesky):
    def kernel(key, state, arrays, prior):
        a = state["x"][:, None] * state["x"][None, :] + 6.0 * jnp.eye(5)
        root = cholesky(a)
        return {"x": 0.5 * state["x"] + root[:, 0] * 1e-3 + jax.random.normal(key, (5,))}, {"n": jnp.int32(1)}
    return kernel


@cpu_only
def test_sweeps_with_batched_lapack_calls_are_not_split(cores, monkeypatch):
    """LAPACK calls split their batch over XLA's thread pool and wait for it: with one program per
    pool thread running at once, 256 chains of benchmark model (b) hung. Such sweeps run whole;
    factorisations made one matrix at a time (param_linalg's, as in model (b) now) do not wait."""
    kernel = _cholesky_kernel(jnp.linalg.cholesky)  # batched over chains under vmap
    one_at_a_time = _cholesky_kernel(param_linalg.chol)

    def plain(key, state, arrays, prior):
        return {"x": 0.5 * state["x"] + jax.random.normal(key, (5,))}, {"n": jnp.int32(1)}

    def chains_jaxpr(k):
        return jax.make_jaxpr(jax.vmap(k, in_axes=(0, 0, None, None)))(
            jax.random.split(jax.random.key(0), 4), {"x": jnp.zeros((4, 5))}, None, None)

    monkeypatch.setattr(threads, "POOL_SAFE_JAX", frozenset())  # as with JAX 0.10, whose LAPACK waits
    lapack = chains_jaxpr(kernel)
    assert not threads.splittable(lapack)
    assert threads.splittable(chains_jaxpr(one_at_a_time))
    assert threads.splittable(chains_jaxpr(plain))
    monkeypatch.setattr(threads, "POOL_SAFE_JAX", frozenset({jax_version()}))  # as JAX 0.11
    assert threads.splittable(lapack)
    monkeypatch.setattr(threads, "POOL_SAFE_JAX", frozenset())
    seen = []
    real = run_module.PartRunner
    monkeypatch.setattr(run_module, "PartRunner", lambda block, parts: seen.append(parts) or real(block, parts))
    cores.setenv("MITML_JAX_CHAIN_THREADS", "2")
    for k in (kernel, one_at_a_time, plain):
        run_chains(k, {"x": jnp.zeros((4, 5))}, None, None, jax.random.key(1), n_burn=2, n_iter=1, n_saves=1,
                   transform=lambda s: {"x": s["x"]}, save=lambda s, a: s["x"], progress=False)
    assert seen == [1, 2, 2]


def test_parameter_factorisations_one_at_a_time_equal_lapack_batched():
    """param_linalg's LAPACK path (d > UNROLL_MAX) loops over matrices, also under vmap; the
    factors and triangular inverses equal the batched LAPACK calls' exactly."""
    d = param_linalg.UNROLL_MAX + 3
    rng = np.random.default_rng(3)
    g = rng.standard_normal((3, 2, d, d))
    a = jnp.asarray(g @ np.swapaxes(g, -1, -2) + d * np.eye(d))
    chol = jax.jit(jax.vmap(param_linalg.chol))(a)
    np.testing.assert_array_equal(chol, jnp.linalg.cholesky(a))
    inv = jax.jit(jax.vmap(param_linalg.inv_lower))(chol)
    np.testing.assert_array_equal(inv, jax.scipy.linalg.solve_triangular(chol, jnp.broadcast_to(jnp.eye(d), a.shape), lower=True))
    jaxpr = jax.make_jaxpr(jax.vmap(param_linalg.spd_inverse))(a)

    def batched_lapack(e):
        return e.primitive.name in threads.POOL_WAITING_PRIMITIVES and any(v.aval.ndim > 2 for v in e.invars)

    assert not any_equation(jaxpr, batched_lapack, platform="cpu")
    assert any_equation(jaxpr, batched_lapack, platform="cuda")  # one batched call on a GPU
    assert any_equation(jaxpr, batched_lapack)  # both branches


def test_parameter_factorisations_stay_batched_on_a_gpu():
    """The loop over matrices is the CPU's branch only: lowered for CUDA (no GPU needed), the
    factorisation is one batched cuSOLVER call and the program has no loop."""
    d = param_linalg.UNROLL_MAX + 2
    a = jnp.broadcast_to(2.0 * jnp.eye(d), (4, 2, d, d))
    f = jax.jit(jax.vmap(param_linalg.spd_inverse))
    try:
        cuda = jax.export.export(f, platforms=["cuda"])(a).mlir_module()
    except Exception as exc:  # a JAX without CUDA lowering rules in this build
        pytest.skip(f"cannot lower for CUDA here: {exc}")
    cpu = jax.export.export(f, platforms=["cpu"])(a).mlir_module()
    assert "cusolver_potrf" in cuda and "stablehlo.while" not in cuda
    assert "lapack_dpotrf" in cpu and "stablehlo.while" in cpu
