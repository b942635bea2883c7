"""The loop-shape helpers of the jomo sweep compute exactly what they replace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mitml_jax.kernels.jomo_halves import in_halves
from mitml_jax.kernels.jomo_linalg import (cross_product, inverse_wishart_from_noise,
                                           small_matmul, wishart_noise_size)
from mitml_jax.kernels import linalg as la


@pytest.mark.parametrize("shapes", [((3, 3), (3, 3)), ((50, 15, 1), (1, 3)), ((7, 3, 3), (7, 3, 3)),
                                    ((206, 3), (3, 3)), ((4, 10), (10, 2))])
def test_small_matmul_is_matmul(shapes):
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=s) for s in shapes)
    np.testing.assert_allclose(np.asarray(small_matmul(jnp.asarray(a), jnp.asarray(b))), a @ b,
                               rtol=1e-13, atol=1e-13)


def test_cross_product_is_transpose_product():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(750, 3)), rng.normal(size=(750, 2))
    np.testing.assert_allclose(np.asarray(cross_product(jnp.asarray(a))), a.T @ a, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(cross_product(jnp.asarray(a), jnp.asarray(b))), a.T @ b,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 750])
def test_in_halves_equals_direct_evaluation(n):
    rng = np.random.default_rng(n)
    x, y = jnp.asarray(rng.normal(size=(n, 2))), jnp.asarray(rng.normal(size=(n,)))

    def fn(a, b):
        return jnp.exp(a) * b[:, None] + jnp.sin(a)

    got = jax.jit(lambda a, b: in_halves(fn, a, b))(x, y)
    assert got.shape == (n, 2)
    np.testing.assert_allclose(np.asarray(got), np.asarray(fn(x, y)), rtol=1e-13, atol=1e-300)


def test_inverse_wishart_from_noise_matches_pan_linalg():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(4, 4))
    scale = jnp.asarray(s @ s.T + 4 * np.eye(4))
    n_n, n_u = wishart_noise_size(4)
    normals, uniforms = jnp.asarray(rng.normal(size=n_n)), jnp.asarray(rng.random(n_u))
    ours = inverse_wishart_from_noise(57.0, scale, normals, uniforms)
    pans = la.inverse_wishart_from_noise(57.0, scale, normals, uniforms)[0]
    np.testing.assert_allclose(np.asarray(ours), np.asarray(pans), rtol=1e-12)
