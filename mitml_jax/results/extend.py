"""``Imputations.extend``: more imputations from the SAME chains, continuing from their last state.

mitml cannot do this (a new ``panImpute`` call starts again from burn-in). Here the model arrays
and prior are rebuilt from ``imp.data``/``imp.spec``/``imp.prior``, the chains continue from
``imp.state`` at global iteration ``t = n_burn + (draws already kept)`` with the run's seed, and
the new imputations and parameter draws are appended. With the same ``n_iter`` the result equals,
bit for bit, one uninterrupted run with the larger number of saves per chain (for ``chains = 1``:
``pan_impute(m=4)`` equals ``pan_impute(m=2).extend(m=2)``; with several chains the same
imputations appear, ordered by when they were made; ``imputation_source`` says which is which).

pan only (jomo's per-group problems are not rebuilt here yet).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ..errors import MitmlError, MitmlTypeError
from .continuation import PartialRun, continue_chains

__all__ = ["extend_imputations", "rng_key_of", "InterruptedRun"]


class InterruptedRun(KeyboardInterrupt):
    """A run stopped with Ctrl-C; ``partial`` is the :class:`Imputations` completed so far
    (or None when no imputation was complete). A ``KeyboardInterrupt`` subclass."""

    def __init__(self, partial, message: str):
        super().__init__(message)
        self.partial = partial


def rng_key_of(seed):
    """The run's JAX key from ``imp.seed`` (an int, or a stored JAX key)."""
    if isinstance(seed, jax.Array) and jax.numpy.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        return jax.random.key(int(seed))
    raise MitmlError(f"extend: the run's seed {seed!r} is not an int or a JAX key; cannot continue it.")


def _count(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise MitmlTypeError(f"'{name}' must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise MitmlError(f"'{name}' must be an integer >= {minimum}, got {value}.")
    return int(value)


def _pan_problem(imp):
    """(kernel, state, arrays, prior, transform, save, reduce_records, miss_slot) for a pan run."""
    from ..arrays.build import build_arrays
    from ..kernels import pan
    from ..priors import to_pan_prior

    dtype = np.dtype(imp.extra.get("dtype", "float64"))
    design = imp.spec.design(imp.data)
    arrays, layout = build_arrays(design, dtype=dtype)
    prior = to_pan_prior(imp.prior[0], layout.dims["G"], dtype)
    pan_arrays = pan.prepare_pan_arrays(arrays, imp.spec.fixed_names)
    reduce = pan.diagonal_records if imp.keep_chains == "diagonal" else None
    return (pan.build_kernel(), imp.state, pan_arrays, prior, pan.transform, pan.save_missing, reduce,
            layout.miss_slot)


def extend_imputations(imp, m: int, n_iter=None, progress: bool = True, callback=None):
    """A new :class:`Imputations` with ``m`` more imputations from the same chains.

    Args:
        imp: a pan :class:`Imputations` with its final sampler ``state``.
        m: imputations to add (>= 1), split across the chains as ``pan_impute`` does.
        n_iter: iterations between the new imputations (default: the run's ``n_iter``; only the
            same ``n_iter`` reproduces an uninterrupted run).
        progress: show a progress bar.
        callback: optional ``callback(saves_done)`` called after every block of iterations that
            reached the host, with the new saves per chain completed so far.

    Returns:
        :class:`Imputations` with ``m_old + m`` imputations, the parameter draws of the new
        iterations appended to ``imputation``, the new final state and summed failure counts.
        ``imp`` is not changed.

    Raises:
        InterruptedRun: on Ctrl-C; ``.partial`` holds ``imp`` extended by the imputations
            completed before the interruption (or ``imp`` itself when none was).
    """
    from ..sampling.collect import saves_needed, split_imputations

    m = _count("m", m, 1)
    n_iter = imp.n_iter if n_iter is None else _count("n_iter", n_iter, 1)
    if imp.state is None:
        raise MitmlError("extend: this Imputations object has no sampler state ('state' is None); "
                         "run the sampler again with the desired 'm'.")
    if imp.kind != "pan":
        raise MitmlError(f"extend: continuing {imp.kind} runs is not supported yet; only pan_impute "
                         "results can be extended.")
    kernel, state, arrays, prior, transform, save, reduce, miss_slot = _pan_problem(imp)
    chains = int(imp.chains)
    drawn = int(next(iter(imp.imputation.values())).shape[1])
    n_saves = saves_needed(m, chains)

    def finish(run, n_done):
        return _merge(imp, run, n_done, m if n_done == n_saves else None, n_iter, drawn, miss_slot,
                      split_imputations)

    try:
        run = continue_chains(
            kernel, state, arrays, prior, rng_key_of(imp.seed), t_start=int(imp.n_burn) + drawn,
            n_iter=n_iter, n_saves=n_saves, transform=transform, save=save, progress=progress,
            reduce_records=reduce, failure_hint="extend: see pan_impute's remedies.",
            after_block=callback,
        )
    except PartialRun as stop:
        partial = finish(stop.run, stop.n_saves_done) if stop.n_saves_done > 0 else imp
        raise InterruptedRun(partial, f"extend interrupted: kept {partial.m} imputations "
                                      f"({partial.m - imp.m} new); continue with .extend() on the "
                                      "partial result.") from None
    return finish(run, n_saves)


def _merge(imp, run, n_done, m_new, n_iter, drawn, miss_slot, split_imputations):
    """``imp`` plus the run's saves: all ``m_new`` if given, else every completed save."""
    chains = int(imp.chains)
    saved = np.asarray(run.saves).reshape(chains, n_done, -1)
    if m_new is None:  # interrupted: keep every completed save of every chain
        source = np.array([(c, s) for c in range(chains) for s in range(n_done)]).reshape(-1, 2)
    else:
        source = split_imputations(m_new, chains)
    values = saved[source[:, 0], source[:, 1]]
    replacement = np.concatenate([imp.replacement, values[:, np.asarray(miss_slot)].T], axis=1)
    new_source = np.column_stack([source[:, 0], drawn + (source[:, 1] + 1) * n_iter - 1])
    imputation = {b: np.concatenate([imp.imputation[b], run.imputation[b]], axis=1) for b in imp.imputation}
    failures = dict(imp.failures)
    for name, count in run.failures.items():
        failures[name] = np.asarray(failures.get(name, 0)) + np.asarray(count)
    extra = dict(imp.extra)
    if n_iter != imp.n_iter:
        extra["n_iter_history"] = list(extra.get("n_iter_history", [(imp.m, imp.n_iter)])) + [(len(source), n_iter)]
    m_total = imp.m + len(source)
    return dataclasses.replace(
        imp,
        m=m_total,
        n_iter=int(n_iter),
        replacement=replacement,
        imputation=imputation,
        imputation_source=np.concatenate([np.asarray(imp.imputation_source).reshape(-1, 2), new_source]),
        failures=failures,
        state=run.state,
        call=f"{imp.call}.extend(m={len(source)}" + (f", n_iter={n_iter}" if n_iter != imp.n_iter else "") + ")",
        extra=extra,
    )
