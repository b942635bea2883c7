"""Fast checks of the jomo conditionals against closed forms and brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from mitml_jax.kernels.jomo_noise import (draw_sweep_noise, log_positive, normal_cdf,
                                          normal_quantile, threefry_bits64)
from mitml_jax.kernels.jomo_linalg import conditional_normal_draw, inverse_wishart
from mitml_jax.kernels.latent import (LATENT_LOWER, LATENT_UPPER, in_region, latent_to_category,
                                      truncated_normal, update_latent_block)
from mitml_jax.kernels.level2 import draw_random_effects, random_effects_prior
from mitml_jax.kernels.mh_covariance import (first_positive_definite_change, free_elements,
                                             mh_covariance_from_noise,
                                             mh_covariance_from_proposals, mh_covariance_update)
from mitml_jax.kernels.random_l1 import log_f_df, update_df


def test_truncated_normal_matches_scipy_mean_and_bounds():
    mean = jnp.array([0.3, -2.0, 5.0, 0.0])
    lower = jnp.array([0.0, -3.0, -3.0, -3.0])
    upper = jnp.array([4.0, 0.0, 0.0, 4.0])
    draws = jax.vmap(lambda k: truncated_normal(k, mean, 1.0, lower, upper))(
        jax.random.split(jax.random.key(0), 5000))
    d = np.asarray(draws)
    assert np.all(d > np.asarray(lower)) and np.all(d < np.asarray(upper))
    for i in range(4):
        a, b = (float(lower[i]) - float(mean[i])), (float(upper[i]) - float(mean[i]))
        ref = stats.truncnorm(a, b, loc=float(mean[i])).mean()
        sd = stats.truncnorm(a, b, loc=float(mean[i])).std()
        assert abs(d[:, i].mean() - ref) < 5 * sd / np.sqrt(d.shape[0])


@pytest.mark.parametrize("k", [1, 3])
def test_latent_draws_agree_with_observed_category(k):
    rng = np.random.default_rng(1)
    n, d = 400, k + 1
    cov = np.eye(d) * 0.6 + 0.4
    cov[1:, 1:] = 0.5 + 0.5 * np.eye(k)
    resid = jnp.asarray(rng.normal(size=(n, d)))
    block_mean = jnp.asarray(rng.normal(scale=2.0, size=(n, k)))
    codes = jnp.asarray(rng.integers(-1, k + 1, size=n))
    new = update_latent_block(jax.random.key(3), resid, block_mean, jnp.asarray(cov), 1, k, codes)
    new = np.asarray(new)
    observed = np.asarray(codes) >= 0
    assert np.all(np.asarray(in_region(jnp.asarray(new), codes, k))[observed])
    assert np.all(latent_to_category(new)[observed] == np.asarray(codes)[observed])
    assert np.all((new[observed] > LATENT_LOWER) & (new[observed] < LATENT_UPPER))
    current = np.asarray(block_mean + resid[:, 1:])
    np.testing.assert_array_equal(new[~observed], current[~observed])


@pytest.mark.slow
def test_latent_block_law_matches_rejection_sampling():
    """K = 3: parallel proposals + Gibbs fallback give the truncated conditional's mean."""
    cov = jnp.asarray([[1.0, 0.3, 0.2], [0.3, 1.0, 0.5], [0.2, 0.5, 1.0]])
    resid = jnp.zeros((1, 3)).at[0, 0].set(0.8)
    block_mean = jnp.asarray([[-0.5, 0.4]])
    code = 0  # latent 0 is the largest and positive

    def chain(key):
        def step(x, k):
            e = resid.at[:, 1:].set(x - block_mean)
            x = update_latent_block(k, e, block_mean, cov, 1, 2, jnp.array([code]), n_proposals=2)
            return x, x[0]
        _, xs = jax.lax.scan(step, block_mean, jax.random.split(key, 2500))
        return xs[100:]

    draws = jax.vmap(chain)(jax.random.split(jax.random.key(5), 8)).reshape(-1, 2)
    # brute force: rejection from the exact conditional normal
    c = np.asarray(cov)
    coef = c[1:, :1] / c[0, 0]
    mu = np.asarray(block_mean[0]) + coef[:, 0] * 0.8
    s = c[1:, 1:] - coef @ c[:1, 1:]
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal(mu, s, size=400000)
    ok = (z.min(1) > -3) & (z.max(1) < 4) & (z.argmax(1) == code) & (z.max(1) > 0)
    ref = z[ok]
    got = np.asarray(draws)
    se = ref.std(0) / np.sqrt(len(got))
    assert np.all(np.abs(got.mean(0) - ref.mean(0)) < 5 * se)


def test_conditional_normal_draw_matches_closed_form():
    cov = np.array([[2.0, 0.6, 0.3], [0.6, 1.0, 0.2], [0.3, 0.2, 1.5]])
    patterns = jnp.asarray([[True, False, True]])
    vals = jnp.asarray([[0.0, 1.3, 0.0]])
    means = jnp.asarray([[0.5, -0.2, 1.0]])
    draws = jax.vmap(lambda k: conditional_normal_draw(
        k, vals, means, jnp.asarray(cov), patterns, jnp.zeros(1, jnp.int32))[0])(
        jax.random.split(jax.random.key(2), 10000))
    d = np.asarray(draws)
    assert np.all(d[:, 1] == 1.3)
    m, o = [0, 2], [1]
    mu = np.array([0.5, 1.0]) + cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)],
                                                                   np.array([1.5]))
    sc = cov[np.ix_(m, m)] - cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)],
                                                                cov[np.ix_(o, m)])
    assert np.all(np.abs(d[:, m].mean(0) - mu) < 5 * np.sqrt(sc.diagonal() / len(d)))
    np.testing.assert_allclose(np.cov(d[:, m].T), sc, rtol=0.08, atol=0.03)


@pytest.mark.slow
def test_inverse_wishart_mean():
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    draws = jax.vmap(lambda k: inverse_wishart(k, 12.0, jnp.asarray(s)))(
        jax.random.split(jax.random.key(4), 10000))
    np.testing.assert_allclose(np.asarray(draws).mean(0), s / (12 - 2 - 1), rtol=0.06)


@pytest.mark.slow
def test_random_effects_given_level2_residuals_match_brute_force():
    rng = np.random.default_rng(3)
    r, q, n_cl = 2, 1, 2
    d1 = r * q
    psi = np.array([[1.0, 0.2, 0.4], [0.2, 0.8, -0.1], [0.4, -0.1, 1.2]])
    u2 = rng.normal(size=(n_cl, 1))
    omega = np.array([[1.0, 0.3], [0.3, 2.0]])
    ztz = np.array([[[4.0]], [[7.0]]])
    ztr = rng.normal(size=(n_cl, q, r))
    pm, pp = random_effects_prior(jnp.asarray(psi), jnp.asarray(u2), d1)
    draws = jax.vmap(lambda k: draw_random_effects(
        jax.random.normal(k, (n_cl, d1)), pm, pp, jnp.asarray(np.linalg.inv(omega)), jnp.asarray(ztz), jnp.asarray(ztr)))(
        jax.random.split(jax.random.key(1), 8000))
    c11, c12, c22 = psi[:d1, :d1], psi[:d1, d1:], psi[d1:, d1:]
    cond = c11 - c12 @ np.linalg.solve(c22, c12.T)
    for j in range(n_cl):
        prior_mean = c12 @ np.linalg.solve(c22, u2[j])
        prec = np.linalg.inv(cond) + np.kron(np.linalg.inv(omega), ztz[j])
        rhs = np.linalg.solve(cond, prior_mean) + (ztr[j] @ np.linalg.inv(omega)).T.reshape(-1)
        mean = np.linalg.solve(prec, rhs)
        got = np.asarray(draws[:, j])
        se = np.sqrt(np.diag(np.linalg.inv(prec)) / len(got))
        assert np.all(np.abs(got.mean(0) - mean) < 5 * se)
        np.testing.assert_allclose(got.var(0), np.diag(np.linalg.inv(prec)), rtol=0.08)


def test_mh_covariance_keeps_fixed_block_and_targets_wishart_posterior():
    """Without fixed blocks jomo's target is the IW(n - d - 1, S) density (approximately: no
    Hastings correction); with a fixed latent block that block never moves."""
    s = np.array([[60.0, 12.0, 5.0], [12.0, 40.0, 8.0], [5.0, 8.0, 30.0]])
    n = 60.0
    cov0 = jnp.asarray(np.diag([1.0, 1.0, 1.0]))
    elements = free_elements(3, [(2, 1)])
    assert (2, 2) not in elements and len(elements) == 5

    def chain(key):
        def step(c, k):
            c, acc = mh_covariance_update(k, c, jnp.asarray(s), n, elements)
            return c, (c, acc)
        _, (covs, acc) = jax.lax.scan(step, cov0, jax.random.split(key, 1000))
        return covs[300:], acc

    covs, acc = jax.vmap(chain)(jax.random.split(jax.random.key(7), 6))
    covs = np.asarray(covs).reshape(-1, 3, 3)
    assert np.all(covs[:, 2, 2] == 1.0)
    assert np.all(np.linalg.eigvalsh(covs).min(axis=1) > 0)
    assert 0.1 < float(np.asarray(acc).mean()) / len(elements) < 0.9
    # without the fixed block, the free part's mean is near S/(n - 2 d - 2) (d = 3)
    free_mean = covs.mean(0)[:2, :2]
    assert np.all(np.abs(free_mean - s[:2, :2] / (n - 8)) < 0.15 * s[:2, :2].diagonal().max()
                  / (n - 8))


@pytest.mark.slow
def test_df_update_moves_towards_the_generating_df():
    """Cluster covariances drawn from IW(12, 9 I): jomo's df step settles near 12, never < r."""
    r, n_cl, a_true = 3, 60, 12.0
    omegas = stats.invwishart(df=a_true, scale=np.eye(r) * (a_true - r - 1)).rvs(
        size=n_cl, random_state=1)
    sum_logdet = float(np.sum(np.linalg.slogdet(omegas)[1]))
    logdet_h = float(np.linalg.slogdet(np.linalg.inv(omegas).sum(0) + np.eye(r))[1])
    step = jax.jit(update_df, static_argnums=(3, 4))
    a, values, accepted = jnp.asarray(float(r)), [], 0
    for i in range(150):
        a, acc = step(jax.random.key(i), a, float(r), r, n_cl, sum_logdet, logdet_h)
        values.append(float(a))
        accepted += int(acc)
    values = np.array(values)
    assert np.all(values >= r) and np.all(np.isfinite(values))
    assert accepted > 20
    assert 6.0 < values[50:].mean() < 25.0
    assert np.isfinite(float(log_f_df(jnp.log(10.0), 3.0, r, n_cl, sum_logdet, logdet_h)))


def _mh_reference(cov, s, n, elements, u, nu, n_tries):
    """jomo's element-wise Metropolis sweep written directly in NumPy/SciPy: the interval of
    positive-definite changes from the determinant polynomial, every log target by Cholesky."""
    cov = cov.copy()

    def loglik(c):
        factor = np.linalg.cholesky(c)
        return -0.5 * np.trace(np.linalg.solve(c, s)) - nu * np.log(np.diag(factor)).sum()

    current, accepted = loglik(cov), 0
    for e, (j, k) in enumerate(elements):
        sd = cov[j, j] * np.sqrt(11.6 / n) if j == k else 0.1 * np.sqrt(cov[j, j] * cov[k, k])
        change = np.zeros_like(cov)
        change[j, k] = change[k, j] = 1.0
        dets = [np.linalg.det(cov + h * sd * change) for h in (-1.0, 0.0, 1.0)]
        poly = np.polyfit([-1.0, 0.0, 1.0], dets, 2)  # det as a polynomial in delta / sd
        roots = np.sort(np.real(np.roots(np.trim_zeros(poly, "f"))))
        lower = roots[roots < 0].max() if np.any(roots < 0) else -np.inf
        upper = roots[roots > 0].min() if np.any(roots > 0) else np.inf
        p_lo, p_hi = special.ndtr(lower), special.ndtr(upper)
        if u[e, 0] < (p_lo + 1.0 - p_hi) ** n_tries:
            continue
        cand = cov + sd * special.ndtri(p_lo + u[e, 1] * (p_hi - p_lo)) * change
        new = loglik(cand)
        if np.log(u[e, 2]) < new - current:
            cov, current, accepted = cand, new, accepted + 1
    return cov, accepted


@pytest.mark.parametrize("fixed", [[], [(2, 1)], [(1, 2)]])
def test_mh_rank_two_updates_follow_the_direct_sweep(fixed):
    """The Woodbury form takes the same steps as the direct computation (small clusters, so
    proposals often leave the positive-definite set; n_tries 1 and 8), single matrix and batch."""
    rng = np.random.default_rng(11)
    d, n, nu = 4, 3.0, 9.0
    elements = free_elements(d, fixed)
    for n_tries in (1, 8):
        covs, scatters, us, refs, accs = [], [], [], [], []
        for _ in range(30):
            a = rng.normal(size=(d, 8))
            b = rng.normal(size=(d, 3))
            covs.append(a @ a.T / 8 + 0.1 * np.eye(d))
            scatters.append(b @ b.T)
            us.append(rng.uniform(size=(len(elements), 3)))
            ref, acc = _mh_reference(covs[-1], scatters[-1], n, elements, us[-1], nu, n_tries)
            refs.append(ref)
            accs.append(acc)
        got, got_acc = mh_covariance_from_noise(
            jnp.asarray(np.stack(covs)), jnp.asarray(np.stack(scatters)), jnp.full(30, n),
            elements, jnp.asarray(np.stack(us)), n_tries, jnp.full(30, nu))
        np.testing.assert_allclose(np.asarray(got), np.stack(refs), rtol=1e-7, atol=1e-9)
        np.testing.assert_array_equal(np.asarray(got_acc), accs)
        assert 0 < sum(accs) < 30 * len(elements)
        one, one_acc = mh_covariance_from_noise(jnp.asarray(covs[0]), jnp.asarray(scatters[0]), n,
                                                elements, jnp.asarray(us[0]), n_tries, nu)
        np.testing.assert_allclose(np.asarray(one), refs[0], rtol=1e-7, atol=1e-9)
        assert int(one_acc) == accs[0]


def _mh_proposals_reference(cov, s, n, elements, z, u, nu):
    """jomo's sweep with explicit proposals in NumPy: the first of the proposals ``sd z_t`` whose
    matrix is positive definite (eigenvalues), accepted on the log targets (Cholesky)."""
    cov = cov.copy()

    def loglik(c):
        return -0.5 * np.trace(np.linalg.solve(c, s)) - nu * np.log(np.diag(
            np.linalg.cholesky(c))).sum()

    accepted = 0
    for e, (j, k) in enumerate(elements):
        sd = cov[j, j] * np.sqrt(11.6 / n) if j == k else 0.1 * np.sqrt(cov[j, j] * cov[k, k])
        change = np.zeros_like(cov)
        change[j, k] = change[k, j] = 1.0
        for t in range(z.shape[1]):
            cand = cov + sd * z[e, t] * change
            if np.linalg.eigvalsh(cand).min() > 0:
                if np.log(u[e]) < loglik(cand) - loglik(cov):
                    cov, accepted = cand, accepted + 1
                break
    return cov, accepted


@pytest.mark.parametrize("fixed", [[], [(2, 1)], [(1, 2)]])
def test_mh_explicit_proposals_follow_the_direct_sweep(fixed):
    """The explicit-proposal form (single matrices) takes jomo's steps: the first positive-definite
    proposal, the Metropolis decision, and a Woodbury inverse equal to the new matrix's inverse."""
    rng = np.random.default_rng(12)
    d, n, nu = 4, 3.0, 9.0
    elements = free_elements(d, fixed)
    total, n_steps = 0, 0
    for n_tries in (1, 8):
        for _ in range(20):
            a, b = rng.normal(size=(d, 8)), rng.normal(size=(d, 3))
            cov, scatter = a @ a.T / 8 + 0.1 * np.eye(d), b @ b.T
            z = 3.0 * rng.normal(size=(len(elements), n_tries))  # wide: many non-PD proposals
            u = rng.uniform(size=len(elements))
            ref, acc = _mh_proposals_reference(cov, scatter, n, elements, z, u, nu)
            got, got_inv, got_acc = mh_covariance_from_proposals(
                jnp.asarray(cov), jnp.asarray(scatter), n, elements, jnp.asarray(z),
                jnp.asarray(u), nu)
            np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(np.asarray(got_inv), np.linalg.inv(ref), rtol=1e-6,
                                       atol=1e-8)
            assert int(got_acc) == acc
            total, n_steps = total + acc, n_steps + len(elements)
    assert 0 < total < n_steps


@pytest.mark.parametrize("j,k", [(0, 0), (0, 1)])
def test_first_positive_definite_change_is_jomos_redraw_loop(j, k):
    """Drawn directly, the change has the law of the first positive-definite one of n_tries
    normal proposals (brute force: proposals checked by eigenvalues), failures included."""
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 2.0]])
    inv = np.linalg.inv(cov)
    n_tries, size = 2, 200_000
    sd = cov[0, 0] * np.sqrt(11.6 / 3.0) if j == k else 0.1 * np.sqrt(cov[j, j] * cov[k, k]) * 8
    s = 0.5 if j == k else 1.0
    u = jax.random.uniform(jax.random.key(8), (size, 3), dtype=jnp.float64)
    delta, ok = first_positive_definite_change(u, sd, s, inv[j, j], inv[k, k], inv[j, k], n_tries)
    delta, ok = np.asarray(delta), np.asarray(ok)
    rng = np.random.default_rng(2)
    props = sd * rng.normal(size=(size, n_tries))
    mats = np.broadcast_to(cov, (size, n_tries, 3, 3)).copy()
    mats[:, :, j, k] += props
    if j != k:
        mats[:, :, k, j] += props
    pd = np.linalg.eigvalsh(mats).min(axis=-1) > 0
    ref_ok = pd.any(axis=1)
    ref = props[np.arange(size), np.argmax(pd, axis=1)][ref_ok]
    p = ref_ok.mean()
    assert 0.02 < 1 - p < 0.5  # failures do occur
    assert abs(ok.mean() - p) < 5 * np.sqrt(p * (1 - p) / size)
    assert np.all(delta[~ok] == 0)
    assert stats.ks_2samp(delta[ok], ref).pvalue > 1e-3


def test_sweep_noise_is_jax_threefry_bits():
    """The unrolled hash gives jax.random.bits' words; uniforms are open, normals their quantiles."""
    key = jax.random.key(5)
    for n_norm, n_unif in [(10, 1001), (0, 5), (7, 0), (1, 1)]:
        normals, uniforms = draw_sweep_noise(key, n_norm, n_unif, jnp.float64)
        bits = np.asarray(jax.random.bits(key, (n_norm + n_unif,), jnp.uint64))
        ref = ((bits >> 12).astype(np.float64) + 0.5) * 2.0**-52
        np.testing.assert_array_equal(np.asarray(uniforms), ref[n_norm:])
        np.testing.assert_allclose(np.asarray(normals), special.ndtri(ref[:n_norm]), rtol=3e-15,
                                   atol=1e-300)
    np.testing.assert_array_equal(np.asarray(threefry_bits64(key, 33)),
                                  np.asarray(jax.random.bits(key, (33,), jnp.uint64)))
    _, u32 = draw_sweep_noise(key, 0, 4000, jnp.float32)
    assert u32.dtype == jnp.float32 and float(u32.min()) > 0.0 and float(u32.max()) < 1.0


def test_normal_quantile_and_cdf_match_scipy_to_rounding():
    """AS241 quantile and the one-erfc CDF, central region and both tails (float64)."""
    p = np.concatenate([np.logspace(-300, -1, 4000), np.linspace(1e-4, 1 - 1e-4, 20001),
                        1 - np.logspace(-16, -1, 400)])
    ref = special.ndtri(p)
    got = np.asarray(normal_quantile(jnp.asarray(p)))
    assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)) < 4e-15
    x = np.concatenate([np.linspace(-37.0, 37.0, 20001), -np.logspace(-10, 1.5, 300)])
    cdf = np.asarray(normal_cdf(jnp.asarray(x)))
    assert np.max(np.abs(cdf - special.ndtr(x)) / special.ndtr(x)) < 1e-14


def test_log_positive_is_numpy_log_to_one_ulp():
    """The vectorisable float64 log: within 1 ulp over the whole normal range, exact specials."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.random(200_000), np.exp(rng.uniform(-708, 709, 200_000)),
                        rng.uniform(0.5, 2.0, 200_000), [1.0, 2.0**-1022, np.nextafter(1, 0),
                                                        np.nextafter(1, 2), 1.7e308]])
    got = np.asarray(jax.jit(log_positive)(jnp.asarray(x)))
    ref = np.log(x)
    ulp = np.abs(got - ref) / np.spacing(np.maximum(np.abs(ref), 1e-300))
    assert ulp.max() <= 1.0
    assert got[x == 1.0][0] == 0.0
    special_in = jnp.asarray([0.0, -1.0, np.inf, np.nan])
    special_out = np.asarray(log_positive(special_in))
    assert special_out[0] == -np.inf and np.isnan(special_out[1]) and special_out[2] == np.inf
    assert np.isnan(special_out[3])


@pytest.mark.parametrize("d", [1, 2, 3, 5, 6])
def test_jomo_linalg_agrees_with_param_linalg(d):
    """jomo_linalg keeps its own unrolled chol / spd_inverse / inverse-Wishart / small_matmul
    (batched use, see its module docstring); they compute what param_linalg computes."""
    from mitml_jax.kernels import jomo_linalg as jl
    from mitml_jax.kernels import param_linalg as pl

    rng = np.random.default_rng(d)
    a = rng.normal(size=(2, d + 3, d))
    s = jnp.asarray(np.einsum("bki,bkj->bij", a, a) + np.eye(d))  # a batch of two SPD matrices
    n_norm, n_unif = jl.wishart_noise_size(d)
    z, u = jnp.asarray(rng.normal(size=n_norm)), jnp.asarray(rng.uniform(size=n_unif))

    def close(x, y):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0,
                                   atol=1e-14 * float(np.abs(np.asarray(y)).max()))

    close(jl.chol(s), pl.chol(s))
    close(jl.spd_inverse(s), pl.spd_inverse(s))
    close(jl.inverse_wishart_from_noise(40.0, s[0], z, u), pl.inverse_wishart(40.0, s[0], z, u)[0])
    # the same sum in the same order: equal bits on a CPU; a GPU's reduction may order (or fuse
    # into FMAs) the terms of pl.matmul's sum differently (1 ulp seen on an H200)
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(np.asarray(jl.small_matmul(s, s)), np.asarray(pl.matmul(s, s)))
    else:
        close(jl.small_matmul(s, s), pl.matmul(s, s))


def _budget_cases():
    import mitml_jax as mj

    lead = mj.load_leadership()
    just = mj.load_justice()
    rng = np.random.default_rng(5)
    sim = lead.copy()
    sim["x"] = rng.normal(size=len(sim))  # a complete level-1 predictor with a random slope
    groups = sim["GRPID"].unique()
    gcat = pd.Series(rng.choice(["a", "b", "c"], size=len(groups)), index=groups)
    gcat[groups[:4]] = None
    sim["GCAT"] = pd.Categorical(sim["GRPID"].map(gcat))  # categorical level-2 target, K = 3
    sim["J3"] = pd.Categorical(pd.cut(sim["JOBSAT"], [-np.inf, -0.5, 0.5, np.inf],
                                      labels=["lo", "mid", "hi"]))  # level-1, K = 3
    level2 = ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"]
    return [
        (lead, level2, "none"), (lead, level2, "mean"), (lead, level2, "full"),
        (just, ["sat + jor + sex ~ 1 + (1|id)", "jcl ~ 1"], "full"),
        (lead, "JOBSAT + NEGLEAD ~ 1 + (1|GRPID)", "none"),
        (lead, "JOBSAT + NEGLEAD ~ 1 + (1|GRPID)", "mean"),
        (lead, "JOBSAT + WLOAD ~ 1", "none"),
        (sim, ["JOBSAT + J3 ~ 1 + x + (1 + x|GRPID)", "GCAT + COHES ~ 1"], "none"),
        (sim, ["J3 + NEGLEAD ~ 1 + (1|GRPID)", "GCAT ~ 1"], "full"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_noise_budget_is_what_the_sweep_consumes(case):
    """The jomo kernel's noise block size (read off config and shapes) equals the count of the
    sweep's requests traced with a CountingStream, for every kind of jomo model."""
    from mitml_jax.kernels import jomo
    from mitml_jax.kernels.jomo_budget import noise_budget
    from mitml_jax.kernels.jomo_design import build_group_problems
    from mitml_jax.kernels.jomo_noise import count_sweep_noise
    from mitml_jax.spec.model_spec import build_spec

    data, formula, random_l1 = _budget_cases()[case]
    spec = build_spec(data, formula=formula, kind="jomo")
    prob = build_group_problems(spec, spec.design(data), random_l1)[0]
    prior = jomo.default_prior(prob.config)
    state = jomo.init(prob.arrays, prob.config, prior)
    counted = count_sweep_noise(jomo._build_sweep(prob.config), (state, prob.arrays, prior),
                                jnp.float64)
    assert noise_budget(prob.config, prob.arrays) == counted


def test_rows_of_is_the_gather():
    """jomo_linalg.rows_of (one-hot product) gives table[index] bit for bit (finite tables)."""
    from mitml_jax.kernels.jomo_linalg import rows_of

    rng = np.random.default_rng(2)
    table = jnp.asarray(rng.normal(size=(7, 3, 3)) * 10.0 ** rng.integers(-300, 300, size=(7, 3, 3)))
    index = jnp.asarray(rng.integers(0, 7, size=206))
    np.testing.assert_array_equal(np.asarray(jax.jit(rows_of)(table, index)),
                                  np.asarray(table[index]))
    batched = jax.vmap(rows_of, in_axes=(0, None))(jnp.stack([table, -table]), index)
    np.testing.assert_array_equal(np.asarray(batched[1]), -np.asarray(table[index]))
