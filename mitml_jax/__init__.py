"""mitml_jax: multiple imputation for multilevel data, R's mitml as a many-chain JAX sampler.

The public API is exactly the names in ``__all__``. They are imported lazily on first use, so
``import mitml_jax`` stays cheap and never imports statsmodels, matplotlib or arviz.
"""

from __future__ import annotations

import importlib

import jax as _jax

# Float64 is the default (DEVELOPERS.md); float32 is an explicit sampler option.
_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # errors
    "MitmlError": "mitml_jax.errors",
    "MitmlTypeError": "mitml_jax.errors",
    "MitmlWarning": "mitml_jax.errors",
    "SamplerFailure": "mitml_jax.errors",
    # data sets
    "load_studentratings": "mitml_jax.datasets",
    "load_leadership": "mitml_jax.datasets",
    "load_justice": "mitml_jax.datasets",
    # model specification
    "ModelSpec": "mitml_jax.spec.model_spec",
    "build_spec": "mitml_jax.spec.model_spec",
    # imputation
    "pan_impute": "mitml_jax.api_pan",
    "jomo_impute": "mitml_jax.api_jomo",
    "Imputations": "mitml_jax.results.imputations",
    "InterruptedRun": "mitml_jax.results.extend",
    # completed data
    "mitml_complete": "mitml_jax.results.complete",
    "ImputedList": "mitml_jax.results.implist",
    "cluster_means": "mitml_jax.results.cluster_means",
    "read_implist": "mitml_jax.results.parquet",
    # analysis and pooling
    "AnalysisList": "mitml_jax.analysis.analysis_list",
    "test_estimates": "mitml_jax.analysis.estimates",
    "test_models": "mitml_jax.analysis.models",
    "test_constraints": "mitml_jax.analysis.constraints",
    "anova": "mitml_jax.analysis.anova",
    "multilevel_r2": "mitml_jax.analysis.r2",
    "lmer": "mitml_jax.analysis.lmer",
    # diagnostics
    "rhat": "mitml_jax.diagnostics.rank",
    "ess": "mitml_jax.diagnostics.rank",
    "mcse": "mitml_jax.diagnostics.rank",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mitml_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
