"""``Imputations.extend``: more imputations from the SAME chains, continuing from their last state.

mitml cannot do this (a new ``panImpute`` call starts again from burn-in). Here the model arrays
and prior are rebuilt from ``imp.data``/``imp.spec``/``imp.prior``, the chains continue from
``imp.state`` at global iteration ``t = n_burn + (draws already kept)`` with the run's seed, and
the new imputations and parameter draws are appended. With the same ``n_iter`` the result equals,
bit for bit, one uninterrupted run with the larger number of saves per chain (for ``chains = 1``:
``pan_impute(m=4)`` equals ``pan_impute(m=2).extend(m=2)``; with several chains the same
imputations appear, ordered by when they were made; ``imputation_source`` says which is which).
That needs every ``m`` (of the first run and of each extension) to be a multiple of ``chains``:
otherwise every chain still makes each save, the chains with fewer imputations so far give the
kept ones (so the chains stay balanced), and the saves not kept are lost to later extensions.

jomo runs are rebuilt group by group (each group is its own problem with key ``fold_in(key, g)``
when there are several groups, as in ``jomo_impute``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, NamedTuple

import jax
import numpy as np

from ..errors import MitmlError, MitmlTypeError, SamplerFailure
from ..sampling.arguments import check_count as _count
from ..sampling.arguments import check_flag, is_key
from ..sampling.run import failed_part
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
    if is_key(seed):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        return jax.random.key(int(seed))
    raise MitmlError(f"extend: the run's seed {seed!r} is not an int or a JAX key; cannot continue it.")




class _Part(NamedTuple):
    """One independent sampler problem of a run (pan: the run; jomo: one group)."""

    kernel: Any
    state: Any
    arrays: Any
    prior: Any
    key: Any
    transform: Any
    save: Any
    reduce: Any


def _pan_parts(imp):
    """([part], decode, stack) for a pan run."""
    from ..arrays.build import build_arrays
    from ..kernels import pan
    from ..priors import to_pan_prior

    dtype = np.dtype(imp.extra.get("dtype", "float64"))
    arrays, layout = build_arrays(imp.spec.design(imp.data), dtype=dtype)
    prior = to_pan_prior(imp.prior[0], layout.dims["G"], dtype)
    pan_arrays = pan.prepare_pan_arrays(arrays, imp.spec.fixed_names)
    reduce = pan.diagonal_records if imp.keep_chains == "diagonal" else None
    part = _Part(pan.build_kernel(), imp.state, pan_arrays, prior, rng_key_of(imp.seed), pan.transform,
                 pan.save_missing, reduce)
    miss_slot = np.asarray(layout.miss_slot)

    def decode(saves):  # [(C, S, G, M)] -> (C, S, n_miss)
        s = np.asarray(saves[0])
        return s.reshape(s.shape[0], s.shape[1], -1)[:, :, miss_slot]

    return [part], decode, lambda records, chains, n_draws: records[0]


def _jomo_parts(imp):
    """(parts, decode, stack) for a jomo run: one part per group, keys as in jomo_impute."""
    from .. import api_jomo
    from ..kernels.jomo_design import build_group_problems, imputed_values, missing_index

    design = imp.spec.design(imp.data)
    index, target_of_cell = missing_index(imp.data.columns, imp.spec, design)
    problems = api_jomo.configure_problems(build_group_problems(imp.spec, design, imp.random_L1),
                                           imp.extra.get("exact_beta2", False))
    _, priors = api_jomo._priors(list(imp.prior), problems, imp.random_L1)
    states = imp.state if len(problems) > 1 else [imp.state]
    key = rng_key_of(imp.seed)
    parts = [
        _Part(api_jomo._kernel(prob.config), states[g], prob.arrays, priors[g],
              key if len(problems) == 1 else api_jomo.group_key(key, g),
              api_jomo._transform(prob.config, imp.keep_chains), api_jomo._save, None)
        for g, prob in enumerate(problems)
    ]

    def decode(saves):
        return imputed_values(saves, problems, index, target_of_cell, imp.spec, design)

    return parts, decode, api_jomo._stack_groups


def extend_imputations(imp, m: int, n_iter=None, progress: bool = True, callback=None):
    """A new :class:`Imputations` with ``m`` more imputations from the same chains.

    Args:
        imp: a pan or jomo :class:`Imputations` with its final sampler ``state``.
        m: imputations to add (>= 1), split across the chains so that every chain's total stays
            as even as possible: chains that gave fewer imputations so far (``m`` not a multiple
            of ``chains``) come first, then lower chain numbers, as the samplers split them.
        n_iter: iterations between the new imputations (default: the run's ``n_iter``; only the
            same ``n_iter`` reproduces an uninterrupted run).
        progress: show a progress bar.
        callback: optional ``callback(saves_done)`` called after every block of iterations that
            reached the host, with the new saves per chain completed so far (jomo with groups:
            per group, one group after the other); its return value is ignored. Checked before
            the sampler starts.

    Returns:
        :class:`Imputations` with ``m_old + m`` imputations, the parameter draws of the new
        iterations appended to ``imputation``, the new final state and summed failure counts.
        ``imp`` is not changed.

    Raises:
        InterruptedRun: on Ctrl-C; ``.partial`` holds ``imp`` extended by the imputations
            completed before the interruption (or ``imp`` itself when none was, or when a jomo
            run with several groups was interrupted before its last group finished).
    """
    from ..sampling.collect import saves_needed

    m = _count("m", m, 1)
    n_iter = imp.n_iter if n_iter is None else _count("n_iter", n_iter, 1)
    check_flag("progress", progress)
    _check_callback(callback)
    if imp.state is None:
        raise MitmlError("extend: this Imputations object has no sampler state ('state' is None); "
                         "run the sampler again with the desired 'm'.")
    if imp.kind not in ("pan", "jomo"):
        raise MitmlError(f"extend: unknown kind {imp.kind!r}; only pan and jomo runs can be extended.")
    from ..sampling.cache import enable_compilation_cache

    parts, decode, stack = (_pan_parts if imp.kind == "pan" else _jomo_parts)(imp)
    enable_compilation_cache()  # as pan_impute does: a resumed session reuses compiled programs
    chains = int(imp.chains)
    drawn = int(next(iter(imp.imputation.values())).shape[1])
    n_saves = saves_needed(m, chains)
    runs = []
    try:
        for part in parts:
            runs.append(continue_chains(
                part.kernel, part.state, part.arrays, part.prior, part.key, t_start=int(imp.n_burn) + drawn,
                n_iter=n_iter, n_saves=n_saves, transform=part.transform, save=part.save,
                progress=progress, reduce_records=part.reduce, after_block=callback,
                failure_hint=f"extend: see {imp.kind}_impute's remedies.",
            ))
    except PartialRun as stop:
        partial = imp
        if len(parts) == 1 and stop.n_saves_done > 0:
            partial = _merge(imp, [stop.run], stop.n_saves_done, None, n_iter, drawn, decode, stack)
        raise InterruptedRun(partial, f"extend interrupted: kept {partial.m} imputations "
                                      f"({partial.m - imp.m} new); continue with .extend() on the "
                                      "partial result.") from None
    except SamplerFailure as failure:  # non-finite draws: keep the saves completed before them
        if len(parts) == 1:
            failed_part(failure, chains,
                        lambda run, n_done, _: _merge(imp, [run], n_done, None, n_iter, drawn, decode, stack))
        raise
    return _merge(imp, runs, n_saves, m, n_iter, drawn, decode, stack)


def _check_callback(callback) -> None:
    """None or a callable that takes one positional argument; a MitmlTypeError naming
    'callback' otherwise (before any iteration runs, not after the first block)."""
    if callback is None:
        return
    if not callable(callback):
        raise MitmlTypeError(f"extend: 'callback' must be None or a function of one argument (the new saves "
                             f"per chain completed so far), got {type(callback).__name__}.")
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # some builtins have no signature: take them as they are
        return
    try:
        signature.bind(0)
    except TypeError:
        raise MitmlTypeError(f"extend: 'callback' must take one argument (the new saves per chain completed so "
                             f"far), got {getattr(callback, '__qualname__', callback)!r}{signature}.") from None


def _balanced_source(imp, m_new: int, n_saves: int) -> np.ndarray:
    """(m_new, 2) ``(chain, new save)`` of the kept imputations: one at a time to the chain with
    the fewest imputations so far (then the lowest chain number), at most ``n_saves`` per chain;
    chain by chain. With every chain even this is :func:`split_imputations`."""
    chains = int(imp.chains)
    source = np.asarray(imp.imputation_source).reshape(-1, 2)
    total = np.bincount(source[:, 0].astype(np.int64), minlength=chains)[:chains].astype(np.int64)
    taken = np.zeros(chains, dtype=np.int64)
    for _ in range(int(m_new)):
        open_chains = np.flatnonzero(taken < n_saves)
        c = open_chains[np.argmin(total[open_chains] + taken[open_chains])]
        taken[c] += 1
    pairs = [(c, s) for c in range(chains) for s in range(taken[c])]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _merge(imp, runs, n_done, m_new, n_iter, drawn, decode, stack):
    """``imp`` plus the runs' saves: ``m_new`` of them if given, else every completed save."""
    chains = int(imp.chains)
    values = decode([r.saves for r in runs])  # (C, n_done, n_miss)
    if m_new is None:  # interrupted: keep every completed save of every chain
        source = np.array([(c, s) for c in range(chains) for s in range(n_done)]).reshape(-1, 2)
    else:
        source = _balanced_source(imp, m_new, n_done)
    replacement = np.concatenate([imp.replacement, values[source[:, 0], source[:, 1]].T], axis=1)
    new_source = np.column_stack([source[:, 0], drawn + (source[:, 1] + 1) * n_iter - 1])
    new_records = stack([r.imputation for r in runs], chains, n_done * n_iter)
    imputation = {b: np.concatenate([imp.imputation[b], new_records[b]], axis=1) for b in imp.imputation}
    failures = dict(imp.failures)
    extra = dict(imp.extra)
    if imp.kind == "pan":
        for name, count in runs[0].failures.items():
            failures[name] = np.asarray(failures.get(name, 0)) + np.asarray(count)
    else:
        if "acceptance" in extra:
            extra["acceptance"] = [{k: np.asarray(old.get(k, 0)) + np.asarray(v) for k, v in r.failures.items()}
                                   for old, r in zip(extra["acceptance"], runs)]
        if "a" in extra:
            extra["a"] = np.stack([np.asarray(r.state.a) for r in runs], axis=1)
    history = extra.get("n_iter_history")
    if history is not None or n_iter != imp.n_iter:  # once spacings differ, record every extension
        extra["n_iter_history"] = list(history or [(imp.m, imp.n_iter)]) + [(len(source), n_iter)]
    states = [r.state for r in runs]
    return dataclasses.replace(
        imp,
        m=imp.m + len(source),
        n_iter=int(n_iter),
        replacement=replacement,
        imputation=imputation,
        imputation_source=np.concatenate([np.asarray(imp.imputation_source).reshape(-1, 2), new_source]),
        failures=failures,
        state=states if len(states) > 1 else states[0],
        call=f"{imp.call}.extend(m={len(source)}" + (f", n_iter={n_iter}" if n_iter != imp.n_iter else "") + ")",
        extra=extra,
    )
