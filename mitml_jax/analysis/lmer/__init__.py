"""Batched linear mixed models in JAX (lme4's ``lmer`` with one grouping factor).

``lmer(formula, implist, reml=True)`` fits the model to every imputed data set at once and
returns an ``AnalysisList`` of :class:`LmerFit`, which implement the fitted-model protocol used
by the pooling functions.
"""

from __future__ import annotations

from .fit import lmer, refit_ml
from .results import LmerFit, LmerSummary

__all__ = ["lmer", "refit_ml", "LmerFit", "LmerSummary"]
