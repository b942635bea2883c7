"""The jomo sweep compiled as one CPU kernel (kernels/kernel_call.py) and the scatter-free
pieces it needs (jomo.py's row placement, jomo_data.row_index, jomo_linalg.rows_of)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mitml_jax.kernels import jomo, kernel_call
from mitml_jax.kernels.xla_options import for_backend
from mitml_jax.kernels.jomo_data import row_index
from mitml_jax.kernels.kernel_call import MAX_ELEMENTS, fits_single_kernel, single_kernel
from mitml_jax.kernels.jomo_linalg import SELECT_ROWS_MAX, rows_of

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU emitter")

#: How the wrapped call shows in compiled HLO (XLA's own small-loop calls lack ``inlineable``).
MARK = 'inlineable="false",xla_cpu_small_call="true"'
#: Tests that expect a wrapped call: single kernels are on only for the JAX versions in TESTED_JAX
#: (e.g. not with JAX 0.11, where these tests failed on the GPU machine's CPU).
wrapping = pytest.mark.skipif(not kernel_call.enabled(), reason="single kernels are off for this JAX version")


def _scan(kernel, n_steps=5):
    """A jitted scan of ``kernel(key, state, data, extra)`` (state: dict of arrays)."""

    @jax.jit
    def run(key, state, data, extra):
        def body(s, t):
            return kernel(jax.random.fold_in(key, t), s, data, extra), s["v"][0]
        return jax.lax.scan(body, state, jnp.arange(n_steps, dtype=jnp.uint32))

    return run


def _toy(key, state, data, extra):
    """Reads a typed key, ints, bools, an empty array and an index into a one-row table (which
    XLA folds away); ignores ``extra["unused"]``."""
    u = jax.random.uniform(key, state["v"].shape, dtype=state["v"].dtype)
    picked = data["table"][data["index"]]  # a (1, n) table: the index read is folded away
    v = jnp.where(data["mask"], state["v"] * 0.5 + u, state["v"]) + picked[0]
    v = v + data["counts"].astype(v.dtype).sum() + data["empty"].sum() + extra["scale"]
    return {"v": v, "n": state["n"] + 1}


def _toy_args():
    key = jax.random.key(3)
    state = {"v": jnp.arange(6.0), "n": jnp.zeros((), jnp.int32)}
    data = {"table": jnp.ones((1, 6)), "index": jnp.zeros(4, jnp.int32),
            "mask": jnp.array([True, False] * 3), "counts": jnp.array([-1, 2], jnp.int32),
            "empty": jnp.zeros((0, 3))}
    extra = {"scale": jnp.asarray(0.25), "unused": jnp.ones(5)}
    return key, state, data, extra


def _compiled_text(kernel, args):
    return _scan(kernel).lower(*args).compile().as_text()


def test_fits_single_kernel_looks_into_nested_jaxprs():
    """Dots and scatters are found inside loops; elementwise code and gathers pass."""

    def with_dot(x):
        return jax.lax.scan(lambda c, _: (c @ c, None), x, None, length=2)[0]

    def with_scatter(x):
        return jax.lax.fori_loop(0, 2, lambda i, c: c.at[i].set(1.0), x)

    def elementwise(x):
        return jax.lax.scan(lambda c, _: (jnp.sin(c)[jnp.array([1, 0])], None), x, None,
                            length=2)[0]

    x = jnp.ones((2, 2))
    assert not fits_single_kernel(jax.make_jaxpr(with_dot)(x))
    assert not fits_single_kernel(jax.make_jaxpr(with_scatter)(x))
    assert fits_single_kernel(jax.make_jaxpr(elementwise)(x))


@wrapping
def test_single_kernel_same_numbers_and_one_call():
    """Wrapped, the toy kernel compiles to a call tagged for the single-kernel emitter (the
    process would abort if an unread argument reached it) and gives the same numbers."""
    args = _toy_args()
    wrapped = single_kernel(_toy, groups=((0,), (1,), (2, 3)))
    assert MARK in _compiled_text(wrapped, args)
    assert MARK not in _compiled_text(_toy, args)
    got, expected = _scan(wrapped)(*args), _scan(_toy)(*args)
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, expected)


@wrapping
def test_single_kernel_switched_off(monkeypatch):
    """``MITML_JAX_SINGLE_KERNEL=0``, sweeps with a dot, with a single result or with more than
    MAX_ELEMENTS input values run as plain jitted code."""
    args = _toy_args()
    monkeypatch.setenv("MITML_JAX_SINGLE_KERNEL", "0")
    assert MARK not in _compiled_text(single_kernel(_toy, ((0,), (1,), (2, 3))),
                                                      args)
    monkeypatch.delenv("MITML_JAX_SINGLE_KERNEL")

    def with_dot(key, state, data, extra):
        out = _toy(key, state, data, extra)
        return {"v": out["v"] @ jnp.eye(6), "n": out["n"]}

    assert MARK not in _compiled_text(single_kernel(with_dot, ((0,), (1,), (2, 3))),
                                                      args)

    def with_big_input(key, state, data, extra):
        out = _toy(key, state, data, extra)
        return {"v": out["v"] + extra["big"].sum(), "n": out["n"]}

    key, state, data, extra = args
    big = dict(extra, big=jnp.ones(MAX_ELEMENTS))
    wrapped = single_kernel(with_big_input, ((0,), (1,), (2, 3)))
    assert MARK not in _compiled_text(wrapped, (key, state, data, big))
    assert MARK in _compiled_text(wrapped, (key, state, data, dict(extra, big=jnp.ones(10))))
    # one result: a loop XLA splits over two threads would not compile as the call's result
    def one_result(key, state, data, extra):
        return jax.scipy.special.erfc(_toy(key, state, data, extra)["v"] + big["big"][:6])

    run = jax.jit(lambda *a: single_kernel(one_result, ((0,), (1,), (2, 3)))(*a))
    assert MARK not in run.lower(*args).compile().as_text()
    # counted with the chains of a vmap: 2 x 70,000 elements are too many
    axes = {"scale": None, "unused": None, "big": 0}
    batched = jax.jit(jax.vmap(wrapped, in_axes=(None, None, None, axes)))
    half = dict(extra, big=jnp.ones((2, 70_000)))
    assert MARK not in batched.lower(key, state, data, half).compile().as_text()


def test_row_index_and_put_rows_match_the_scatter():
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(40, size=13, replace=False))
    index = row_index(rows, 40)
    np.testing.assert_array_equal(index[rows], np.arange(13))
    assert np.all(index[np.setdiff1d(np.arange(40), rows)] == 13)
    a = jnp.asarray(rng.normal(size=(40, 3)))
    new = jnp.asarray(rng.normal(size=(13, 3)))
    np.testing.assert_array_equal(np.asarray(jomo._put_rows(a, new, jnp.asarray(index))),
                                  np.asarray(a.at[rows].set(new)))
    empty = row_index(np.zeros(0, np.int64), 5)
    np.testing.assert_array_equal(
        np.asarray(jomo._put_rows(a[:5], jnp.zeros((0, 3)), jnp.asarray(empty))), np.asarray(a[:5]))


def test_rows_of_large_table_is_the_gather():
    table = jnp.asarray(np.random.default_rng(1).normal(size=(SELECT_ROWS_MAX + 3, 2, 2)))
    index = jnp.asarray(np.random.default_rng(2).integers(0, SELECT_ROWS_MAX + 3, size=30))
    np.testing.assert_array_equal(np.asarray(rows_of(table, index)), np.asarray(table[index]))


def _one_kernel_and_same_draws(monkeypatch, data, formula, n_sweeps=20):
    """Compile the sweep of ``formula`` on ``data`` as run_chains does; assert it is one kernel
    and draws what the plain sweep draws (to rounding)."""
    from mitml_jax.kernels.jomo_design import build_group_problems
    from mitml_jax.kernels.threefry import fold_in
    from mitml_jax.spec.model_spec import build_spec

    spec = build_spec(data, formula=formula, kind="jomo")
    prob = build_group_problems(spec, spec.design(data), "none")[0]
    prior = jomo.default_prior(prob.config)
    state = jomo.init(prob.arrays, prob.config, prior)

    def run(kernel):
        def chain(key, s, arrays, prior):
            def body(s, t):
                return kernel(fold_in(key, t), s, arrays, prior)[0], None
            return jax.lax.scan(body, s, jnp.arange(n_sweeps, dtype=jnp.uint32))[0]
        return jax.jit(chain, compiler_options=for_backend(kernel.compiler_options))

    key = jax.random.key(5)
    kernel = jomo.build_kernel(prob.config)
    assert MARK in run(kernel).lower(key, state, prob.arrays, prior).compile().as_text()
    got = run(kernel)(key, state, prob.arrays, prior)
    monkeypatch.setenv("MITML_JAX_SINGLE_KERNEL", "0")
    plain = jomo.build_kernel(prob.config)
    expected = run(plain)(key, state, prob.arrays, prior)
    for name, g, e in zip(got._fields, got, expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=0, atol=1e-10, err_msg=name)


@wrapping
def test_categorical_sweep_is_one_kernel_with_the_same_draws(monkeypatch):
    """Three observed categories at level 1 (latent proposals and the Gibbs fallback) and a
    categorical level-2 target (its latents and the Metropolis update of Psi)."""
    rng = np.random.default_rng(4)
    cluster = np.repeat(np.arange(30), 6)
    u = rng.normal(size=30)[cluster]
    y = u + rng.normal(size=cluster.size)
    level1 = np.digitize(u + rng.normal(size=cluster.size), [-0.5, 0.5])
    level2 = (rng.normal(size=30) > 0)[cluster]
    data = pd.DataFrame({
        "id": cluster, "y": np.where(rng.random(cluster.size) < 0.2, np.nan, y),
        "c": pd.Categorical(np.where(rng.random(cluster.size) < 0.2, None,
                                     np.array(["a", "b", "c"])[level1])),
        "w": pd.Categorical(np.where(np.isin(cluster, [2, 9]), None,
                                     np.where(level2, "hi", "lo"))),
    })
    _one_kernel_and_same_draws(monkeypatch, data, ["y + c ~ 1 + (1|id)", "w ~ 1"])


@wrapping
def test_vignette_sweep_is_one_kernel_with_the_same_draws(monkeypatch):
    """The Level-2 vignette model (continuous and binary level-1 targets, a level-2 target)."""
    import mitml_jax as mj

    _one_kernel_and_same_draws(monkeypatch, mj.load_leadership(),
                               ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"])


def test_enabled_only_for_tested_jax_unless_forced(monkeypatch):
    """On by default only for the JAX versions in TESTED_JAX (a misfit aborts the process, so an
    untested JAX gets the thunk build); MITML_JAX_SINGLE_KERNEL=1 forces it, =0 turns it off."""
    from mitml_jax.kernels import kernel_call as jkc

    monkeypatch.delenv("MITML_JAX_SINGLE_KERNEL", raising=False)
    monkeypatch.setattr(jkc, "TESTED_JAX", frozenset({jkc.jax_version()}))
    assert jkc.enabled()
    monkeypatch.setattr(jkc, "TESTED_JAX", frozenset({(0, 1)}))
    assert not jkc.enabled()
    monkeypatch.setenv("MITML_JAX_SINGLE_KERNEL", "1")
    assert jkc.enabled()
    monkeypatch.setenv("MITML_JAX_SINGLE_KERNEL", "0")
    assert not jkc.enabled()
    monkeypatch.setattr(jkc, "_AVAILABLE", False)
    monkeypatch.setenv("MITML_JAX_SINGLE_KERNEL", "1")
    assert not jkc.enabled()


@wrapping
def test_pan_random_effects_kernel_per_index_under_vmap():
    """pan's random-effects draw is one kernel when called plainly, and under ``vmap`` (also
    nested) one call of that same kernel per mapped index, inside a loop (a vmapped call made XLA
    emit invalid LLVM IR for some shapes): the draws equal the plain calls' bit for bit."""
    from mitml_jax.kernels import conditionals as cond

    rng = np.random.default_rng(0)
    r, q, n_clusters, rows = 2, 2, 6, 4
    eps = rng.standard_normal((2, 3, r, n_clusters, rows))
    z = np.stack([np.ones((n_clusters, rows)), rng.standard_normal((n_clusters, rows))])
    used = np.ones((n_clusters, rows), bool)
    ztz = np.einsum("kjl,mjl->kmj", z, z)
    sigma_inv = np.eye(r) * 1.5 + rng.uniform(0, 0.1, (3, 1, 1))  # (3, r, r): batched by the inner vmap
    psi_inv = np.eye(r * q) * 2.0 + 0.1
    normals = rng.standard_normal((2, 3, r * q, n_clusters))

    def draw(n, e, s):
        return cond.draw_random_effects(n, e, z, used, ztz, s, psi_inv)

    plain = jax.jit(draw).lower(normals[0, 0], eps[0, 0], sigma_inv[0]).compile()
    batched = jax.jit(jax.vmap(draw)).lower(normals[0], eps[0], sigma_inv).compile()
    nested = jax.jit(jax.vmap(jax.vmap(draw), in_axes=(0, 0, None)))
    assert MARK in plain.as_text()
    assert MARK in batched.as_text() and " while(" in batched.as_text()
    expected = np.stack([np.stack([plain(normals[i, c], eps[i, c], sigma_inv[c]) for c in range(3)])
                         for i in range(2)])
    np.testing.assert_array_equal(batched(normals[0], eps[0], sigma_inv), expected[0])
    np.testing.assert_array_equal(nested(normals, eps, sigma_inv), expected)
    nested_text = nested.lower(normals, eps, sigma_inv).compile().as_text()
    assert MARK in nested_text and nested_text.count(" while(") >= 2  # a loop per vmap


def test_pan_random_effects_vmap_without_kernel(monkeypatch):
    """With the wrapping off, the vmapped draw is XLA's batched loops, equal to the plain draws."""
    from mitml_jax.kernels import conditionals as cond

    monkeypatch.setenv("MITML_JAX_SINGLE_KERNEL", "0")
    rng = np.random.default_rng(1)
    r, q, n_clusters, rows = 3, 1, 5, 3
    eps = rng.standard_normal((4, r, n_clusters, rows))
    z = np.ones((q, n_clusters, rows))
    used = np.ones((n_clusters, rows), bool)
    ztz = np.einsum("kjl,mjl->kmj", z, z)
    sigma_inv, psi_inv = np.eye(r) * 1.5, np.eye(r * q) * 2.0 + 0.1
    normals = rng.standard_normal((4, r * q, n_clusters))

    def draw(n, e):
        return cond.draw_random_effects(n, e, z, used, ztz, sigma_inv, psi_inv)

    batched = jax.jit(jax.vmap(draw)).lower(normals, eps).compile()
    assert "xla_cpu_small_call" not in batched.as_text() and " while(" not in batched.as_text()
    np.testing.assert_allclose(batched(normals, eps), np.stack([jax.jit(draw)(normals[c], eps[c]) for c in range(4)]),
                               rtol=1e-12, atol=1e-12)
