"""Run many Gibbs chains at once: ``vmap`` over chains, ``lax.scan`` over iterations, host blocks.

``run_chains`` is generic over the model: any kernel ``(rng_key, state, arrays, prior) ->
(state, info)`` with NamedTuple (pytree) states works (pan and jomo share it). A kernel may take
the chain axis itself (a ``chain_batch`` attribute, see :func:`_chain_layout`): its state then stays
in the kernel's layout across the iterations of a block and is laid out chain-first again only
for the records, the saves and the returned state.

Iteration ``t`` of chain ``c`` uses the key ``fold_in(fold_in(rng_key, c), t)``, so a chain's draws
depend neither on how many chains run beside it nor on how iterations are cut into blocks.
Iterations run on the device in blocks (about ``BLOCK_ITERATIONS``); each block's parameter
records are copied to preallocated host arrays while the next block runs, so device memory is
bounded by one block, not by the number of iterations. One compiled block function serves every
phase and every ``n_burn``, ``n_iter`` and ``m``: a block runs a run-time number of iterations in
segments of run-time length (``n_iter`` in the imputation phase, saving the state after each) with
loops of run-time trip counts writing into fixed-size buffers, so only the data's shapes (and an
``n_iter`` above the block length) select a compilation. (A ``lax.cond`` around every sweep did the
same at about 35 us per iteration on CPU, most of a small model's sweep.)
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import MitmlWarning, SamplerFailure
from ..kernels.threefry import fold_in
from ..kernels.lean_vmap import lean_vmap
from ..kernels.xla_options import for_backend
from .keys import chain_keys
from .prefetch import import_during_compile
from .progress import ProgressBar
from .threads import PartRunner, chain_parts, join_chains, split_chains, splittable

__all__ = ["ChainRun", "InterruptedChains", "run_chains", "trace_count", "chain_keys",
           "completed_part", "failed_part"]

#: Target size of one block's parameter records on the device (bytes).
BLOCK_BYTES = 32 * 2**20
#: Target number of iterations per block (progress updates and dispatch overhead).
BLOCK_ITERATIONS = 1000
#: Target size of one block's saved imputations on the device (bytes), and most saves per block.
SAVE_BYTES = 16 * 2**20
MAX_SAVES_PER_BLOCK = 128

_TRACES = {"block": 0}


def trace_count() -> int:
    """How many times a block function has been traced (compiled) in this process."""
    return _TRACES["block"]


class ChainRun(NamedTuple):
    """Host-side output of :func:`run_chains` (NumPy arrays).

    Attributes:
        burnin: name -> (C, n_burn, ...) records of ``transform(state)`` during burn-in.
        imputation: name -> (C, n_saves * n_iter, ...) records during the imputation phase.
        saves: pytree of (C, n_saves, ...) ``save(state, arrays)`` at every ``n_iter``-th
            imputation-phase iteration (iteration ``n_burn + (i + 1) * n_iter`` for save i).
        state: the last state of every chain (leading axis C), on the host.
        failures: name -> (C,) counts of iterations where the kernel's info flag was set.
        first_bad: (C,) first iteration (0-based, global) with a non-finite record, -1 if none.
    """

    burnin: dict
    imputation: dict
    saves: Any
    state: Any
    failures: dict
    first_bad: np.ndarray


class InterruptedChains(KeyboardInterrupt):
    """Ctrl-C inside :func:`run_chains`: ``run`` holds every block that reached the host.

    A ``KeyboardInterrupt`` subclass (an unhandled one still stops the program).

    Attributes:
        run: :class:`ChainRun` truncated to the completed iterations (burn-in records, then
            imputation-phase records and saves), with the chains' state after them.
        iterations_done: iterations completed per chain in this call (from ``t_start``).
    """

    def __init__(self, run, iterations_done: int, message: str | None = None):
        super().__init__(message or f"sampler interrupted after {iterations_done} iteration(s) per chain")
        self.run = run
        self.iterations_done = int(iterations_done)


def completed_part(stop: InterruptedChains, chains: int):
    """What a sampler returns on Ctrl-C: ``(run, n_saves, m)`` of the saves every chain completed,
    announced with a MitmlWarning; ``stop`` is raised again when no save is complete (burn-in)."""
    run = stop.run
    n_saves = _saves_done(run)
    if n_saves == 0:
        raise stop
    m = n_saves * chains
    warnings.warn(f"Interrupted: returning the {m} imputations completed so far; continue the "
                  "same chains with .extend(m=...).", MitmlWarning, stacklevel=3)
    return run, n_saves, m


def failed_part(failure: SamplerFailure, chains: int, build: Callable) -> None:
    """Give ``failure`` (raised by :func:`run_chains`) the imputations every chain completed before
    the failing block: ``failure.partial = build(run, n_saves, m)`` and a note in its message, when
    at least one save is complete (nothing otherwise). The caller raises it again."""
    run = getattr(failure, "run", None)
    n_saves = 0 if run is None else _saves_done(run)
    if n_saves == 0:
        return
    m = n_saves * chains
    failure.partial = build(run, n_saves, m)
    failure.args = (f"{failure.args[0]} The imputations completed before the failure ({m} in this run) "
                    "are kept in this error's .partial (e.g. `except SamplerFailure as e: imp = e.partial`).",)


def _saves_done(run) -> int:
    """Saves per chain in a (partial) :class:`ChainRun`."""
    return int(np.asarray(jax.tree_util.tree_leaves(run.saves)[0]).shape[1])


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return functools.reduce(jnp.logical_and, leaves, jnp.asarray(True))


def _identity(state, arrays):
    return state


@functools.lru_cache(maxsize=64)
def _chain_layout(kernel):
    """``(step, enter, leave)`` of a kernel over all chains: ``step(keys, state, arrays, prior)``
    works on the state as ``enter(state, arrays)`` lays it out; ``leave(state, arrays)`` gives back
    the chain-first state.

    A kernel may carry a ``chain_batch`` attribute with those three fields (e.g.
    :func:`mitml_jax.kernels.pan_chains.chain_batch`: chains innermost, the state kept in that
    layout across iterations); otherwise the kernel is ``vmap``ped over a leading chain axis.
    """
    batch = getattr(kernel, "chain_batch", None)
    if batch is not None:
        return batch.step, batch.enter, batch.leave
    return lean_vmap(kernel, in_axes=(0, 0, None, None)), _identity, _identity


@functools.lru_cache(maxsize=64)
def _chain_step(kernel):
    """The jitted step over all chains (state in the kernel's layout); jit caches its trace, so the
    shape probe in :func:`run_chains` and the block function trace the kernel only once between
    them."""
    return jax.jit(_chain_layout(kernel)[0])


@functools.lru_cache(maxsize=64)
def _block_function(kernel, transform, save, block_len, n_slots, batch_options=None):
    """Jitted ``block(keys, state, arrays, prior, t0, n_active, seg_len, acc, first_bad)`` (cached
    per configuration; ``block_len`` and ``n_slots`` are its only static sizes).

    A kernel may carry a ``compiler_options`` attribute (a dict of XLA CPU options, e.g. from
    :func:`mitml_jax.kernels.jomo.build_kernel`): the block is compiled with them on the CPU
    backend (a GPU refuses CPU options). ``batch_options``: more such options as sorted
    ``(name, value)`` pairs, those of the kernel's batched step for the chains of a part
    (:func:`_batch_options`).

    Runs iterations ``t0 .. t0 + n_active - 1`` (``n_active <= block_len``) as segments of
    ``seg_len`` iterations and saves the state after each segment (``ceil(n_active / seg_len) <=
    n_slots``); returns ``(state, acc, first_bad, records, saved)`` with records
    ``(block_len, C, ...)`` and ``saved`` ``(n_slots, C, ...)``. Entries past the active
    iterations and segments are zeros (the host drops them).
    """
    step = _chain_step(kernel)
    _, enter, leave = _chain_layout(kernel)

    def block(keys, state, arrays, prior, t0, n_active, seg_len, acc, first_bad):
        _TRACES["block"] += 1
        n_active = jnp.clip(n_active, 0, block_len).astype(jnp.int32)
        seg_len = jnp.maximum(seg_len, 1).astype(jnp.int32)
        record_shape = jax.eval_shape(jax.vmap(transform), state)
        records = jax.tree_util.tree_map(lambda s: jnp.zeros((block_len,) + s.shape, s.dtype), record_shape)
        save_shape = jax.eval_shape(jax.vmap(save, in_axes=(0, None)), state, arrays)
        saved = jax.tree_util.tree_map(lambda s: jnp.zeros((n_slots,) + s.shape, s.dtype), save_shape)

        def iteration(i, carry):
            state, acc, first_bad, records = carry
            t = (t0 + i).astype(jnp.int32)
            # t broadcast to the chains: fold_in of a key array needs data of its shape for keys
            # of other implementations (rbg); the same words for threefry
            state, info = step(fold_in(keys, jnp.broadcast_to(t, keys.shape)), state, arrays, prior)
            record = jax.vmap(transform)(leave(state, arrays))
            finite = jax.vmap(_all_finite)(record)
            first_bad = jnp.where((first_bad < 0) & ~finite, t, first_bad)
            acc = jax.tree_util.tree_map(lambda a, x: a + x.astype(a.dtype), acc, info)
            records = jax.tree_util.tree_map(
                lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, i, 0), records, record
            )
            return state, acc, first_bad, records

        def segment(s, carry):
            state, acc, first_bad, records, saved = carry
            start = s * seg_len
            stop = jnp.minimum(start + seg_len, n_active)
            state, acc, first_bad, records = jax.lax.fori_loop(start, stop, iteration, (state, acc, first_bad, records))
            values = jax.vmap(save, in_axes=(0, None))(leave(state, arrays), arrays)
            saved = jax.tree_util.tree_map(
                lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, s, 0), saved, values
            )
            return state, acc, first_bad, records, saved

        n_seg = (n_active + (seg_len - 1)) // seg_len
        state, acc, first_bad, records, saved = jax.lax.fori_loop(
            0, n_seg, segment, (enter(state, arrays), acc, first_bad, records, saved)
        )
        return leave(state, arrays), acc, first_bad, records, saved

    options = dict(getattr(kernel, "compiler_options", None) or {}, **dict(batch_options or ()))
    return jax.jit(block, compiler_options=for_backend(options))


def _batch_options(kernel, n_chains, arrays):
    """The XLA CPU options of the kernel's batched step for ``n_chains`` chains (the
    ``chain_batch`` hook's ``options(n_chains, arrays)``) as sorted pairs, or None."""
    options = getattr(getattr(kernel, "chain_batch", None), "options", None)
    found = options(n_chains, arrays) if options is not None else None
    return tuple(sorted(found.items())) if found else None


def _tree_bytes(shapes) -> int:
    return sum(int(np.prod(s.shape)) * s.dtype.itemsize for s in jax.tree_util.tree_leaves(shapes))


def _block_sizes(record_shape, save_shape, n_iter):
    """``(block_len, n_slots)``: iterations per block and saves per block, the block function's
    static sizes. Neither depends on ``n_iter`` unless ``n_iter`` exceeds the block length (then
    the block grows to the next power of two, so a segment never spans two blocks).

    ``record_shape`` and ``save_shape`` are what one iteration records and one save keeps, for
    all chains (chain axis included).
    """
    block_len = max(1, min(BLOCK_ITERATIONS, BLOCK_BYTES // max(_tree_bytes(record_shape), 1)))
    if n_iter > block_len:
        block_len = 1 << (int(n_iter) - 1).bit_length()
    n_slots = max(1, min(block_len, MAX_SAVES_PER_BLOCK, SAVE_BYTES // max(_tree_bytes(save_shape), 1)))
    return int(block_len), int(n_slots)


def _plan(n_burn, n_imp, n_iter, block_len, n_slots):
    """Blocks as ``(t0, n_active, seg_len, phase)``: burn-in in blocks of ``block_len`` (one
    segment each), then the imputation phase in whole ``n_iter`` segments, at most ``n_slots``
    of them per block."""
    plan = [(t0, min(block_len, n_burn - t0), block_len, "burnin") for t0 in range(0, n_burn, block_len)]
    step = n_iter * max(1, min(n_slots, block_len // n_iter))
    plan += [(n_burn + t0, min(step, n_imp - t0), n_iter, "imputation") for t0 in range(0, n_imp, step)]
    return plan


def run_chains(
    kernel: Callable,
    init_state: Any,
    arrays: Any,
    prior: Any,
    rng_key,
    *,
    n_burn: int,
    n_iter: int,
    n_saves: int,
    transform: Callable,
    save: Callable,
    chain_ids=None,
    progress: bool = True,
    failure_hint: str = "",
    reduce_records: Callable | None = None,
    t_start: int = 0,
    after_block: Callable | None = None,
) -> ChainRun:
    """Run ``C`` independent chains of ``kernel`` (vmapped), burn-in then ``n_saves`` saves.

    Args:
        kernel: ``(rng_key, state, arrays, prior) -> (state, info)`` for ONE chain; ``info`` is a
            pytree of scalar flags or counts (summed over iterations into ``failures``). Must be
            a hashable, long-lived object (e.g. from an ``lru_cache``d builder) so compiled blocks
            are reused across calls.
        init_state: the starting state pytree with a leading chain axis ``C``.
        arrays: data pytree shared by all chains (passed as an argument, never closed over).
        prior: prior pytree shared by all chains.
        rng_key: a ``jax.random.key``; chain ``c`` uses ``fold_in(rng_key, chain_ids[c])``.
        n_burn: burn-in iterations of every chain.
        n_iter: iterations between saves.
        n_saves: saves per chain (the imputation phase has ``n_saves * n_iter`` iterations).
        transform: ``state -> dict[name, array]`` recorded at EVERY iteration (parameter draws).
        save: ``(state, arrays) -> pytree`` recorded at the end of every ``n_iter`` segment.
        chain_ids: chain numbers (default ``0..C-1``); running chain 3 alone reproduces chain 3
            of a bigger run.
        progress: show a tqdm bar updated between blocks.
        failure_hint: remedy appended to the :class:`SamplerFailure` message.
        reduce_records: optional host-side ``dict -> dict`` applied to every block of records
            (NumPy arrays (C, D, ...)) before they are stored, e.g. keeping only diagonals;
            it changes host memory without changing (or recompiling) the device program.
        t_start: global number of the first iteration (default 0). A resumed run passes the
            iterations its chains already made (with their last state as ``init_state`` and
            ``n_burn=0``), so its keys continue the sequence and the draws equal those of one
            uninterrupted run bit for bit.
        after_block: optional ``after_block(iterations_done)`` called on the host after every
            block that was stored (iterations per chain completed in this call).

    Returns:
        :class:`ChainRun` with NumPy arrays (chain axis first).

    Raises:
        SamplerFailure: when a recorded parameter becomes NaN or infinite; names chain and
            iteration. Its ``run`` holds the completed part (as :class:`InterruptedChains`' does)
            and ``iterations_done`` the iterations per chain in it.
        InterruptedChains: on Ctrl-C (between or during blocks); carries the completed part.
    """
    chains = jax.tree_util.tree_leaves(init_state)[0].shape[0]
    if chain_ids is None:
        chain_ids = np.arange(chains)
    keys = chain_keys(rng_key, chain_ids)
    record_shape = jax.eval_shape(jax.vmap(transform), init_state)
    save_shape = jax.eval_shape(jax.vmap(save, in_axes=(0, None)), init_state, arrays)
    block_len, n_slots = _block_sizes(record_shape, save_shape, int(n_iter))

    # host arrays: eager jnp calls would each compile a tiny program on a cold start
    _, enter, _ = _chain_layout(kernel)

    def probe(keys, state, arrays, prior):
        return _chain_step(kernel)(keys, enter(state, arrays), arrays, prior)

    # on a CPU the chains run in equal parts, one thread each (sampling/threads.py); the probe
    # traces the step for one part's chains, the shapes the block function traces it with
    parts = chain_parts(chains, init_state, keys)
    keys_p, state_p = split_chains(keys, parts), split_chains(init_state, parts)
    step_jaxpr, (_, info_shape) = jax.make_jaxpr(probe, return_shape=True)(keys_p[0], state_p[0], arrays, prior)
    if parts > 1 and not splittable(step_jaxpr):  # LAPACK calls: one part (see threads.py); the
        # block then traces the step again, for all chains
        parts, keys_p, state_p = 1, [keys], [init_state]
    block = _block_function(kernel, transform, save, block_len, n_slots,
                            _batch_options(kernel, chains // parts, arrays))
    acc = jax.tree_util.tree_map(lambda s: np.zeros((chains,) + s.shape[1:], np.int32), info_shape)
    first_bad = np.full((chains,), -1, dtype=np.int32)

    n_imp = n_saves * n_iter
    reduce_records = reduce_records or (lambda records: records)
    host_shape = reduce_records({n: np.zeros((chains, 1) + s.shape[1:], s.dtype) for n, s in record_shape.items()})
    burnin = {n: np.empty((chains, n_burn) + s.shape[2:], s.dtype) for n, s in host_shape.items()}
    imputation = {n: np.empty((chains, n_imp) + s.shape[2:], s.dtype) for n, s in host_shape.items()}
    saves = jax.tree_util.tree_map(lambda s: np.empty((chains, n_saves) + s.shape[1:], s.dtype), save_shape)
    plan = _plan(n_burn, n_imp, int(n_iter), block_len, n_slots)

    acc_p, first_bad_p = split_chains(acc, parts), split_chains(first_bad, parts)
    runner = PartRunner(block, parts)
    bar = ProgressBar(total=n_burn + n_imp, enabled=progress)
    pending = None
    # what the host holds: a Ctrl-C returns it without waiting for the block still in flight
    done = {"iterations": 0, "outs": [(s, a, f) for s, a, f in zip(state_p, acc_p, first_bad_p)]}

    def store(pending):
        _store(pending, burnin, imputation, saves, n_burn, n_iter, failure_hint, bar, chain_ids, reduce_records)
        done.update(iterations=pending[0] + pending[1], outs=pending[3])
        if after_block is not None:
            after_block(done["iterations"])

    # imports for after the run, in a thread while XLA compiles and runs the blocks (once per process)
    prefetch = import_during_compile()
    try:
        for t0, n_active, seg_len, phase in plan:
            runner.submit([(k, s, arrays, prior, np.int32(t_start + t0), np.int32(n_active), np.int32(seg_len), a, f)
                           for k, s, a, f in zip(keys_p, state_p, acc_p, first_bad_p)])
            prefetch.go()
            if pending is not None:  # while the block runs
                store(pending)
            outs = runner.result()
            state_p, acc_p, first_bad_p = ([o[i] for o in outs] for i in range(3))
            pending = (t0, n_active, phase, outs)
        if pending is not None:
            store(pending)
    except (KeyboardInterrupt, SamplerFailure) as stop:
        t = done["iterations"]
        n_b, n_s = min(t, n_burn), max(t - n_burn, 0) // n_iter
        partial = _chain_run({b: v[:, :n_b] for b, v in burnin.items()},
                             {b: v[:, : n_s * n_iter] for b, v in imputation.items()},
                             jax.tree_util.tree_map(lambda a: a[:, :n_s], saves), *_joined(done["outs"])[:3])
        if isinstance(stop, SamplerFailure):  # the blocks before the failing one are finite
            stop.run, stop.iterations_done = partial, t
            raise
        raise InterruptedChains(partial, t) from None
    finally:
        runner.close()
        bar.close()
        prefetch.go()  # after an error or Ctrl-C the imports finish in the background
    prefetch.wait()
    return _chain_run(burnin, imputation, saves, *_joined(done["outs"])[:3])


def _joined(outs):
    """One tuple ``(state, acc, first_bad)`` from the outputs of every part of the chains
    (unchanged with one part)."""
    if len(outs) == 1:
        return outs[0][:3]
    return tuple(join_chains([o[i] for o in outs]) for i in range(3))


def _chain_run(burnin, imputation, saves, state, acc, first_bad) -> ChainRun:
    failures = {name: np.asarray(v) for name, v in acc._asdict().items()} if hasattr(acc, "_asdict") else jax.device_get(acc)
    return ChainRun(
        burnin=burnin,
        imputation=imputation,
        saves=saves,
        state=jax.device_get(state),
        failures=failures,
        first_bad=np.asarray(first_bad),
    )


def _store(pending, burnin, imputation, saves, n_burn, n_iter, failure_hint, bar, chain_ids, reduce_records):
    """Copy one finished block to the host arrays; raise on non-finite draws. ``pending`` holds the
    outputs of every part of the chains: each part's records go straight to its chains' rows (one
    copy; joining the parts first was a second one)."""
    t0, n_active, phase, outs = pending
    # only what the host keeps: not the state (all chains' completed data) nor, in burn-in, the
    # empty save buffer (both the size of the data: gigabytes per block for large studies on a GPU)
    parts = jax.device_get([(o[2], o[3]) + ((o[4],) if phase == "imputation" else ()) for o in outs])
    bad = np.concatenate([np.asarray(part[0]).reshape(-1) for part in parts])
    if np.any(bad >= 0):
        c = int(np.argmax(bad >= 0))
        raise SamplerFailure(
            f"the sampler produced non-finite parameters in chain {int(chain_ids[c])} at iteration "
            f"{int(bad[c]) + 1} (1-based, burn-in included). {failure_hint}".strip()
        )
    if phase == "burnin":
        dest, start = burnin, t0
    else:
        dest, start = imputation, t0 - n_burn
    first, n_seg = (t0 - n_burn) // n_iter, n_active // n_iter
    c0 = 0
    for part_bad, records, *saved in parts:
        c1 = c0 + np.size(part_bad)  # this part's chains
        # (block_len, C_part, ...) -> (C_part, n_active, ...)
        records = {n: np.moveaxis(rec, 1, 0)[:, :n_active] for n, rec in records.items()}
        for name, rec in reduce_records(records).items():
            dest[name][c0:c1, start : start + n_active] = rec
        if phase == "imputation":
            def put(to, src, c0=c0, c1=c1):
                to[c0:c1, first : first + n_seg] = np.moveaxis(src, 1, 0)[:, :n_seg]

            jax.tree_util.tree_map(put, saves, saved[0])
        c0 = c1
    bar.update(n_active)
