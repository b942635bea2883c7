"""Run many jomo chains: ``lax.scan`` over iterations, ``vmap`` over chains, host blocks.

Private chain driver of the jomo kernels (the generic ``sampling/run.py`` had not landed when this
was written). Chain ``c`` uses ``fold_in(key, c)``; iteration ``t`` of a chain uses
``fold_in(chain_key, t)``, so results do not depend on how iterations are blocked. Draws leave
the device after every block of ``n_iter`` iterations, so device memory is bounded by one block.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .jomo import JomoPrior, build_kernel, init
from .jomo_data import JomoArrays, JomoConfig

__all__ = ["ChainOutput", "record_parameters", "run_jomo_chains"]


class ChainOutput(NamedTuple):
    burnin: dict  # name -> (chains, n_burn, rows, cols)
    imputation: dict  # name -> (chains, n_seg * n_iter, rows, cols)
    imputed_l1: np.ndarray  # (chains, n_seg, n_cells_l1)
    imputed_l2: np.ndarray  # (chains, n_seg, n_cells_l2)
    state: object  # last state of every chain (leading chain axis)
    accept: dict  # name -> (chains,) acceptance counts summed over all iterations


def record_parameters(state, config: JomoConfig, keep_chains: str = "full") -> dict:
    """The parameter blocks of one iteration in mitml's layout (sigma per ``random_l1``)."""
    out = {"beta": state.beta}
    if config.r2 > 0:
        out["beta2"] = state.beta2
    if config.multilevel:
        out["psi"] = state.psi
    omega = state.omega
    if config.random_l1 == "mean":
        omega = omega.mean(axis=0)
    elif config.random_l1 == "full":
        omega = omega.reshape(-1, config.r) if keep_chains == "full" else omega
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


def run_jomo_chains(key, arrays: JomoArrays, config: JomoConfig, prior: JomoPrior, *, n_burn: int,
                    n_iter: int, n_seg: int, chains: int, cells_l1, cells_l2,
                    keep_chains: str = "full", progress: bool = False, label: str = ""):
    """Burn in every chain, then run ``n_seg`` segments of ``n_iter`` iterations each.

    Args:
        cells_l1: (n1,) flat indices into ``state.y.reshape(-1)`` of the values to report at the
            end of each segment; ``cells_l2`` likewise into ``state.y2.reshape(-1)``.

    Returns:
        :class:`ChainOutput`.
    """
    kernel = build_kernel(config)
    cells_l1 = jnp.asarray(cells_l1, dtype=jnp.int32)
    cells_l2 = jnp.asarray(cells_l2, dtype=jnp.int32)

    def run_steps(chain_key, state, t0, n_steps):
        def body(carry, t):
            state, acc = carry
            state, info = kernel(jax.random.fold_in(chain_key, t), state, arrays, prior)
            acc = acc + jnp.stack([info.accepted_omega, info.accepted_psi, info.accepted_a])
            return (state, acc), record_parameters(state, config, keep_chains)

        acc0 = jnp.zeros(3, dtype=jnp.int32)
        (state, acc), recs = jax.lax.scan(body, (state, acc0), t0 + jnp.arange(n_steps))
        extracted = (state.y.reshape(-1)[cells_l1], state.y2.reshape(-1)[cells_l2])
        return state, recs, extracted, acc

    runner = jax.jit(jax.vmap(run_steps, in_axes=(0, 0, None, None)), static_argnums=3)
    state0 = init(arrays, config, prior)
    state = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (chains,) + a.shape), state0)
    chain_keys = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(chains))
    acc_total = np.zeros((chains, 3), dtype=np.int64)

    def say(msg):
        if progress:
            print(msg, file=sys.stdout, flush=True)

    say(f"Running burn-in phase{label} ...")
    burn_blocks = []
    t = 0
    block = max(1, min(n_iter, n_burn)) if n_burn > 0 else 1
    while t < n_burn:
        n = min(block, n_burn - t)
        state, recs, _, acc = runner(chain_keys, state, t, n)
        burn_blocks.append(jax.tree_util.tree_map(np.asarray, recs))
        acc_total += np.asarray(acc)
        t += n
    imp_blocks, out1, out2 = [], [], []
    for s in range(n_seg):
        say(f"Creating imputed data set ( {s + 1} / {n_seg} ){label} ...")
        state, recs, (e1, e2), acc = runner(chain_keys, state, t, n_iter)
        imp_blocks.append(jax.tree_util.tree_map(np.asarray, recs))
        out1.append(np.asarray(e1))
        out2.append(np.asarray(e2))
        acc_total += np.asarray(acc)
        t += n_iter
    say("Done!")

    def cat(blocks, n_total):
        names = record_parameters(state0, config, keep_chains).keys()
        if not blocks:
            shapes = jax.eval_shape(lambda s: record_parameters(s, config, keep_chains), state0)
            return {k: np.zeros((chains, 0) + tuple(shapes[k].shape)) for k in names}
        return {k: np.concatenate([b[k] for b in blocks], axis=1) for k in names}

    return ChainOutput(
        burnin=cat(burn_blocks, n_burn),
        imputation=cat(imp_blocks, n_seg * n_iter),
        imputed_l1=np.stack(out1, axis=1) if out1 else np.zeros((chains, 0, cells_l1.shape[0])),
        imputed_l2=np.stack(out2, axis=1) if out2 else np.zeros((chains, 0, cells_l2.shape[0])),
        state=state,
        accept={"omega": acc_total[:, 0], "psi": acc_total[:, 1], "a": acc_total[:, 2]},
    )
