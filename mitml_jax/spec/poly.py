"""R's ``poly(x, degree, raw = FALSE)`` for formula terms: a term with several columns.

``poly(x, 2)`` gives the orthogonal polynomials of degree 1 and 2 (R's ``stats::poly``: the
columns of the centred power matrix orthogonalised by QR, each scaled to unit length, with a
positive leading coefficient); ``raw = TRUE`` gives ``x, x^2``. The model-matrix columns are
named as in R: the deparsed call followed by the degree, ``poly(x, 2)1``, ``poly(x, 2)2``.

A missing ``x`` gives missing values in every column of its row (R's ``poly`` refuses missing
values; here they reach the "Predictor variables must not contain missing data" check), and the
orthogonal polynomials are then computed from the observed rows.
"""

from __future__ import annotations

import numbers

import numpy as np

from mitml_jax.errors import MitmlError

__all__ = ["MatrixTerm", "poly"]


class MatrixTerm:
    """A formula term that expands to several numeric columns (``values`` is n x k)."""

    def __init__(self, values: np.ndarray, suffixes: tuple):
        self.values = np.asarray(values, dtype=float)
        self.suffixes = tuple(suffixes)


def poly(x, degree=1, raw=False) -> MatrixTerm:
    """R's ``poly(x, degree, raw)`` (one variable); see the module docstring."""
    if (not isinstance(degree, numbers.Real) or isinstance(degree, bool)
            or float(degree) != int(degree) or degree < 1):
        raise MitmlError(f"poly(): 'degree' must be a positive whole number, got {degree!r}.")
    if not isinstance(raw, (bool, np.bool_)):
        raise MitmlError(f"poly(): 'raw' must be TRUE or FALSE, got {raw!r}.")
    degree = int(degree)
    try:
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise MitmlError("poly() needs a numeric variable.") from None
    if x.ndim != 1:
        raise MitmlError("poly() takes one variable; several variables are not supported.")
    out = np.full((x.size, degree), np.nan)
    ok = ~np.isnan(x)
    xo = x[ok]
    if raw:
        out[ok] = xo[:, None] ** np.arange(1, degree + 1)
    else:
        if degree >= np.unique(xo).size:
            raise MitmlError(f"poly(): 'degree' ({degree}) must be less than the number of "
                             f"unique points ({np.unique(xo).size}).")
        powers = np.vander(xo - xo.mean(), degree + 1, increasing=True)
        q, r = np.linalg.qr(powers)
        z = q * np.diag(r)  # Gram-Schmidt residuals: independent of the QR's sign convention
        norm2 = (z ** 2).sum(axis=0)
        if np.any(norm2[1:] <= 1e-7 * max(1.0, float(np.max(norm2)))):
            raise MitmlError(f"poly(): 'degree' ({degree}) is too large for the values of x.")
        out[ok] = (z / np.sqrt(norm2))[:, 1:]
    return MatrixTerm(out, tuple(str(k) for k in range(1, degree + 1)))
