"""What the chain driver records from a jomo state: the parameter blocks in mitml's layout.

The jomo kernels run through the generic :func:`mitml_jax.sampling.run.run_chains` (shared with
pan); this module only provides the ``transform`` it records at every iteration.
"""

from __future__ import annotations

import jax.numpy as jnp

from .jomo_data import JomoConfig

__all__ = ["record_parameters"]


def record_parameters(state, config: JomoConfig, keep_chains: str = "full") -> dict:
    """The parameter blocks of one iteration (``beta``, ``beta2``, ``psi``, ``sigma``).

    ``sigma`` is the level-1 covariance; with ``random_l1 = "mean"`` the mean of the cluster
    matrices, with ``"full"`` all of them stacked by cluster ((J * r, r), row
    ``cluster * r + variable``). ``keep_chains = "diagonal"`` keeps only diagonals as (rows, 1).
    """
    out = {"beta": state.beta}
    if config.r2 > 0:
        out["beta2"] = state.beta2
    if config.multilevel:
        out["psi"] = state.psi
    omega = state.omega
    if config.random_l1 == "mean":
        omega = omega.mean(axis=0)
    elif config.random_l1 == "full" and keep_chains == "full":
        omega = omega.reshape(-1, config.r)
    out["sigma"] = omega
    if keep_chains == "diagonal":
        for name in ("psi", "sigma"):
            if name not in out:
                continue
            mat = out[name]
            if mat.ndim == 3:  # (J, r, r) -> (J*r, 1), variable fastest
                out[name] = jnp.diagonal(mat, axis1=-2, axis2=-1).reshape(-1, 1)
            else:
                out[name] = jnp.diagonal(mat)[:, None]
    return out
