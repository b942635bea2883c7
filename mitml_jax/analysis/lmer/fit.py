"""``lmer(formula, implist, reml=True)``: one linear mixed model fitted to every imputation at once."""

from __future__ import annotations

import numbers

import numpy as np

from mitml_jax.analysis.analysis_list import AnalysisList
from mitml_jax.errors import MitmlError, MitmlTypeError

from .batch import LmerBatch
from .design import build_design
from .formula import parse_lmer_formula
from .results import LmerFit

__all__ = ["lmer", "refit_ml"]


def lmer(formula: str, implist, reml: bool = True, maxiter: int = 100) -> AnalysisList:
    """Fit an lme4-style linear mixed model to each imputed data set, all in one batch.

    The profiled (RE)ML deviance of lme4 (Bates et al. 2015) is minimised for all imputations
    at once (batched Newton iterations with exact gradients), using per-cluster cross-products,
    so the cost hardly depends on the number of rows. Small batches (e.g. 100 data sets of 50
    clusters with a random intercept) are fitted in NumPy, larger ones by a compiled XLA
    program; both run the same algorithm (see ``batch.use_host``). Warns (``MitmlWarning``) like lme4 when a
    fit does not converge or is singular (a variance estimated as zero).

    Parameters
    ----------
    formula : str
        ``"y ~ 1 + x + z + (1 + x | id)"``: one response, fixed effects with R's formula syntax
        and exactly one random-effects term with one grouping factor.
    implist : list of pandas.DataFrame
        The imputed data sets (e.g. an ``ImputedList``). Rows with a missing value in a model
        variable are dropped, as ``lme4`` does by default.
    reml : bool, default True
        Restricted maximum likelihood (lme4's default) or maximum likelihood.
    maxiter : int, default 100
        Maximum number of Newton iterations.

    Returns
    -------
    AnalysisList
        One :class:`~mitml_jax.analysis.lmer.results.LmerFit` per data set, ready for
        ``test_estimates``, ``test_models`` (D1-D4), ``test_constraints``, ``anova`` and
        ``multilevel_r2``.

    Examples
    --------
    >>> fits = lmer("ReadAchiev ~ 1 + ReadDis + (1 | ID)", implist)  # doctest: +SKIP
    >>> fits[0].summary()  # doctest: +SKIP
    """
    if not isinstance(reml, (bool,)) and not (hasattr(reml, "dtype") and reml.dtype == bool):
        raise MitmlTypeError(f"'reml' must be True or False, got {reml!r}.")
    if isinstance(maxiter, (bool, np.bool_)) or not isinstance(maxiter, numbers.Integral) \
            or maxiter < 1:
        raise MitmlError(f"'maxiter' must be a positive integer, got {maxiter!r}.")
    maxiter = int(maxiter)  # NumPy integers too
    parsed = parse_lmer_formula(formula)
    design = build_design(parsed, implist)
    batch = LmerBatch(design, reml=bool(reml), maxiter=maxiter)
    fits = [LmerFit(batch, i) for i in range(design.m)]
    return AnalysisList(fits, call=f"lmer({parsed.text!r}, reml={bool(reml)})")


def refit_ml(fits) -> AnalysisList:
    """The ML refits of a list of :class:`LmerFit` (each batch is refitted once, all at once)."""
    out = []
    for fit in fits:
        if not isinstance(fit, LmerFit):
            raise MitmlTypeError(f"refit_ml: expected LmerFit objects, got {type(fit).__name__}.")
        out.append(fit.mitml_refit_ml())
    return AnalysisList(out, call=getattr(fits, "call", None))
