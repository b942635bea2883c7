"""``anova``: pooled comparisons of a sequence of nested models (mitml's
``anova.mitml.result``, spec 4.8).

Models are refitted by ML where needed, ordered by decreasing number of parameters, and
consecutive pairs are compared with D3, D4 or D2 (likelihood), falling back along
``D3 -> D4 -> D2`` when the likelihood evaluation a method needs is not available. mitml's bugs
B2 (models that cannot be ordered made anova fail) and B3 (printing with ``ariv`` defaulted)
are fixed: unorderable models are compared in the order given, with a warning.
"""

from __future__ import annotations

import warnings

import pandas as pd

from mitml_jax.analysis.adapters import as_fits
from mitml_jax.analysis.models import (TEST_COLUMNS, TEST_SNAKE, is_reml, loglik_values,
                                       pooled_loglik_values, stacked_loglik, test_models)
from mitml_jax.analysis.printing import format_table, table_lines
from mitml_jax.errors import MitmlError, MitmlWarning

__all__ = ["anova", "AnovaResult"]

METHODS = ("D3", "D4", "D2")


class AnovaResult:
    """Result of :func:`anova` (mitml's ``mitml.anova``).

    Attributes:
        tests: list of :class:`~mitml_jax.analysis.models.ModelsResult` (model i vs i + 1).
        test: DataFrame of all comparisons (rows ``"1 vs 2"``, ...).
        m, method, use, ariv, data, formula, order_method, reml, call: as in mitml
            (``order_method`` is None when the models were kept in the given order).
    """

    def __init__(self, tests, m, method, ariv, data, formula, order_method, reml, call):
        self.tests, self.m, self.method, self.ariv, self.data = tests, m, method, ariv, data
        self.use = "likelihood"
        self.formula, self.order_method, self.reml, self.call = formula, order_method, reml, call
        rows = [f"{i + 1} vs {i + 2}" for i in range(len(tests))]
        self.test = pd.concat([t.test for t in tests], ignore_index=True)
        self.test.index = rows

    def to_frame(self) -> pd.DataFrame:
        """All comparisons with snake_case columns (f_value, df1, df2, p_value, riv)."""
        return self.test.rename(columns=dict(zip(TEST_COLUMNS, TEST_SNAKE)))

    def __str__(self) -> str:
        method = self.method + (" (likelihood)" if self.method == "D2" else "")
        if self.method == "D4" and self.ariv == "robust":
            method += " (robust)"
        out = (f"\nCall:\n\n{self.call}\n\nModel comparison calculated from {self.m} imputed "
               f"data sets.\nCombination method: {method}\n\n")
        out += "".join(f"Model {i + 1}: {f}\n" for i, f in enumerate(self.formula)) + "\n"
        out += table_lines(format_table(self.test.to_numpy(), [f"{r} " for r in self.test.index],
                                        TEST_COLUMNS, digits=[3, 0, 3, 3, 3]), indent=True) + "\n"
        if self.order_method is None:
            out += "Models were ordered as provided by the user (by decreasing complexity).\n"
        else:
            out += (f"Models were automatically ordered via '{self.order_method}' (by "
                    "decreasing complexity).\n")
        if self.method == "D4":
            out += ("Data for stacking were extracted from the `data` argument.\n" if self.data
                    else "Data for stacking were automatically extracted from the fitted models.\n")
        if self.reml:
            out += "Models originally fit with REML were automatically refit using ML.\n"
        return out + "\n"

    __repr__ = __str__
    summary = __str__


def _check_method(method, fits_list, data):
    """Raise if the likelihood evaluation of ``method`` fails on the first imputation."""
    for fits in fits_list:
        first = fits[:1]
        if method == "D3":
            pooled_loglik_values(first)
        elif method == "D4":
            loglik_values(first)
            stacked_loglik(first, None if data is None else list(data)[:1])
        else:
            loglik_values(first)


def formulas_of(fits_list) -> list:
    """Each model's formula (or class name) from its first fit, for headers and messages."""
    return [getattr(f[0], "mitml_formula", lambda: type(f[0]).__name__)() for f in fits_list]


def anova(*models, method: str = "D3", ariv: str = "default", data=None):
    """Compare two or more nested models fitted to every imputed data set.

    Args:
        *models: two or more lists of fitted models (e.g. ``AnalysisList``), same length.
        method: ``"D3"`` (default), ``"D4"`` or ``"D2"`` (likelihood-based); falls back along
            ``D3 -> D4 -> D2`` with a warning when the requested method is not available.
        ariv: passed to D4 (``"default"``, ``"positive"``, ``"robust"``); ignored by D3/D2 as in
            mitml.
        data: D4 only, list of the imputed data sets to stack.

    Returns:
        :class:`AnovaResult`.
    """
    if len(models) < 2:
        raise MitmlError("Comparison requires at least two lists of fitted statistical models.")
    if method not in METHODS:
        raise MitmlError(f"'method' must be one of 'D3', 'D4', 'D2' (got {method!r}).")
    if ariv not in ("default", "positive", "robust"):
        raise MitmlError(f"'ariv' must be 'default', 'positive' or 'robust' (got {ariv!r}).")
    if not all(isinstance(x, (list, tuple)) for x in models):
        raise MitmlError("The arguments must be lists of fitted statistical models.")
    m = len(models[0])
    if any(len(x) != m for x in models):
        raise MitmlError("The lists of fitted models must have the same length.")
    fits_list = [as_fits(x, f"models[{i}]") for i, x in enumerate(models)]
    classes = {getattr(f[0], "class_name", type(f[0]).__name__) for f in fits_list}
    if len(classes) > 1:
        warnings.warn("The models appear to include objects of different classes. Results may "
                      "not be trustworthy.", MitmlWarning, stacklevel=2)
    reml = any(is_reml(f) for fits in fits_list for f in fits)
    if reml:
        fits_list = [[f.mitml_refit_ml() for f in fits] for fits in fits_list]

    problems, chosen = {}, None
    for candidate in METHODS[METHODS.index(method):]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _check_method(candidate, fits_list, data)
        except Exception as err:  # noqa: BLE001 - any failure means "not applicable", as mitml
            problems[candidate] = f"{candidate}: {err}"
            continue
        chosen = candidate
        break
    if chosen is None:
        raise MitmlError(f"The '{method}' method is not supported for the specified models, and "
                         "no valid alternative was found. Problems were due to:\n"
                         + "\n".join(problems.values()))
    if chosen != method:
        warnings.warn(f"The '{method}' method is not supported for the specified models. "
                      f"Switching to '{chosen}'.", MitmlWarning, stacklevel=2)

    order_method = "logLik"
    try:
        dfs = [int(fits[0].mitml_loglik()[1]) for fits in fits_list]
    except Exception:  # noqa: BLE001
        dfs, order_method = None, None
        warnings.warn("Could not determine the order of models. The order is therefore assumed "
                      "to be as specified (with decreasing complexity).", MitmlWarning,
                      stacklevel=2)
    labels = [f"model_{i + 1}" for i in range(len(models))]
    if dfs is not None:
        order = sorted(range(len(fits_list)), key=lambda i: -dfs[i])
        fits_list = [fits_list[i] for i in order]

    tests = []
    for i in range(len(fits_list) - 1):
        kwargs = {"method": chosen}
        if chosen == "D2":
            kwargs["use"] = "likelihood"
        if chosen == "D4":
            kwargs.update(ariv=ariv, data=data)
        with warnings.catch_warnings():  # anova has warned about mixed classes already
            warnings.filterwarnings("ignore", message="The 'model' and 'null_model' arguments "
                                    "appear to include objects of different classes")
            try:
                tests.append(test_models(fits_list[i], fits_list[i + 1], **kwargs,
                                         _call=f"test_models(model_{i + 1}, model_{i + 2}, "
                                               f"method={chosen!r})"))
            except MitmlError as err:  # say which pair: anova's user never named 'null_model'
                raise MitmlError(f"Comparing model {i + 1} with model {i + 2} of "
                                 f"{'; '.join(formulas_of(fits_list))}: {err}") from None
    formulas = formulas_of(fits_list)
    call = f"anova({', '.join(labels)}" + ("" if method == "D3" else f", method={method!r}") + \
        ("" if ariv == "default" else f", ariv={ariv!r}") + ")"
    return AnovaResult(tests, m, chosen, ariv, data is not None, formulas, order_method, reml, call)
