"""From a :class:`~mitml_jax.sampling.run.ChainRun` to an :class:`~mitml_jax.Imputations` (host).

Shared by pan and jomo. The ``m`` imputations are split across the C chains as evenly as possible
(the first ``m mod C`` chains give one more), chain by chain: imputation ``i`` is save ``s`` of
chain ``c``, taken at imputation-phase draw ``(s + 1) * n_iter - 1``.
"""

from __future__ import annotations

import numpy as np

from ..results.imputations import Imputations

__all__ = ["split_imputations", "saves_needed", "collect_imputations"]


def saves_needed(m: int, chains: int) -> int:
    """Saves every chain must make so that the chains together give ``m`` imputations."""
    return -(-int(m) // int(chains))


def split_imputations(m: int, chains: int) -> np.ndarray:
    """(m, 2) integer ``(chain, save)`` of every imputation, chain by chain."""
    base, extra = divmod(int(m), int(chains))
    pairs = [(c, s) for c in range(chains) for s in range(base + (c < extra))]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def collect_imputations(
    run,
    *,
    saved_values,
    miss_slot,
    index,
    m: int,
    n_iter: int,
    **fields,
) -> Imputations:
    """Assemble the result object.

    Args:
        run: the :class:`ChainRun` (its ``burnin``/``imputation`` dicts are the parameter draws,
            each (C, D, G, rows, cols)).
        saved_values: (C, n_saves, K) host array of imputed values per save (K = flattened slots).
        miss_slot: (n_miss,) position of every missing cell (mitml order) in the K slots.
        index: (n_miss, 2) (row position, column position in ``data.columns``).
        m, n_iter: imputations and iterations between saves.
        **fields: every other :class:`Imputations` field (data, spec, kind, call, n_burn, chains,
            seed, prior, keep_chains, random_L1, labels, failures, state, extra).

    Returns:
        :class:`Imputations` with ``replacement (n_miss, m)`` and ``imputation_source (m, 2)``.
    """
    chains = saved_values.shape[0]
    source = split_imputations(m, chains)
    values = np.asarray(saved_values)[source[:, 0], source[:, 1]]  # (m, K)
    replacement = np.ascontiguousarray(values[:, np.asarray(miss_slot)].T)
    imputation_source = np.column_stack([source[:, 0], (source[:, 1] + 1) * n_iter - 1])
    return Imputations(
        m=int(m),
        n_iter=int(n_iter),
        replacement=replacement,
        index=np.asarray(index, dtype=np.int64).reshape(-1, 2),
        burnin=run.burnin,
        imputation=run.imputation,
        imputation_source=imputation_source,
        **fields,
    )
