"""The sweep's random numbers: written-out threefry equals jax.random; Box-Muller normals are N(0, 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mitml_jax.kernels import noise, threefry

jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize("dtype", [jnp.uint32, jnp.uint64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 554)])
def test_random_bits_equal_jax_random_bits(dtype, shape):
    key = jax.random.key(42)
    keys = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(4, dtype=jnp.uint32))
    expected = jax.vmap(lambda k: jax.random.bits(k, shape, dtype=dtype))(keys)
    got = jax.jit(jax.vmap(lambda k: threefry.random_bits(k, shape, dtype)))(keys)
    assert got.dtype == expected.dtype
    assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_fold_in_equals_jax_fold_in_and_other_impls_fall_back():
    keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.key(7), c))(jnp.arange(5, dtype=jnp.uint32))
    for t in (0, 1, 12345, 2**31 + 3):
        expected = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
        got = jax.jit(threefry.fold_in)(keys, jnp.uint32(t))
        assert np.array_equal(jax.random.key_data(got), jax.random.key_data(expected))
    rbg = jax.random.key(1, impl="rbg")
    assert not threefry.is_threefry_key(rbg)
    assert np.array_equal(jax.random.key_data(threefry.fold_in(rbg, 3)), jax.random.key_data(jax.random.fold_in(rbg, 3)))
    assert np.array_equal(threefry.random_bits(rbg, (5,), jnp.uint32), jax.random.bits(rbg, (5,), dtype=jnp.uint32))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_uniforms_from_bits_equal_open_uniforms(dtype):
    key = jax.random.key(3)
    bits = jax.random.bits(key, (50000,), dtype=jnp.uint64 if dtype == jnp.float64 else jnp.uint32)
    u = noise.uniforms_from_bits(bits, dtype)
    assert np.array_equal(np.asarray(u), np.asarray(noise.open_uniforms(key, (50000,), dtype)))
    extremes = noise.uniforms_from_bits(jnp.asarray([0, np.iinfo(bits.dtype).max], bits.dtype), dtype)
    assert 0.0 < float(extremes[0]) and float(extremes[1]) < 1.0


def test_box_muller_sine_cosine_accurate_on_every_quarter():
    v = jnp.linspace(1e-9, 1 - 1e-9, 200001)
    radius_one = jnp.full_like(v, np.exp(-0.5))  # sqrt(-2 log u) = 1
    c, s = noise.box_muller(radius_one, v)
    assert float(jnp.max(jnp.abs(c - jnp.cos(2 * np.pi * v)))) < 4e-15
    assert float(jnp.max(jnp.abs(s - jnp.sin(2 * np.pi * v)))) < 4e-15


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_sweep_noise_normals_are_standard_normal_and_independent(dtype):
    n = 200001  # odd: the last pair's sine part is dropped
    normals, uniforms = noise.draw_sweep_noise(jax.random.key(11), (3,), n, 9, dtype)
    assert normals.shape == (3, n) and uniforms.shape == (3, 9)
    assert normals.dtype == dtype and uniforms.dtype == dtype
    z = np.asarray(normals, np.float64)
    flat = z.ravel()
    se = 1 / np.sqrt(flat.size)
    assert abs(flat.mean()) < 4 * se
    assert abs(flat.var() - 1) < 4 * np.sqrt(2) * se
    assert abs(stats.kurtosis(flat)) < 4 * np.sqrt(24) * se
    assert stats.kstest(flat, "norm").pvalue > 1e-3
    # the two halves of a pair, and neighbouring batch rows, are uncorrelated
    half = n // 2
    pair_corr = np.corrcoef(z[:, :half].ravel(), z[:, half + 1 : 2 * half + 1].ravel())[0, 1]
    squares_corr = np.corrcoef(z[:, :half].ravel() ** 2, z[:, half + 1 : 2 * half + 1].ravel() ** 2)[0, 1]
    assert abs(pair_corr) < 4 / np.sqrt(3 * half) and abs(squares_corr) < 4 / np.sqrt(3 * half)
    assert abs(np.corrcoef(z[0], z[1])[0, 1]) < 4 / np.sqrt(n)
    u = np.asarray(uniforms)
    assert np.all((u > 0) & (u < 1))


def test_sweep_noise_reproducible_and_key_dependent():
    """Two compilations give the same numbers bit for bit; op-by-op evaluation agrees to rounding
    (a fused loop may contract the sine/cosine polynomials' multiply-adds: 1 ulp, found in ~4% of
    values)."""
    a = noise.draw_sweep_noise(jax.random.key(1), (2,), 10, 3, jnp.float64)
    b = jax.jit(lambda k: noise.draw_sweep_noise(k, (2,), 10, 3, jnp.float64))(jax.random.key(1))
    b2 = jax.jit(lambda k: noise.draw_sweep_noise(k, (2,), 10, 3, jnp.float64))(jax.random.key(1))
    c = noise.draw_sweep_noise(jax.random.key(2), (2,), 10, 3, jnp.float64)
    assert all(np.array_equal(x, y) for x, y in zip(b, b2))
    assert all(np.allclose(x, y, rtol=4e-16, atol=4e-16) for x, y in zip(a, b))
    assert np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def _hash_fusions(compiled_text):
    """Fused computations of a compiled CPU program that evaluate the threefry hash (20 rounds)."""
    import re

    bodies = re.findall(r"\n%[\w.]+ \([^\n]*\) -> [^\n]* \{\n(.*?)\n\}\n", compiled_text, re.S)
    return sum(1 for body in bodies if body.count("shift-left") >= 20)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="reads XLA's CPU program")
def test_sweep_noise_hashes_every_uniform_once():
    """The uniform block is computed once (a buffer), not fused into the Box-Muller radius, cosine
    and sine loops and the uniforms' consumers (XLA dropped the optimisation barrier that asked for
    it: three to four hash evaluations per uniform); batched keys give each key's own numbers."""
    keys = jax.random.split(jax.random.key(3), 4)
    draw = jax.jit(lambda k: noise.draw_sweep_noise(k, (1,), 10, 3, jnp.float64))
    text = draw.lower(keys).compile().as_text()
    assert "conditional" in text and _hash_fusions(text) == 1
    together = draw(keys)
    for i in range(4):
        alone = jax.jit(lambda k: noise.draw_sweep_noise(k, (1,), 10, 3, jnp.float64))(keys[i])
        np.testing.assert_array_equal(together[0][i], alone[0])
        np.testing.assert_array_equal(together[1][i], alone[1])


def test_sweep_noise_on_a_gpu_has_no_conditional():
    """A GPU would decide the conditional's branch on the host every sweep: the CUDA lowering
    keeps the optimisation barrier instead (lowered here without a GPU)."""
    from jax import export

    keys = jax.random.split(jax.random.key(3), 4)
    draw = jax.jit(lambda k: noise.draw_sweep_noise(k, (1,), 10, 3, jnp.float64))
    module = export.export(draw, platforms=["cuda"])(keys).mlir_module()
    assert "optimization_barrier" in module and "stablehlo.if" not in module


def test_sweep_noise_pairs_take_one_hash_and_dtypes_share_words():
    """A normal pair's radius and angle are the two 32-bit words of one hash (uint64 bits of
    jax.random: high word radius, low word angle); the plain uniforms are the following counters'
    uniforms as before; float32 and float64 runs draw their normals from the same words."""
    key = jax.random.key(5)
    n, k = 7, 4
    pairs = 4
    normals, uniforms = noise.draw_sweep_noise(key, (2,), n, k, jnp.float64)
    bits = np.asarray(jax.random.bits(key, (2, pairs + k), dtype=jnp.uint64))
    u_radius = ((bits[:, :pairs] >> np.uint64(32)).astype(np.float64) + 0.5) * 2.0**-32
    u_angle = ((bits[:, :pairs] & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) * 2.0**-32
    radius = np.sqrt(-2 * np.log(u_radius))
    expected = np.concatenate([radius * np.cos(2 * np.pi * u_angle), radius * np.sin(2 * np.pi * u_angle)], axis=1)
    np.testing.assert_allclose(np.asarray(normals), expected[:, :n], rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(np.asarray(uniforms), ((bits[:, pairs:] >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0**-52)
    normals32, uniforms32 = noise.draw_sweep_noise(key, (2,), n, k, jnp.float32)
    np.testing.assert_allclose(np.asarray(normals32), expected[:, :n], rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(np.asarray(uniforms32), np.asarray(noise.open_uniforms(key, (2, pairs + k), jnp.float32))[:, pairs:])
    extremes = noise.uniforms_from_words(jnp.asarray([0, 2**32 - 1], jnp.uint32), jnp.float64)
    assert float(extremes[0]) == 2.0**-33 and float(extremes[1]) == 1 - 2.0**-33


def test_computed_once_gives_fn_of_a_pytree_as_a_conditional_on_cpu():
    """A pytree in and out, an ``always`` predicate from data: the CPU program holds the
    conditional, and the values are fn's whether or not an outer vmap batches the argument."""
    def fn(pair):
        a, b = pair
        return {"sum": a + b, "norm": jnp.sqrt(a * a + b * b)}

    a, b = jnp.arange(1.0, 7.0).reshape(2, 3), jnp.full((2, 3), 2.0)
    run = jax.jit(lambda a, b: noise.computed_once(fn, (a, b), jnp.all(b > 0)))
    got = run(a, b)
    want = fn((a, b))
    for k in want:  # compiled against op by op: to rounding
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-15)
    if jax.default_backend() == "cpu":
        assert "conditional(" in run.lower(a, b).compile().as_text()
    batched = jax.vmap(lambda a, b: noise.computed_once(fn, (a, b), jnp.all(b > 0)))(a, b)
    np.testing.assert_array_equal(np.asarray(batched["sum"]), np.asarray(want["sum"]))


def test_computed_once_stays_a_conditional_under_vmap_with_an_unbatched_predicate():
    """Chains vmapped over a kernel batch its key; with ``always`` from unbatched data the
    conditional survives the ``vmap`` (its result a buffer), and without it (a predicate from the
    batched key) the block sits behind an optimisation barrier. Values equal fn's either way."""
    def fn(key):
        return jax.random.bits(key, (4,), jnp.uint32)

    keys = jax.random.split(jax.random.key(3), 5)
    data = jnp.arange(1.0, 4.0)
    with_data = jax.jit(jax.vmap(lambda k, d: noise.computed_once(fn, k, jnp.all(d > 0)), in_axes=(0, None)))
    with_key = jax.jit(jax.vmap(lambda k: noise.computed_once(fn, k)))
    want = jax.vmap(fn)(keys)
    np.testing.assert_array_equal(np.asarray(with_data(keys, data)), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(with_key(keys)), np.asarray(want))
    if jax.default_backend() == "cpu":
        assert "conditional(" in with_data.lower(keys, data).compile().as_text()
        assert "conditional(" not in with_key.lower(keys).compile().as_text()
