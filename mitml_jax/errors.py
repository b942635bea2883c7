"""The project's exceptions.

Every error raised for bad input is a :class:`MitmlError` (a ``ValueError``) or a
:class:`MitmlTypeError` (also a ``TypeError``). Messages name the argument or column at fault
and say what to do.
"""

from __future__ import annotations

__all__ = ["MitmlError", "MitmlTypeError", "MitmlWarning", "SamplerFailure"]


class MitmlError(ValueError):
    """Bad input or an impossible request; the message names the culprit and the remedy."""


class MitmlTypeError(MitmlError, TypeError):
    """An argument of the wrong type (also a ``TypeError``)."""


class SamplerFailure(MitmlError):
    """A numerical failure inside the Gibbs sampler (reported with iteration and remedy)."""


class MitmlWarning(UserWarning):
    """Warnings issued where mitml warns (ignored arguments, convergence, singular fits)."""
