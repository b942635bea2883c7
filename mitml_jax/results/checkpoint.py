"""Save an :class:`Imputations` to disk, load it back, and run long imputations in stages.

File format (``imp.save(path)``, ``Imputations.load(path)``): one Python pickle (protocol 5) of
``{"format": "mitml_jax.Imputations", "version": 1, "fields": {...}}`` where ``fields`` are the
dataclass fields with every array (draws, replacement, sampler state) as NumPy and a JAX key seed
stored as its key data and implementation name. The sampler state is kept exactly, so a loaded
run continued with ``extend`` gives draws identical, bit for bit, to an uninterrupted run.
Pickle runs code when loading: load only files you (or someone you trust) wrote.

``imp.save(path, drop=True)`` (mitml's ``write.mitml(x, filename, drop = TRUE)``) leaves out the
parameter draws of the burn-in and imputation phases, which are most of the file. The draw
arrays are stored with zero draws (their other axes kept, so ``blocks`` and ``n_groups`` still
work) and ``extra["draws_dropped"]`` records how many draws per chain each phase had. Unlike R,
where dropping them also loses the object's class, the loaded object stays an
:class:`Imputations`: its imputations and completed data are unchanged, and the methods that
need the draws (``summary``, ``plot``, ``posterior_summary``, ``to_arviz``, ``extend``) raise a
:class:`MitmlError` that says so.

:func:`impute_in_stages` keeps a long run safe: it starts the sampler with one imputation per
chain, then adds imputations with ``extend`` in stages, saving after every stage; Ctrl-C returns
(with a warning) everything completed so far, which is also on disk.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import warnings

import jax
import numpy as np

from ..errors import MitmlError, MitmlTypeError, MitmlWarning
from ..sampling.arguments import check_count, check_flag, is_key
from .extend import InterruptedRun, extend_imputations

__all__ = ["save_imputations", "load_imputations", "impute_in_stages", "InterruptedRun"]

FORMAT = "mitml_jax.Imputations"
VERSION = 1


def _to_host(value):
    """JAX arrays (not keys) in a pytree -> NumPy; everything else unchanged."""
    return jax.tree_util.tree_map(lambda a: np.asarray(a) if isinstance(a, jax.Array) and not is_key(a) else a,
                                  value)


def _without_draws(draws) -> dict:
    """Each block's draw array with zero draws (axis 1); every other axis and the dtype kept."""
    out = {}
    for block, arr in draws.items():
        arr = np.asarray(arr)
        out[block] = np.empty((arr.shape[0], 0) + arr.shape[2:], dtype=arr.dtype)
    return out


def _draw_count(draws) -> int:
    """Draws per chain in one phase (0 when the phase kept none)."""
    return int(np.asarray(next(iter(draws.values()))).shape[1]) if draws else 0


def save_imputations(imp, path, drop=False) -> str:
    """Write ``imp`` to ``path`` (pickle, see the module docstring); returns the path.

    Args:
        imp: the :class:`Imputations` to save (not changed).
        path: file name (str or path-like).
        drop: mitml's ``drop``: True leaves out the parameter draws of the burn-in and
            imputation phases to make the file smaller; the loaded object keeps its imputations
            but cannot be summarised, plotted, exported to ArviZ or extended.

    Written to a temporary file first and renamed, so an interrupted save never leaves a
    truncated file behind.
    """
    from .imputations import Imputations

    if not isinstance(imp, Imputations):
        raise MitmlTypeError(f"save: 'imp' must be an Imputations object, got {type(imp).__name__}.")
    drop = check_flag("drop", drop, where="save: ")
    path = _check_target(path, "save")
    fields = {f.name: _to_host(getattr(imp, f.name)) for f in dataclasses.fields(imp)}
    if is_key(imp.seed):
        fields["seed"] = {"key_data": np.asarray(jax.random.key_data(imp.seed)),
                          "impl": str(jax.random.key_impl(imp.seed))}
    if drop and not imp.draws_dropped:
        fields["extra"] = {**fields["extra"], "draws_dropped": {
            "burnin": _draw_count(fields["burnin"]), "imputation": _draw_count(fields["imputation"])}}
        fields["burnin"] = _without_draws(fields["burnin"])
        fields["imputation"] = _without_draws(fields["imputation"])
    payload = {"format": FORMAT, "version": VERSION, "fields": fields}
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(payload, fh, protocol=5)
        os.replace(tmp, path)
    except BaseException as exc:  # also Ctrl-C: never leave the temporary file behind
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise MitmlError(f"save: could not write {path!r} ({exc.strerror or exc}).") from None
        raise
    return path


def _check_path(path, where: str) -> str:
    """``path`` as a str (a str, bytes or path-like), else a MitmlTypeError naming 'path'."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise MitmlTypeError(f"{where}: 'path' must be a file name (str or path-like), got "
                             f"{type(path).__name__}.")
    return os.fsdecode(os.fspath(path))


def _check_target(path, where: str) -> str:
    """``path`` as a str naming a file that can be written: not a directory, in a folder that
    exists; a MitmlError/MitmlTypeError naming it otherwise."""
    path = _check_path(path, where)
    if os.path.isdir(path):
        raise MitmlError(f"{where}: {path!r} is a directory; pass a file name such as "
                         f"{os.path.join(path, 'imputations.pkl')!r}.")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise MitmlError(f"{where}: the folder {folder!r} does not exist; create it first or pass "
                         "another path.")
    if not os.access(folder, os.W_OK | os.X_OK):  # the file is replaced by a rename: the folder
        raise MitmlError(f"{where}: the folder {folder!r} is not writable; pass a path in a folder "
                         "you may write to.")
    return path


def load_imputations(path):
    """Read an :class:`Imputations` written by :func:`save_imputations`."""
    from .imputations import Imputations

    path = _check_path(path, "load")
    if not os.path.exists(path):
        raise MitmlError(f"load: file {path!r} does not exist.")
    if os.path.isdir(path):
        raise MitmlError(f"load: {path!r} is a directory; pass the file written by save().")
    with open(path, "rb") as fh:
        try:
            payload = pickle.load(fh)  # noqa: S301 - documented: trusted files only
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError,
                KeyError, IndexError) as exc:  # what pickle raises on a file that is not one
            raise MitmlError(f"load: {path!r} is not a saved Imputations file ({exc}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MitmlError(f"load: {path!r} is not a saved Imputations file.")
    if payload.get("version") != VERSION:
        raise MitmlError(f"load: {path!r} has format version {payload.get('version')}, this "
                         f"mitml_jax reads version {VERSION}.")
    fields = dict(payload["fields"])
    seed = fields.get("seed")
    if isinstance(seed, dict) and "key_data" in seed:
        impl = seed["impl"]
        fields["seed"] = jax.random.wrap_key_data(seed["key_data"], impl=impl if impl != "None" else None)
    return Imputations(**fields)


def impute_in_stages(impute, data, *, m: int, stage: int, path=None, progress: bool = True, **kwargs):
    """Run ``impute(data, m=chains, **kwargs)`` then ``extend`` by ``stage`` imputations at a time.

    Args:
        impute: ``pan_impute`` (the run must be extendable).
        data: the data frame.
        m: total number of imputations wanted.
        stage: imputations added per stage (a multiple of ``chains`` keeps every chain's saves
            in step with an uninterrupted run).
        path: if given, the result is saved there after the first run and after every stage.
        progress: progress bars.
        **kwargs: passed to ``impute`` (formula, n_burn, n_iter, seed, chains, ...).

    Returns:
        :class:`Imputations` with ``m`` imputations. On Ctrl-C, the imputations completed so far
        (with a :class:`MitmlWarning`; also saved at ``path``); Ctrl-C during the first run
        (burn-in) propagates, as nothing is complete yet.
    """
    m = check_count("m", m, 1)
    stage = check_count("stage", stage, 1)
    if path is not None:  # before the sampler runs: a bad path must not cost the first run
        path = _check_target(path, "impute_in_stages")
    chains = check_count("chains", kwargs.get("chains", 1), 1)
    first = min(m, chains)
    imp = impute(data, m=first, progress=progress, **kwargs)
    path = _save_or_warn(imp, path)
    while imp.m < m:
        try:
            imp = extend_imputations(imp, m=min(stage, m - imp.m), progress=progress)
        except InterruptedRun as stop:
            imp = stop.partial
            path = _save_or_warn(imp, path)
            warnings.warn(f"Interrupted: returning the {imp.m} imputations completed so far"
                          + (f" (saved to {path!r})" if path is not None else "")
                          + "; continue with .extend().", MitmlWarning, stacklevel=2)
            return imp
        path = _save_or_warn(imp, path)
    return imp


def _save_or_warn(imp, path):
    """Save ``imp`` at ``path`` (None: nothing); a write that fails (a full disk, a folder made
    read-only during the run) gives a MitmlWarning and None, so the run goes on unsaved instead
    of losing what it has computed."""
    if path is None:
        return None
    try:
        save_imputations(imp, path)
    except MitmlError as err:
        warnings.warn(f"impute_in_stages: {err} The run goes on without saving; save the result "
                      "with .save() when it returns.", MitmlWarning, stacklevel=3)
        return None
    return path
