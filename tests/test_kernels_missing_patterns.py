"""The per-pattern draw of missing targets (kernels/missing_patterns.py) against the row-by-row draw
(conditionals.draw_missing) and against the closed-form conditional normal."""

import jax.numpy as jnp
import numpy as np

from mitml_jax.kernels import conditionals as cond
from mitml_jax.kernels import missing_patterns as mp


def _spd(rng, d):
    m = rng.normal(size=(d, d))
    return m @ m.T + d * np.eye(d)


def _problem(rng, r, n_cl, n_row, p_miss=0.35):
    obs = rng.uniform(size=(r, n_cl, n_row)) > p_miss
    obs[:, 0, 0] = False  # a row with every target missing
    obs[:, -1, -1] = True  # a complete row
    y = np.where(obs, rng.normal(size=obs.shape), 0.0)
    mean = rng.normal(size=obs.shape)
    lam = np.linalg.inv(_spd(rng, r))
    miss_flat = np.flatnonzero(~obs.ravel())
    miss_index = np.r_[miss_flat, y.size, y.size]  # two padded slots
    valid = np.r_[np.ones(len(miss_flat), bool), False, False]
    return obs, y, mean, lam, miss_index, valid


def test_row_patterns_numbers_rows_by_their_pattern_and_pads_groups():
    obs = np.ones((2, 3, 2, 2), bool)
    obs[0, 0, 0, 1] = False
    obs[0, 1, 1, 0] = False
    obs[0, 2, 1, 0] = False
    obs[1, 2, 0, 0] = False
    pattern_miss, row_pattern = mp.row_patterns(obs)
    assert pattern_miss.shape == (2, 3, 3) and row_pattern.shape == (2, 2, 2)
    for g in range(2):
        np.testing.assert_array_equal(pattern_miss[g, 0], False)  # pattern 0: nothing missing
        np.testing.assert_array_equal(pattern_miss[g][row_pattern[g]], np.moveaxis(~obs[g], 0, -1))
    np.testing.assert_array_equal(pattern_miss[1, 2], False)  # group 1 has 2 patterns, padded


def test_row_patterns_falls_back_when_too_many_patterns():
    r = mp.MAX_TARGETS + 1
    assert mp.row_patterns(np.ones((1, r, 2, 2), bool)) == (None, None)
    rng = np.random.default_rng(0)
    obs = rng.uniform(size=(1, 6, 40, 20)) > 0.5  # about 64 patterns of 6 targets
    assert mp.row_patterns(obs) == (None, None)
    assert mp.row_patterns(obs, max_patterns=64)[0].shape == (1, 64, 6)


def test_pattern_draw_equals_row_by_row_draw():
    rng = np.random.default_rng(5)
    for r in (1, 2, 3, 5):
        obs, y, mean, lam, miss_index, valid = _problem(rng, r, 4, 6)
        normals = rng.normal(size=len(miss_index))
        pattern_miss, row_pattern = mp.row_patterns(obs[None], max_patterns=64)
        grid = cond.scatter_missing(jnp.asarray(normals), y.shape, jnp.asarray(miss_index), jnp.asarray(valid))
        new = mp.draw_missing_patterns(grid, jnp.asarray(y), jnp.asarray(obs), jnp.asarray(mean), jnp.asarray(lam),
                                       jnp.asarray(pattern_miss[0]), jnp.asarray(row_pattern[0]))
        old = cond.draw_missing(jnp.asarray(normals), jnp.asarray(y), jnp.asarray(obs), jnp.asarray(mean),
                                jnp.asarray(lam), jnp.asarray(miss_index), jnp.asarray(valid))
        np.testing.assert_array_equal(np.asarray(new)[obs], y[obs])  # observed cells bit for bit
        np.testing.assert_allclose(np.asarray(new), np.asarray(old), rtol=1e-12, atol=1e-12)


def test_pattern_draw_moments_are_the_conditional_normal():
    rng = np.random.default_rng(6)
    r = 3
    obs, y, mean, lam, miss_index, valid = _problem(rng, r, 2, 5)
    sigma = np.linalg.inv(lam)
    pattern_miss, row_pattern = mp.row_patterns(obs[None])
    n_slots = len(miss_index)

    def draw(noise):
        grid = cond.scatter_missing(jnp.asarray(noise), y.shape, jnp.asarray(miss_index), jnp.asarray(valid))
        return np.asarray(mp.draw_missing_patterns(grid, jnp.asarray(y), jnp.asarray(obs), jnp.asarray(mean),
                                                   jnp.asarray(lam), jnp.asarray(pattern_miss[0]),
                                                   jnp.asarray(row_pattern[0])))

    base = draw(np.zeros(n_slots))
    cols = np.stack([(draw(np.eye(n_slots)[i]) - base)[~obs] for i in range(n_slots)], axis=1)
    mu, cov = base[~obs], cols @ cols.T
    cells = np.argwhere(~obs)
    for j, l in {(int(a), int(b)) for a, b in cells[:, 1:]}:
        m = ~obs[:, j, l]
        o = ~m
        e_o = (y - mean)[o, j, l]
        cm = mean[m, j, l] + (sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], e_o) if o.any() else 0)
        cc = sigma[np.ix_(m, m)] - (sigma[np.ix_(m, o)] @ np.linalg.solve(sigma[np.ix_(o, o)], sigma[np.ix_(o, m)])
                                    if o.any() else 0)
        sel = np.flatnonzero((cells[:, 1] == j) & (cells[:, 2] == l))
        np.testing.assert_allclose(mu[sel], cm, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cov[np.ix_(sel, sel)], cc, rtol=1e-10, atol=1e-12)


def test_draw_missing_row_by_row_alone_and_per_pattern_under_vmap_agree():
    import jax

    rng = np.random.default_rng(7)
    obs, y, mean, lam, miss_index, valid = _problem(rng, 3, 3, 5)
    pattern_miss, row_pattern = mp.row_patterns(obs[None])
    n_chains = mp.MIN_BATCH + 1
    normals = rng.normal(size=(n_chains, len(miss_index)))
    means = mean[None] + rng.normal(size=(n_chains,) + mean.shape)
    args = [jnp.asarray(a) for a in (y, obs)]
    fixed = [jnp.asarray(a) for a in (lam, miss_index, valid, pattern_miss[0], row_pattern[0])]

    def one(nz, mu):
        return mp.draw_missing(nz, *args, mu, *fixed)

    batched, finite = jax.jit(jax.vmap(one))(jnp.asarray(normals), jnp.asarray(means))
    assert np.all(np.asarray(finite))
    for c in range(n_chains):
        alone, ok = one(jnp.asarray(normals[c]), jnp.asarray(means[c]))
        assert bool(ok)
        np.testing.assert_allclose(np.asarray(batched[c]), np.asarray(alone), rtol=1e-12, atol=1e-12)
    bad = jnp.asarray(np.full_like(lam, np.nan))
    _, finite = jax.vmap(lambda nz, mu: mp.draw_missing(nz, *args, mu, bad, *fixed[1:]))(
        jnp.asarray(normals), jnp.asarray(means))
    assert not np.any(np.asarray(finite))
