"""NamedTuple states, infos and priors of the pan Gibbs kernel (device pytrees).

Shapes (one chain; ``run_chains`` adds a leading chain axis): G groups, J clusters per group
(padded), L rows per cluster (padded), r targets, p fixed and q random predictors.
Field names follow mitml (beta, psi, sigma).
"""

from __future__ import annotations

from typing import NamedTuple

import jax

__all__ = ["PanState", "PanInfo", "PanPrior"]


class PanState(NamedTuple):
    """State of pan's Gibbs sampler (pan's ``last``: beta, sigma, psi, y).

    Attributes:
        y: (G, r, J, L) completed targets (observed cells are the data, bit for bit).
        beta: (G, p, r) fixed effects.
        psi: (G, r q, r q) covariance of vec(b_i) (index target * q + random effect).
        sigma: (G, r, r) level-1 residual covariance.
    """

    y: jax.Array
    beta: jax.Array
    psi: jax.Array
    sigma: jax.Array


class PanInfo(NamedTuple):
    """Per-sweep flags (summed over iterations by ``run_chains``).

    Attributes:
        nonfinite: True when the new state holds NaN or infinite values (a Cholesky failed).
        gamma_exhausted: True when a gamma variate of a Wishart draw had no accepted proposal.
    """

    nonfinite: jax.Array
    gamma_exhausted: jax.Array


class PanPrior(NamedTuple):
    """pan's prior per group: Sigma ~ IW(a, Binv), Psi ~ IW(c, Dinv), beta flat.

    Attributes:
        a: (G,) degrees of freedom for Sigma.
        binv: (G, r, r) scale for Sigma.
        c: (G,) degrees of freedom for Psi.
        dinv: (G, r q, r q) scale for Psi.
    """

    a: jax.Array
    binv: jax.Array
    c: jax.Array
    dinv: jax.Array
