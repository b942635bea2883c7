"""Checks of the sampler arguments shared by ``pan_impute``, ``jomo_impute`` and ``extend``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import MitmlError, MitmlTypeError
from .keys import seed_key

__all__ = ["call_text", "check_count", "check_flag", "check_run_arguments", "formula_as_given", "is_key",
           "rng_key_and_seed", "type_name"]


def check_count(name: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; a MitmlTypeError/MitmlError naming ``name`` otherwise.

    Accepted: Python and NumPy integers, and whole finite floats (R's numbers are doubles, so
    mitml takes ``n.burn = 20.0``: ``20.0`` becomes ``20``), also as 0-d NumPy/JAX arrays.
    Refused: bools, fractions (``20.5``), NaN and infinities, strings and anything else.
    """
    if isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0 and not is_key(value):
        value = np.asarray(value).item()
    if isinstance(value, (bool, np.bool_)):
        raise MitmlTypeError(f"'{name}' must be an integer >= {minimum}, got {value!r}.")
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise MitmlTypeError(f"'{name}' must be a finite whole number >= {minimum}, got {value!r}.")
        if not float(value).is_integer():
            raise MitmlTypeError(f"'{name}' must be a whole number (an integer >= {minimum}), got {value!r}.")
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise MitmlTypeError(f"'{name}' must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise MitmlError(f"'{name}' must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_flag(name: str, value, where: str = "") -> bool:
    """``value`` as a bool (mitml's logical arguments): Python or NumPy bools only; anything else
    is a MitmlTypeError naming ``name`` (after ``where``, e.g. ``"save: "``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise MitmlTypeError(f"{where}'{name}' must be True or False, got {value!r}.")
    return bool(value)


def is_key(value) -> bool:
    """A JAX PRNG key array (not a number)."""
    return isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key)


def rng_key_and_seed(seed):
    """(key, seed as recorded): an int seed, a JAX key, or None (a fresh random seed).

    A whole finite float (R's seeds are doubles: ``123.0``, also a NumPy float) is taken as the
    int ``123``, with the same key and recorded seed. Refused, naming ``'seed'``: fractions,
    NaN/inf, bools, strings and anything else, and integers outside the signed 64-bit range.
    """
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    if is_key(seed):
        return seed, seed
    given = seed
    if isinstance(seed, (float, np.floating)) and not isinstance(seed, (bool, np.bool_)):
        if not np.isfinite(seed) or not float(seed).is_integer():
            raise MitmlTypeError(f"'seed' must be a whole number (an integer), a jax.random.key or None, "
                                 f"got {seed!r}.")
        seed = int(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise MitmlTypeError(f"'seed' must be an integer, a jax.random.key or None, got {seed!r}.")
    if not -(2**63) <= int(seed) < 2**63:
        raise MitmlError(f"'seed' must fit in a signed 64-bit integer (-2**63 to 2**63 - 1), got {given!r}.")
    return seed_key(int(seed)), int(seed)


class _Given:
    """Stands for a user's argument in a call text when its value is too long to print."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def call_text(name: str, **arguments) -> str:
    """The ``Call:`` text of an imputation (mitml prints the call as written): ``name(key=value,
    ...)`` with the arguments in the order given, those that are None left out. ``type`` prints
    as a list of codes (jomo's pair as two lists). A prior prints
    its components with their values elided (``prior={'Binv': ..., 'a': ...}``), a list of
    per-group priors as ``prior=[...]``."""
    codes = arguments.get("type")
    if codes is not None:  # mitml's type vector (jomo: a pair of them) as plain lists
        pair = isinstance(codes, (list, tuple)) and len(codes) == 2 and all(
            np.ndim(part) == 1 for part in codes)
        arguments["type"] = ([np.asarray(part).tolist() for part in codes] if pair
                             else np.asarray(codes).tolist())
    prior = arguments.get("prior")
    if isinstance(prior, dict):
        arguments["prior"] = _Given("{" + ", ".join(f"{key!r}: ..." for key in prior) + "}")
    elif prior is not None:
        arguments["prior"] = _Given("[...]")
    parts = [f"{key}={value!r}" for key, value in arguments.items() if value is not None]
    return f"{name}({', '.join(parts)})"


def formula_as_given(formula, parsed):
    """The formula for the ``Call:`` text as the user wrote it (a string, or jomo's list of two
    strings): mitml prints the call as written, not the formula after ``*`` and ``.`` are
    expanded; ``parsed`` (the spec's normalised text) for anything else."""
    if isinstance(formula, str):
        return formula
    if isinstance(formula, (list, tuple)) and formula and all(isinstance(f, str) for f in formula):
        return list(formula)
    return parsed


def type_name(value) -> str:
    """The class name of ``value`` for error messages."""
    return type(value).__name__


def check_run_arguments(data, n_burn, n_iter, m, chains) -> tuple[int, int, int, int]:
    """The checks every sampler entry point starts with; returns (n_burn, n_iter, m, chains)."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise MitmlTypeError(f"'data' must be a pandas DataFrame, got {type_name(data)}.")
    n_burn = check_count("n_burn", n_burn, 0)
    n_iter = check_count("n_iter", n_iter, 1)
    m = check_count("m", m, 1)
    chains = check_count("chains", chains, 1)
    if chains > m:
        raise MitmlError(f"'chains' ({chains}) must not exceed 'm' ({m}): every chain gives at least one "
                         "imputation; use chains <= m.")
    return n_burn, n_iter, m, chains
