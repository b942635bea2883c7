"""Simulation-based calibration (Talts et al. 2018) of a Gibbs kernel, vmapped over replications.

Every replication has its own simulated data set (same shapes) and its own "true" values drawn
from the prior. The kernel runs ``n_burn`` sweeps from the replication's starting state, then
``n_draws`` draws each ``thin`` sweeps apart; the rank of every checked quantity is the number of
draws below its true value (0..n_draws). Under a correct sampler (and enough burn-in and
thinning) the ranks are uniform on {0, ..., n_draws}; :func:`rank_chi2` tests that by a
chi-square test on equal-width bins.

Ranks are counted on the device while the chains run (no draws are stored), so memory is
``O(replications x quantities)`` and many replications run at once under ``jax.vmap``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SBCResult", "sbc_ranks", "rank_chi2", "upper_triangle"]


class SBCResult(NamedTuple):
    """Ranks and their chi-square tests.

    Attributes:
        ranks: (R, K) int ranks in 0..n_draws.
        names: K labels of the checked quantities.
        p_values: (K,) chi-square p-values of the binned ranks against uniform.
        n_draws: posterior draws per replication.
        n_bins: bins of the chi-square test.
        flags: (R,) number of sweeps whose info reported a numerical problem (0 = none).
    """

    ranks: np.ndarray
    names: tuple
    p_values: np.ndarray
    n_draws: int
    n_bins: int
    flags: np.ndarray

    def failed(self, alpha: float = 1e-3) -> list:
        """Labels (with p-values) of the quantities whose ranks reject uniformity at ``alpha``."""
        return [(n, float(p)) for n, p in zip(self.names, self.p_values) if p < alpha]

    def table(self) -> str:
        """One line per quantity: label, p-value, mean rank / n_draws (0.5 expected)."""
        mean = self.ranks.mean(axis=0) / self.n_draws
        lines = [f"{'quantity':<24} {'p-value':>10} {'mean rank':>10}"]
        lines += [f"{n:<24} {p:>10.4f} {m:>10.3f}" for n, p, m in zip(self.names, self.p_values, mean)]
        return "\n".join(lines)


def upper_triangle(a):
    """Entries ``a[..., i, j]`` with ``i <= j`` (row-major) as a flat trailing axis."""
    d = a.shape[-1]
    rows, cols = np.triu_indices(d)
    return a[..., rows, cols]


def rank_chi2(ranks, n_draws: int, n_bins: int = 20) -> np.ndarray:
    """Chi-square p-values of binned ranks (R, K) against the uniform law on 0..n_draws.

    ``n_draws + 1`` must be a multiple of ``n_bins`` so that every bin holds the same number of
    rank values (equal expected counts).
    """
    from scipy import stats

    ranks = np.asarray(ranks)
    if (n_draws + 1) % n_bins:
        raise ValueError(f"n_draws + 1 = {n_draws + 1} is not a multiple of n_bins = {n_bins}.")
    if ranks.min() < 0 or ranks.max() > n_draws:
        raise ValueError("ranks outside 0..n_draws")
    bins = ranks * n_bins // (n_draws + 1)
    counts = np.stack([np.bincount(bins[:, k], minlength=n_bins) for k in range(ranks.shape[1])])
    return stats.chisquare(counts, axis=1).pvalue


@functools.lru_cache(maxsize=16)
def _runner(kernel, extract, flag, arrays_axes, n_burn, n_draws, thin):
    step = jax.vmap(kernel, in_axes=(0, 0, arrays_axes, None))
    values = jax.vmap(extract, in_axes=(0, arrays_axes))

    def run(keys, state, arrays, prior, truth):
        # one scan over every sweep (the kernel is traced and compiled once); a draw is counted
        # after sweeps n_burn + thin - 1, n_burn + 2 thin - 1, ...
        def sweep(carry, t):
            state, bad, counts = carry
            iter_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
            state, info = step(iter_keys, state, arrays, prior)
            after = t - n_burn
            keep = (after >= 0) & (after % thin == thin - 1)
            below = (values(state, arrays) < truth) & keep
            return (state, bad + flag(info).astype(jnp.int32), counts + below.astype(jnp.int32)), None

        carry = (state, jnp.zeros(keys.shape[0], jnp.int32), jnp.zeros(truth.shape, jnp.int32))
        (state, bad, counts), _ = jax.lax.scan(sweep, carry, jnp.arange(n_burn + n_draws * thin))
        return counts, bad

    return jax.jit(run)


def sbc_ranks(
    kernel: Callable,
    state0: Any,
    arrays: Any,
    prior: Any,
    truth,
    keys,
    extract: Callable,
    *,
    arrays_axes: Any = 0,
    n_burn: int,
    n_draws: int,
    thin: int,
    flag: Callable = lambda info: jnp.asarray(False),
    names=None,
    n_bins: int = 20,
) -> SBCResult:
    """Run R replications at once and rank their true values among thinned posterior draws.

    Args:
        kernel: ``(key, state, arrays, prior) -> (state, info)`` for ONE replication.
        state0: starting states with a leading replication axis R.
        arrays: the replications' data; ``arrays_axes`` is its ``vmap`` axis spec (a pytree
            prefix: 0 where every replication has its own values, None where they are shared).
        prior: shared by all replications.
        truth: (R, K) true values of the checked quantities.
        keys: (R,) PRNG keys; sweep ``t`` of replication ``i`` uses ``fold_in(keys[i], t)``.
        extract: ``(state, arrays) -> (K,)`` the checked quantities of ONE replication's state.
        n_burn, n_draws, thin: burn-in sweeps, posterior draws, sweeps between draws.
        flag: ``info -> bool`` numerical-problem flag of one sweep (counted per replication).
        names: K labels (default ``q0, q1, ...``).
        n_bins: chi-square bins (``n_draws + 1`` must be a multiple).

    Returns:
        :class:`SBCResult`.
    """
    truth = jnp.asarray(truth)
    run = _runner(kernel, extract, flag, arrays_axes, int(n_burn), int(n_draws), int(thin))
    counts, bad = run(keys, state0, arrays, prior, truth)
    ranks = np.asarray(counts)
    names = tuple(names) if names is not None else tuple(f"q{k}" for k in range(ranks.shape[1]))
    return SBCResult(ranks, names, rank_chi2(ranks, n_draws, n_bins), int(n_draws), int(n_bins), np.asarray(bad))
