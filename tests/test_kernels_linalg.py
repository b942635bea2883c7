"""Small-matrix algebra and matrix-variate draws of kernels/linalg.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mitml_jax.kernels import linalg


def _spd(rng, batch, d):
    m = rng.normal(size=batch + (d, d))
    return m @ np.swapaxes(m, -1, -2) + d * np.eye(d)


@pytest.mark.parametrize("d", [1, 3, 6, linalg.UNROLL_MAX + 2])
def test_cholesky_solves_and_triangular_inverse_match_numpy(d):
    rng = np.random.default_rng(1)
    a = _spd(rng, (4,), d)
    b = rng.normal(size=(4, d))
    lo = np.asarray(linalg.chol(jnp.asarray(a)))
    np.testing.assert_allclose(lo, np.linalg.cholesky(a), atol=1e-12)
    np.testing.assert_allclose(np.asarray(linalg.cho_solve(jnp.asarray(lo), jnp.asarray(b))),
                               np.linalg.solve(a, b[..., None])[..., 0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(linalg.inv_lower(jnp.asarray(lo))), np.linalg.inv(lo), atol=1e-12)


def test_list_cholesky_matches_array_version():
    rng = np.random.default_rng(2)
    a = _spd(rng, (5,), 4)
    entries = [[jnp.asarray(a[:, i, j]) for j in range(4)] for i in range(4)]
    lo = linalg.chol_list(entries)
    ref = np.linalg.cholesky(a)
    for i in range(4):
        for j in range(i + 1):
            np.testing.assert_allclose(np.asarray(lo[i][j]), ref[:, i, j], atol=1e-12)
    b = [jnp.asarray(rng.normal(size=5)) for _ in range(4)]
    x = linalg.solve_upper_t_list(lo, linalg.solve_lower_list(lo, b))
    np.testing.assert_allclose(np.stack([np.asarray(v) for v in x], -1),
                               np.linalg.solve(a, np.stack([np.asarray(v) for v in b], -1)[..., None])[..., 0],
                               atol=1e-12)


def test_gamma_draws_have_gamma_moments():
    shapes = jnp.asarray([0.4, 1.0, 3.5, 250.0])
    keys = jax.random.split(jax.random.key(3), 40000)
    draws, exhausted = jax.jit(jax.vmap(lambda k: linalg.draw_gamma(k, shapes)))(keys)
    draws = np.asarray(draws)
    n = draws.shape[0]
    k = np.asarray(shapes)
    # mean k, variance k: 5 Monte Carlo standard errors
    assert np.all(np.abs(draws.mean(0) - k) < 5 * np.sqrt(k / n))
    assert np.all(np.abs(draws.var(0) / k - 1) < 0.05)
    assert not np.any(np.asarray(exhausted))


def test_inverse_wishart_mean_is_scale_over_df_minus_d_minus_1():
    scale = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 3.0]])
    df = 12.0
    keys = jax.random.split(jax.random.key(4), 40000)
    draws, _ = jax.jit(jax.vmap(lambda k: linalg.draw_inverse_wishart(k, df, jnp.asarray(scale))))(keys)
    draws = np.asarray(draws)
    expected = scale / (df - 3 - 1)
    se = draws.std(0) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - expected) < 5 * se)
    np.testing.assert_allclose(draws, np.swapaxes(draws, -1, -2))
    # E[X^{-1}] = df * S^{-1}  (the Wishart side)
    inv_mean = np.linalg.inv(draws).mean(0)
    np.testing.assert_allclose(inv_mean, df * np.linalg.inv(scale), rtol=0.03, atol=0.03)


def test_matrix_normal_covariance_is_kronecker():
    rng = np.random.default_rng(5)
    row = _spd(rng, (), 2)
    col = _spd(rng, (), 3)
    r_fac = np.linalg.cholesky(row)
    c_fac = np.linalg.cholesky(col)
    keys = jax.random.split(jax.random.key(6), 40000)
    mean = jnp.zeros((2, 3))
    draws = jax.vmap(lambda k: linalg.draw_matrix_normal(k, mean, jnp.asarray(r_fac), jnp.asarray(c_fac)))(keys)
    vec = np.asarray(draws).transpose(0, 2, 1).reshape(-1, 6)  # column-stacking vec
    np.testing.assert_allclose(np.cov(vec.T), np.kron(col, row), rtol=0.06, atol=0.06 * np.abs(np.kron(col, row)).max())


@pytest.mark.parametrize("dtype, bits_dtype", [("float32", "uint32"), ("float64", "uint64")])
def test_open_uniforms_stay_inside_zero_one_at_extreme_bits(monkeypatch, dtype, bits_dtype):
    """All-ones and all-zeros random bits must give uniforms strictly inside (0, 1)."""
    import jax.numpy as jnp

    from mitml_jax.kernels import noise

    for fill in (0, np.iinfo(bits_dtype).max):
        monkeypatch.setattr(noise.jax.random, "bits",
                            lambda key, shape, dtype=None, fill=fill: jnp.full(shape, fill, dtype))
        u = np.asarray(noise.open_uniforms(jax.random.key(0), (4,), jnp.dtype(dtype)))
        assert np.all(u > 0) and np.all(u < 1), (fill, u)
