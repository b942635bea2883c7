"""Parameter-matrix algebra: unrolled (small d) and LAPACK (larger d) paths agree with the reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mitml_jax.kernels import conditionals as cond
from mitml_jax.kernels import linalg, pan_chains, param_linalg

jax.config.update("jax_enable_x64", True)


def _spd(d, seed, batch=()):
    m = np.random.default_rng(seed).normal(size=batch + (d, d))
    return m @ np.swapaxes(m, -1, -2) + d * np.eye(d)


@pytest.mark.parametrize("d", [1, 3, 4, 5, 10])
def test_factorisations_and_inverse(d):
    a = _spd(d, d, (2,))
    l = np.asarray(param_linalg.chol(jnp.asarray(a)))
    np.testing.assert_allclose(l, np.linalg.cholesky(a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(param_linalg.inv_lower(jnp.asarray(l))), np.linalg.inv(l), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(param_linalg.spd_inverse(jnp.asarray(a))), np.linalg.inv(a), rtol=1e-10, atol=1e-12)
    b = np.random.default_rng(1).normal(size=(2, d, 3))
    np.testing.assert_allclose(np.asarray(param_linalg.matmul(jnp.asarray(a), jnp.asarray(b))), a @ b, rtol=1e-12)


@pytest.mark.parametrize("d", [1, 3, 10])
def test_inverse_wishart_matches_reference_draw_with_root_and_inverse(d):
    n_norm, n_unif = linalg.bartlett_noise_size(d)
    rng = np.random.default_rng(d)
    normals = jnp.asarray(rng.normal(size=n_norm))
    uniforms = jnp.asarray(rng.uniform(size=n_unif))
    scale = jnp.asarray(_spd(d, 10 + d))
    df = d + 7.5
    a_ref, flag_ref = linalg.bartlett_from_noise(df, d, normals, uniforms)
    a_new, flag_new = param_linalg.bartlett(df, d, normals, uniforms)
    assert np.array_equal(np.asarray(a_ref), np.asarray(a_new)) and bool(flag_ref) == bool(flag_new)
    x_ref, _ = linalg.inverse_wishart_from_noise(df, scale, normals, uniforms)
    x, root, x_inv, _ = jax.jit(param_linalg.inverse_wishart)(df, scale, normals, uniforms)
    x, root, x_inv = (np.asarray(v) for v in (x, root, x_inv))
    np.testing.assert_allclose(x, np.asarray(x_ref), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(root @ root.T, x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x_inv @ x, np.eye(d), atol=1e-9)
    assert np.array_equal(x, x.T) and np.array_equal(x_inv, x_inv.T)


def test_cross_products_equal_einsum():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(3, 50, 15)), rng.normal(size=(2, 50, 15))
    np.testing.assert_allclose(np.asarray(cond.cross_products(jnp.asarray(u), jnp.asarray(v))),
                               np.einsum("ajl,bjl->ab", u, v), rtol=1e-12)


def test_pan_paired_inverse_wisharts_equal_separate_draws():
    from mitml_jax.kernels import pan

    d = 3
    n_norm, n_unif = linalg.bartlett_noise_size(d)
    rng = np.random.default_rng(5)
    noise = [(jnp.asarray(rng.normal(size=n_norm)), jnp.asarray(rng.uniform(size=n_unif))) for _ in range(2)]
    scales = [jnp.asarray(_spd(d, s)) for s in (1, 2)]
    paired = pan._inverse_wisharts(60.0, scales[0], noise[0], 700.0, scales[1], noise[1])
    psi = param_linalg.inverse_wishart(60.0, scales[0], *noise[0])[0]
    sigma, root, sigma_inv, _ = param_linalg.inverse_wishart(700.0, scales[1], *noise[1])
    for got, want in zip(paired[:4], (psi, sigma, root, sigma_inv)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-15)
    inv = pan._inverses(scales[0], scales[1])
    np.testing.assert_allclose(np.asarray(inv[1]), np.linalg.inv(np.asarray(scales[1])), rtol=1e-10)


def test_cross_products_long_sums_use_the_dot_path_and_agree():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(2, 1000, 20)), rng.normal(size=(5, 1000, 20))
    assert 1000 * 20 >= cond.DOT_MIN_LENGTH
    np.testing.assert_allclose(np.asarray(cond.cross_products(jnp.asarray(u), jnp.asarray(v))),
                               np.einsum("ajl,bjl->ab", u, v), rtol=1e-11)


def test_pan_inverse_wisharts_of_different_sizes_equal_separate_draws():
    """q > 1: Sigma (r x r) is drawn inside a batch with Psi (rq x rq) as diag(I, .)."""
    from mitml_jax.kernels import pan

    r, d = 3, 6
    rng = np.random.default_rng(7)
    noise = []
    for size in (d, r):
        n_norm, n_unif = linalg.bartlett_noise_size(size)
        noise.append((jnp.asarray(rng.normal(size=n_norm)), jnp.asarray(rng.uniform(size=n_unif))))
    scale_psi, scale_sigma = jnp.asarray(_spd(d, 3)), jnp.asarray(_spd(r, 4))
    paired = jax.jit(pan._inverse_wisharts)(60.0, scale_psi, noise[0], 700.0, scale_sigma, noise[1])
    psi = param_linalg.inverse_wishart(60.0, scale_psi, *noise[0])[0]
    sigma, root, sigma_inv, _ = param_linalg.inverse_wishart(700.0, scale_sigma, *noise[1])
    for got, want in zip(paired[:4], (psi, sigma, root, sigma_inv)):
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-15)
    sigma_inv2, psi_inv = jax.jit(pan._inverses)(scale_sigma, scale_psi)
    np.testing.assert_allclose(np.asarray(sigma_inv2), np.linalg.inv(np.asarray(scale_sigma)), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(psi_inv), np.linalg.inv(np.asarray(scale_psi)), rtol=1e-10)


def test_bartletts_share_one_gamma_draw_and_equal_single_factors():
    rng = np.random.default_rng(8)
    dims, dfs, noises = (4, 2, 5), (30.0, 9.0, 50.0), []
    for d in dims:
        n_norm, n_unif = linalg.bartlett_noise_size(d)
        noises.append((jnp.asarray(rng.normal(size=n_norm)), jnp.asarray(rng.uniform(size=n_unif))))
    factors, _ = param_linalg.bartletts(dfs, dims, noises)
    for a, df, d, (n, u) in zip(factors, dfs, dims, noises):
        ref, _ = linalg.bartlett_from_noise(df, d, n, u)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(ref))


def test_bartlett_diagonals_with_a_trailing_batch_equal_one_factor_at_a_time():
    """Chains laid out last (pan_chains): every chain's diagonal and flag as drawn alone."""
    dims, dfs, chains = (6, 3), (60.0, 2.5), 5  # df 2.5 - 2 < 1: the shape-below-one path too
    rng = np.random.default_rng(11)
    noises = []
    for d in dims:
        n_norm, n_unif = linalg.bartlett_noise_size(d)
        noises.append((rng.normal(size=(n_norm, chains)), rng.uniform(size=(n_unif, chains))))
    # chain 3: every proposal of Sigma's second diagonal entry rejected (v <= 0): the last is used
    n_prop = linalg.GAMMA_PROPOSALS
    noises[1][0][1 : n_prop * dims[1] : dims[1], 3] = -1e3
    diag, exhausted = jax.jit(lambda n: param_linalg.bartlett_diagonals(dfs, dims, n))(
        [tuple(jnp.asarray(a) for a in pair) for pair in noises])
    assert diag.shape == (sum(dims), chains) and exhausted.shape == (chains,)
    assert np.array_equal(np.asarray(exhausted), np.arange(chains) == 3)
    _, per_value = param_linalg.bartlett_diagonals(dfs, dims, [tuple(jnp.asarray(a) for a in pair) for pair in noises],
                                                   per_value=True)
    flags = np.zeros((sum(dims), chains), bool)
    flags[dims[0] + 1, 3] = True
    assert np.array_equal(np.asarray(per_value), flags)
    signed = pan_chains._signed_diagonals(dfs, dims, [tuple(jnp.asarray(a) for a in pair) for pair in noises])
    assert np.array_equal(np.asarray(signed) < 0, flags)
    np.testing.assert_allclose(np.abs(np.asarray(signed)), np.asarray(diag), rtol=1e-14)  # eager against jit
    for c in range(chains):
        one = [tuple(jnp.asarray(a[:, c]) for a in pair) for pair in noises]
        factors, flag = param_linalg.bartletts(dfs, dims, one)
        want = np.concatenate([np.diag(np.asarray(f)) for f in factors])
        np.testing.assert_allclose(np.asarray(diag[:, c]), want, rtol=1e-15)
        assert bool(exhausted[c]) == bool(flag)
        for f, (d, (normals, uniforms)) in zip(factors, zip(dims, one)):
            ref, _ = linalg.bartlett_from_noise(dfs[dims.index(d)], d, normals, uniforms)
            np.testing.assert_allclose(np.asarray(f), np.asarray(ref), rtol=1e-15)
