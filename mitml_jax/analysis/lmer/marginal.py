"""Marginal (ML) log-likelihood of one data set at given ``(beta, tau, sigma2)`` (mitml's D3).

``-1/2 sum_j [log|V_j| + r_j' V_j^{-1} r_j] - n/2 log(2 pi)`` with ``V_j = sigma2 I + Z_j tau Z_j'``,
from the per-cluster cross-products: with ``S = tau / sigma2`` and ``M_j = I + Z_j'Z_j S``,
``|V_j| = sigma2^{n_j} |M_j|`` and ``r_j'V_j^{-1}r_j = (r_j'r_j - r_j'Z_j S M_j^{-1} Z_j'r_j) / sigma2``
(determinant lemma and Woodbury in a form that allows a singular ``tau``).
"""

from __future__ import annotations

import numpy as np

from mitml_jax.errors import MitmlError

__all__ = ["marginal_loglik"]


def marginal_loglik(stats, beta0, beta, tau, sigma2) -> float:
    """ML log-likelihood of one data set (stats without the batch axis) at the given parameters.

    Parameters
    ----------
    stats : LmerStats
        Cross-products of one data set (NumPy), response offset by ``X beta0``.
    beta0 : ndarray (p,)
        That offset.
    beta : ndarray (p,)
        Fixed effects.
    tau : ndarray (q, q)
        Random-effect covariance matrix.
    sigma2 : float
        Residual variance.
    """
    beta = np.asarray(beta, dtype=float).reshape(-1)
    tau = np.atleast_2d(np.asarray(tau, dtype=float))
    sigma2 = float(sigma2)
    q, p = stats.ztx.shape[-2:]
    if beta.shape != (p,) or tau.shape != (q, q):
        raise MitmlError(
            f"'params' do not match the model: beta needs {p} values and tau {q} x {q}, got "
            f"{beta.shape} and {tau.shape}."
        )
    if not sigma2 > 0:
        raise MitmlError(f"'params' has a non-positive residual variance sigma2 = {sigma2}.")
    delta = np.asarray(beta0, dtype=float) - beta  # r = y - X beta = y_offset + X delta
    ztr = stats.zty + stats.ztx @ delta
    rtr = stats.yty + 2.0 * delta @ stats.xty + delta @ stats.xtx @ delta
    s = tau / sigma2
    mat = np.eye(q) + stats.ztz @ s  # (J, q, q)
    sol = np.linalg.solve(mat, ztr[..., None])[..., 0]
    quad = (rtr - np.einsum("jq,qk,jk->", ztr, s, sol)) / sigma2
    sign, logdet = np.linalg.slogdet(mat)
    if np.any(sign <= 0):
        raise MitmlError("'params' give a random-effect covariance 'tau' that is not positive semidefinite.")
    n = float(stats.n)
    return float(-0.5 * (n * np.log(2.0 * np.pi) + n * np.log(sigma2) + np.sum(logdet) + quad))
