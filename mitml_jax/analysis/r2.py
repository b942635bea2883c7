"""``multilevel_r2``: R-squared measures for multilevel models (mitml's ``multilevelR2``,
spec 4.9): RB1, RB2 (Raudenbush & Bryk), SB (Snijders & Bosker) and MVP (LaHuis et al., 2014).

Deliberate deviation from mitml: the null model ``y ~ 1 + (1|cluster)`` behind RB1, RB2 and SB is
fitted to the rows the model itself used. mitml refits it with ``update()``, i.e. on every row
with an observed response, so when the model dropped rows for missing predictors its RB1, RB2 and
SB compare variance components from different samples (leadership with WLOAD left incomplete:
RB1 0.138 in mitml, 0.089 here and in mitml on the complete rows). Without such rows the two agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitml_jax.analysis.adapters import as_fit
from mitml_jax.errors import MitmlError, MitmlTypeError

__all__ = ["multilevel_r2"]

MEASURES = ("RB1", "RB2", "SB", "MVP")


def multilevel_r2(model, print=MEASURES) -> pd.Series:  # noqa: A002 - mitml's argument name
    """Multilevel R-squared of one fitted mixed model, or averaged over a list of fits.

    Args:
        model: a fitted mixed model (statsmodels MixedLM, batched lmer fit, ...) or a list of
            them (one per imputed data set; the measures are averaged).
        print: which measures, case-insensitive subset of ``("RB1", "RB2", "SB", "MVP")``.

    Returns:
        Series indexed by measure (names are kept also when a single measure is requested).
    """
    given = [print] if isinstance(print, str) else print
    if not isinstance(given, (list, tuple)) or not all(isinstance(w, str) for w in given):
        raise MitmlTypeError(f"'print' must be a measure name or a list of them, a subset of "
                             f"{MEASURES}; got {print!r}.")
    which = [w.upper() for w in given]
    bad = [w for w in given if w.upper() not in MEASURES]
    if bad or not which:
        raise MitmlError(f"'print' must be a subset of {MEASURES} (got {print!r}"
                         + (f"; unknown: {bad!r})." if bad else ")."))
    fits = [as_fit(f) for f in model] if isinstance(model, (list, tuple)) else [as_fit(model)]
    if not fits:
        raise MitmlError("'model' is an empty list; give one fitted model per imputed data set.")
    for fit in fits:
        if not hasattr(fit, "mitml_r2"):
            raise MitmlError("Calculation of multilevel R-squared statistics not supported for "
                             f"models of class '{type(fit).__name__}' (implement mitml_r2).")
    values = np.array([[float(fit.mitml_r2(which)[w]) for w in which] for fit in fits])
    return pd.Series(values.mean(axis=0), index=which, name="R2")
