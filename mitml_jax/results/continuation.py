"""Continue running chains from a saved state at a given global iteration (resume, extend).

Iteration ``t`` of chain ``c`` uses the key ``fold_in(fold_in(rng_key, c), t)`` and the device
program does not depend on where a block starts, so running ``run_chains`` from the chains' last
state with ``t_start`` = the iterations already made (and no burn-in) reproduces one
uninterrupted run bit for bit. :func:`continue_chains` does that for the imputation phase and
turns a Ctrl-C into :class:`PartialRun` holding every completed save, with the chain state
consistent with them.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from ..sampling.run import InterruptedChains, run_chains

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
        :class:`~mitml_jax.sampling.run.ChainRun` (empty burn-in records).

    Raises:
        PartialRun: on ``KeyboardInterrupt``, carrying the completed part.
        SamplerFailure: non-finite parameters (chain and 1-based global iteration named).
    """
    state = jax.tree_util.tree_map(jnp.asarray, state)
    hook = None if after_block is None else (lambda iterations: after_block(iterations // n_iter))
    try:
        return run_chains(kernel, state, arrays, prior, rng_key, n_burn=0, n_iter=n_iter, n_saves=n_saves,
                          transform=transform, save=save, chain_ids=chain_ids, progress=progress,
                          failure_hint=failure_hint, reduce_records=reduce_records, t_start=int(t_start),
                          after_block=hook)
    except InterruptedChains as stop:
        raise PartialRun(stop.run, stop.iterations_done // n_iter) from None
