"""Each pan conditional against its closed-form moments on tiny problems.

The normal conditionals are affine in their standard normals, ``draw(z) = mean + M z``, so the
mean is ``draw(0)`` and the covariance ``M M^T`` with ``M``'s columns ``draw(e_i) - draw(0)``:
exact checks, no Monte Carlo error. The inverse-Wishart conditionals are checked by Monte Carlo.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mitml_jax.kernels import conditionals as cond
from mitml_jax.kernels import linalg


def _spd(rng, d, scale=1.0):
    m = rng.normal(size=(d, d))
    return scale * (m @ m.T + d * np.eye(d))


def _affine_moments(fn, n_noise):
    base = np.asarray(fn(np.zeros(n_noise)))
    cols = [np.asarray(fn(np.eye(n_noise)[i])) - base for i in range(n_noise)]
    m = np.stack([c.ravel() for c in cols], axis=1)
    return base, m @ m.T


def test_random_effects_mean_and_covariance():
    rng = np.random.default_rng(10)
    r, q, n_cl, n_row = 2, 2, 3, 4
    eps = rng.normal(size=(r, n_cl, n_row))
    z = np.stack([np.ones((n_cl, n_row)), rng.normal(size=(n_cl, n_row))])
    used = np.ones((n_cl, n_row), bool)
    used[1, 3] = False  # a row without observed targets does not enter
    sigma, psi = _spd(rng, r), _spd(rng, r * q)
    sigma_inv, psi_inv = np.linalg.inv(sigma), np.linalg.inv(psi)
    zu = z * used
    ztz = np.einsum("kjl,mjl->kmj", zu, zu)

    def draw(noise):
        return cond.draw_random_effects(jnp.asarray(noise).reshape(r * q, n_cl), jnp.asarray(eps), jnp.asarray(z),
                                        jnp.asarray(used), jnp.asarray(ztz), jnp.asarray(sigma_inv), jnp.asarray(psi_inv))

    mean, cov = _affine_moments(draw, r * q * n_cl)
    for j in range(n_cl):
        zj = zu[:, j, :].T  # (L, q)
        ej = eps[:, j, :].T  # (L, r)
        prec = np.kron(sigma_inv, zj.T @ zj) + psi_inv
        sb = np.linalg.inv(prec)
        mj = sb @ (zj.T @ ej @ sigma_inv).T.ravel()  # vec stacks columns: index target * q + k
        np.testing.assert_allclose(mean[:, j], mj, rtol=1e-10, atol=1e-12)
        idx = np.arange(r * q) * n_cl + j
        np.testing.assert_allclose(cov[np.ix_(idx, idx)], sb, rtol=1e-10, atol=1e-12)


def test_missing_values_conditional_normal_given_observed():
    rng = np.random.default_rng(11)
    r, n_cl, n_row = 3, 1, 4
    sigma = _spd(rng, r)
    lam = np.linalg.inv(sigma)
    y = rng.normal(size=(r, n_cl, n_row))
    mean = rng.normal(size=(r, n_cl, n_row))
    obs = np.ones((r, n_cl, n_row), bool)
    obs[0, 0, 0] = False                   # one missing
    obs[[0, 2], 0, 1] = False              # two missing
    obs[:, 0, 2] = False                   # all missing
    miss_flat = np.flatnonzero(~obs.ravel())
    m_slots = len(miss_flat) + 1           # one padded slot
    miss_index = np.r_[miss_flat, y.size]
    valid = np.r_[np.ones(len(miss_flat), bool), False]

    def draw(noise):
        return cond.draw_missing(jnp.asarray(noise), jnp.asarray(y), jnp.asarray(obs), jnp.asarray(mean),
                                 jnp.asarray(lam), jnp.asarray(miss_index), jnp.asarray(valid))

    out0 = np.asarray(draw(np.zeros(m_slots)))
    np.testing.assert_array_equal(out0[obs], y[obs])  # observed cells bit-identical
    mu, cov = _affine_moments(lambda nz: np.asarray(draw(nz))[~obs], m_slots)
    cells = np.argwhere(~obs)
    for row in range(3):
        m = ~obs[:, 0, row]
        o = ~m
        e_o = (y - mean)[o, 0, row]
        cm = mean[m, 0, row] + (sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], e_o) if o.any() else 0)
        cc = sigma[np.ix_(m, m)] - (sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], sigma[np.ix_(o, m)])
                                    if o.any() else 0)
        sel = np.flatnonzero(cells[:, 2] == row)
        np.testing.assert_allclose(mu[sel], cm, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cov[np.ix_(sel, sel)], cc, rtol=1e-10, atol=1e-12)
    # the fully observed row is untouched
    np.testing.assert_array_equal(out0[:, 0, 3], y[:, 0, 3])


def test_beta_given_sigma_is_matrix_normal():
    rng = np.random.default_rng(12)
    p, r = 2, 3
    xtx = _spd(rng, p)
    sigma = _spd(rng, r)
    beta_hat = rng.normal(size=(p, r))
    lx_inv_t = np.linalg.inv(np.linalg.cholesky(xtx)).T
    mean, cov = _affine_moments(
        lambda nz: np.asarray(cond.draw_beta(jnp.asarray(nz).reshape(p, r), jnp.asarray(beta_hat),
                                             jnp.asarray(lx_inv_t), jnp.asarray(np.linalg.cholesky(sigma)))).T.ravel(),
        p * r,
    )
    np.testing.assert_allclose(mean, beta_hat.T.ravel(), atol=1e-12)
    np.testing.assert_allclose(cov, np.kron(sigma, np.linalg.inv(xtx)), rtol=1e-10, atol=1e-12)


def test_psi_and_sigma_inverse_wishart_moments():
    rng = np.random.default_rng(13)
    r, q, n_cl, n_row, p = 2, 1, 6, 5, 1
    b = rng.normal(size=(r * q, n_cl + 1))
    mask = np.r_[np.ones(n_cl, bool), False]  # a padded cluster is ignored
    dinv, c = np.eye(r * q), 2.0
    eps = rng.normal(size=(r, n_cl, n_row)) + 3.0
    x = np.ones((p, n_cl, n_row))
    used = np.ones((n_cl, n_row), bool)
    used[0, 0] = False
    binv, a = np.eye(r), 2.0
    psi_n, psi_u = linalg.bartlett_noise_size(r * q)
    sig_n, sig_u = linalg.bartlett_noise_size(r)
    keys = jax.random.split(jax.random.key(14), 20000)

    def one(k):
        k1, k2, k3, k4 = jax.random.split(k, 4)
        u = lambda kk, n: jax.random.uniform(kk, (n,), minval=1e-300)  # noqa: E731
        psi, _ = cond.draw_psi(jax.random.normal(k1, (psi_n,)), u(k2, psi_u), jnp.asarray(b), jnp.asarray(mask),
                               float(n_cl), c, jnp.asarray(dinv))
        sigma, beta_hat, _ = cond.draw_sigma(jax.random.normal(k3, (sig_n,)), u(k4, sig_u), jnp.asarray(eps),
                                             jnp.asarray(x), jnp.asarray(used), jnp.asarray(np.eye(1) / used.sum()),
                                             float(used.sum()), a, jnp.asarray(binv))
        return psi, sigma, beta_hat

    psi, sigma, beta_hat = (np.asarray(v) for v in jax.jit(jax.vmap(one))(keys))
    d = r * q
    s_psi = dinv + b[:, :n_cl] @ b[:, :n_cl].T
    expect_psi = s_psi / (c + n_cl - d - 1)
    e = eps[:, used]
    bh = e.mean(axis=1)
    s_sig = binv + (e - bh[:, None]) @ (e - bh[:, None]).T
    expect_sigma = s_sig / (a + used.sum() - p - r - 1)
    np.testing.assert_allclose(beta_hat[0, 0], bh, rtol=1e-12)
    for draws, expect in ((psi, expect_psi), (sigma, expect_sigma)):
        se = draws.std(0) / np.sqrt(draws.shape[0])
        assert np.all(np.abs(draws.mean(0) - expect) < 5 * se)
