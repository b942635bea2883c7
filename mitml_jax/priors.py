"""pan's priors: defaults (spec 2.6) and validation of a user prior.

pan: ``Sigma ~ IW(a, Binv)``, ``Psi ~ IW(c, Dinv)``, beta flat, with IW read as in pan
(``X^{-1} ~ Wishart(df, scale^{-1})``). Defaults: ``a = r``, ``Binv = I_r``, ``c = r q``,
``Dinv = I_{r q}``. One prior is used for all groups (as in mitml).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from .errors import MitmlError, MitmlTypeError
from .kernels.state import PanPrior

__all__ = ["pan_default_prior", "check_pan_prior", "to_pan_prior", "as_real_array"]


def pan_default_prior(r: int, q: int) -> dict:
    """mitml's default pan prior for r targets and q random effects."""
    return {"a": float(r), "Binv": np.eye(r), "c": float(r * q), "Dinv": np.eye(r * q)}


def as_real_array(name, value, what, where=""):
    """``value`` as a float array; a MitmlError naming ``prior[name]`` (``where``: e.g. the group)
    and saying it must be ``what`` for text, bools, ragged lists, complex numbers and anything
    else that is not real numbers (NumPy would raise its own ValueError/TypeError)."""
    try:
        arr = np.asarray(value)
        text = arr.dtype.kind in "US" or (arr.dtype.kind == "O" and any(
            isinstance(v, (str, bytes, bool, np.bool_)) for v in arr.reshape(-1)))
        if value is None or arr.dtype.kind in "cb" or text:
            raise TypeError
        return np.asarray(arr, dtype=float)
    except (TypeError, ValueError):
        raise MitmlError(f"prior['{name}']{where} must be {what}, got {value!r}.") from None


def _check_matrix(name, value, dim):
    m = as_real_array(name, value, f"a {dim} x {dim} matrix of real numbers")
    if m.ndim == 0 and dim == 1:
        m = m.reshape(1, 1)
    if m.shape != (dim, dim):
        raise MitmlError(f"prior['{name}'] must be a {dim} x {dim} matrix, got shape {m.shape}.")
    if not np.all(np.isfinite(m)):
        raise MitmlError(f"prior['{name}'] contains missing or infinite values.")
    if not np.allclose(m, m.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(m).max())):
        raise MitmlError(f"prior['{name}'] must be symmetric.")
    if np.linalg.eigvalsh(m).min() <= 0:
        raise MitmlError(f"prior['{name}'] must be positive definite.")
    return 0.5 * (m + m.T)


def _check_df(name, value, dim):
    try:
        v = float(as_real_array(name, value, "a single real number").reshape(()))
    except (MitmlError, ValueError):
        raise MitmlError(f"prior['{name}'] must be a single number (degrees of freedom), "
                         f"got {value!r}.") from None
    if not np.isfinite(v) or v <= dim - 1:
        raise MitmlError(
            f"prior['{name}'] = {v:g} must exceed {dim - 1} (the dimension of its matrix minus one)."
        )
    return v


def check_pan_prior(prior, r: int, q: int) -> dict:
    """Validate a user prior (dict with a, Binv, c, Dinv) or return the default when None.

    Raises:
        MitmlTypeError: prior is not a mapping.
        MitmlError: missing or unknown components, wrong shapes, matrices not positive definite,
            degrees of freedom too small.
    """
    if prior is None:
        return pan_default_prior(r, q)
    if not isinstance(prior, Mapping):
        raise MitmlTypeError("prior must be a dict with the components 'a', 'Binv', 'c' and 'Dinv'.")
    missing = [k for k in ("a", "Binv", "c", "Dinv") if k not in prior]
    if missing:
        raise MitmlError(f"prior is missing component(s) {', '.join(missing)}: give all of a, Binv, c, Dinv.")
    unknown = sorted(set(prior) - {"a", "Binv", "c", "Dinv"})
    if unknown:
        raise MitmlError(f"prior has unknown component(s) {', '.join(map(str, unknown))}; pan uses a, Binv, c, Dinv.")
    return {
        "a": _check_df("a", prior["a"], r),
        "Binv": _check_matrix("Binv", prior["Binv"], r),
        "c": _check_df("c", prior["c"], r * q),
        "Dinv": _check_matrix("Dinv", prior["Dinv"], r * q),
    }


def to_pan_prior(prior: dict, n_groups: int, dtype) -> PanPrior:
    """Device :class:`PanPrior` with a leading group axis (the same prior for every group)."""

    def rep(v):
        v = np.asarray(v, dtype=np.float64)
        return jnp.asarray(np.broadcast_to(v, (n_groups,) + v.shape).copy(), dtype)

    return PanPrior(a=rep(prior["a"]), binv=rep(prior["Binv"]), c=rep(prior["c"]), dinv=rep(prior["Dinv"]))
