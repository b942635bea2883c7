"""Continue running chains from a saved state at a given global iteration (resume, extend).

:func:`~mitml_jax.sampling.run.run_chains` always starts at iteration 0. Because iteration ``t``
of chain ``c`` uses the key ``fold_in(fold_in(rng_key, c), t)`` and the device program does not
depend on where a block starts, running the same compiled block function from the last state
with ``t`` starting where the first run stopped reproduces the uninterrupted run bit for bit.
:func:`continue_chains` does that for the imputation phase, block by block, and stops cleanly
on ``KeyboardInterrupt``: it keeps every block that reached the host and reports them through
:class:`PartialRun` (chain state consistent with the saves kept).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..sampling import run as _run
from ..sampling.progress import ProgressBar

__all__ = ["continue_chains", "PartialRun"]


class PartialRun(KeyboardInterrupt):
    """Raised by :func:`continue_chains` when interrupted; ``run`` holds what was completed.

    A ``KeyboardInterrupt`` subclass, so an unhandled interruption still stops the program.

    Attributes:
        run: :class:`~mitml_jax.sampling.run.ChainRun` with the first ``n_saves_done`` saves and
            their draws, and the chain state after them.
        n_saves_done: saves per chain completed before the interruption.
    """

    def __init__(self, run, n_saves_done: int):
        super().__init__(f"interrupted after {n_saves_done} save(s) per chain")
        self.run = run
        self.n_saves_done = int(n_saves_done)


def continue_chains(
    kernel: Callable,
    state: Any,
    arrays: Any,
    prior: Any,
    rng_key,
    *,
    t_start: int,
    n_iter: int,
    n_saves: int,
    transform: Callable,
    save: Callable,
    chain_ids=None,
    progress: bool = True,
    failure_hint: str = "",
    reduce_records: Callable | None = None,
    after_block: Callable[[int], None] | None = None,
):
    """Imputation-phase iterations ``t_start .. t_start + n_saves * n_iter - 1`` from ``state``.

    Uses the same compiled block function as ``run_chains`` (same kernel, transform, save and
    ``n_iter``), so the draws equal those of one uninterrupted ``run_chains`` call bit for bit.

    Args:
        kernel, arrays, prior, transform, save, chain_ids, failure_hint, reduce_records: as for
            :func:`~mitml_jax.sampling.run.run_chains`.
        state: the chains' state after iteration ``t_start - 1`` (leading axis C; NumPy is fine).
        rng_key: the run's key (chain ``c`` uses ``fold_in(rng_key, chain_ids[c])``).
        t_start: global index of the first iteration to run (burn-in included).
        n_iter: iterations between saves; n_saves: saves per chain.
        progress: show a progress bar.
        after_block: called with the number of saves per chain completed after every block that
            reached the host (progress reporting; tests raise ``KeyboardInterrupt`` from it).

    Returns:
        :class:`~mitml_jax.sampling.run.ChainRun` with empty burn-in records, ``imputation``
        records (C, n_saves * n_iter, ...), ``saves`` (C, n_saves, ...) and the final state.

    Raises:
        PartialRun: on ``KeyboardInterrupt``, carrying the completed part.
        SamplerFailure: non-finite parameters (chain and 1-based global iteration named).
    """
    state = jax.tree_util.tree_map(jnp.asarray, state)
    chains = jax.tree_util.tree_leaves(state)[0].shape[0]
    chain_ids = np.arange(chains) if chain_ids is None else np.asarray(chain_ids)
    keys = _run.chain_keys(rng_key, chain_ids)
    record_shape = jax.eval_shape(jax.vmap(transform), state)
    k = _run._segments_per_block(record_shape, 1, n_iter)
    block_len = k * n_iter
    block = _run._block_function(kernel, transform, save, int(n_iter), int(k))
    info_shape = jax.eval_shape(jax.vmap(kernel, in_axes=(0, 0, None, None)), keys, state, arrays, prior)[1]
    acc = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, jnp.int32), info_shape)
    first_bad = jnp.full((chains,), -1, dtype=jnp.int32)

    n_imp = n_saves * n_iter
    reduce_records = reduce_records or (lambda records: records)
    host_shape = reduce_records({n: np.zeros((chains, 1) + s.shape[1:], s.dtype) for n, s in record_shape.items()})
    imputation = {n: np.empty((chains, n_imp) + s.shape[2:], s.dtype) for n, s in host_shape.items()}
    burnin = {n: np.empty((chains, 0) + s.shape[2:], s.dtype) for n, s in host_shape.items()}
    save_shape = jax.eval_shape(jax.vmap(save, in_axes=(0, None)), state, arrays)
    saves = jax.tree_util.tree_map(lambda s: np.empty((chains, n_saves) + s.shape[1:], s.dtype), save_shape)

    # _store indexes imputation-phase records relative to its n_burn argument: pass t_start
    plan = [(t_start + t0, t_start + n_imp) for t0 in range(0, n_imp, block_len)]
    bar = ProgressBar(total=n_imp, enabled=progress)
    done = {"saves": 0, "state": state, "acc": acc}
    pending = None

    def store(pending):
        t0, n_active, out = pending
        _run._store((t0, n_active, "imputation", out), burnin, imputation, saves, t_start, n_iter,
                    failure_hint, bar, chain_ids, reduce_records)
        done.update(saves=(t0 - t_start + n_active) // n_iter, state=out[0], acc=out[1])
        if after_block is not None:
            after_block(done["saves"])

    try:
        for t0, t_end in plan:
            out = block(keys, state, arrays, prior, jnp.int32(t0), jnp.int32(t_end), acc, first_bad)
            state, acc, first_bad = out[0], out[1], out[2]
            if pending is not None:
                store(pending)
            pending = (t0, min(t_end - t0, block_len), out)
        if pending is not None:
            store(pending)
    except KeyboardInterrupt:
        n = done["saves"]
        partial = _chain_run(burnin, {b: v[:, : n * n_iter] for b, v in imputation.items()},
                             jax.tree_util.tree_map(lambda a: a[:, :n], saves), done["state"], done["acc"],
                             first_bad)
        raise PartialRun(partial, n) from None
    finally:
        bar.close()
    return _chain_run(burnin, imputation, saves, state, acc, first_bad)


def _chain_run(burnin, imputation, saves, state, acc, first_bad):
    failures = ({name: np.asarray(v) for name, v in acc._asdict().items()} if hasattr(acc, "_asdict")
                else jax.device_get(acc))
    return _run.ChainRun(burnin=burnin, imputation=imputation, saves=saves, state=jax.device_get(state),
                         failures=failures, first_bad=np.asarray(first_bad))
