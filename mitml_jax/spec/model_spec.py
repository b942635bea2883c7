"""The imputation model as a frozen, hashable :class:`ModelSpec`, and its :class:`Design`.

``build_spec(data, formula=..., kind=...)`` (or ``type=...``) validates the model against the data
once; ``spec.design(data)`` then gives the NumPy design in the caller's row order. Host only.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning
from mitml_jax.spec import checks
from mitml_jax.spec.formula import ParsedFormula, parse_formula
from mitml_jax.spec.frozen_map import FrozenMap
from mitml_jax.spec.model_matrix import model_matrix, r_name, rhs_terms, sanitize_expression

__all__ = ["ModelSpec", "Design", "build_spec"]


class Design(NamedTuple):
    """The model's NumPy arrays in the caller's row order (n rows).

    ``y (n, r)`` L1 targets (float, NaN = missing, categorical targets as codes 0..K-1 into
    ``spec.categories``); ``y_l2 (n, r2)`` L2 targets at L1 rows; ``x (n, p)``, ``z (n, q)``,
    ``x_l2 (n, p2)`` model matrices; ``cluster (n,)`` codes 0..J-1 by sorted cluster value with
    ``cluster_labels (J,)`` (single-level: all 0, labels ``[None]``); ``group (n,)`` codes 0..G-1
    by first appearance with ``group_labels (G,)`` (no group: all 0, labels ``[None]``).
    """

    y: np.ndarray
    y_l2: np.ndarray
    x: np.ndarray
    z: np.ndarray
    x_l2: np.ndarray
    cluster: np.ndarray
    cluster_labels: np.ndarray
    group: np.ndarray
    group_labels: np.ndarray


@dataclass(frozen=True)
class ModelSpec:
    """A validated imputation model (mitml's ``model`` slot), hashable and immutable.

    Attributes:
        kind: ``"pan"`` or ``"jomo"``.
        targets, targets_l2: L1 and L2 target columns (formula order).
        categories: read-only mapping column -> tuple of levels, for categorical targets.
        cluster, group: column names or None.
        fixed_names, random_names, fixed_names_l2: model-matrix column names (R spelling).
        fixed_terms, random_terms, fixed_terms_l2: term labels (mitml's pvrs/qvrs, with
            ``"(Intercept)"``).
        formula, formula_l2: canonical formula texts (``formula_l2`` None without an L2 model).
        save_pred: derived predictor columns (model-matrix names that are not data columns).
        fixed_rhs, random_rhs, fixed_rhs_l2: canonical right-hand sides used by :meth:`design`.
        cluster_mean_predictors: L2 model-matrix columns replaced by their cluster means.
    """

    kind: str
    targets: tuple
    targets_l2: tuple = ()
    categories: FrozenMap = field(default_factory=FrozenMap)
    cluster: str | None = None
    group: str | None = None
    fixed_names: tuple = ()
    random_names: tuple = ()
    fixed_names_l2: tuple = ()
    fixed_terms: tuple = ()
    random_terms: tuple = ()
    fixed_terms_l2: tuple = ()
    formula: str = ""
    formula_l2: str | None = None
    save_pred: tuple = ()
    fixed_rhs: str = "1"
    random_rhs: str | None = None
    fixed_rhs_l2: str | None = None
    cluster_mean_predictors: tuple = ()

    @property
    def is_multilevel(self) -> bool:
        """True with a cluster variable (mitml's ``is.ML``)."""
        return self.cluster is not None

    @property
    def is_l2(self) -> bool:
        """True for a two-part (level-1 and level-2) jomo model (mitml's ``is.L2``)."""
        return self.formula_l2 is not None

    def design(self, data: pd.DataFrame) -> Design:
        """The design arrays of ``data`` (original row order); ``data`` is not modified."""
        checks.check_data_frame(data)
        used = [*self.targets, *self.targets_l2]
        used += [c for c in (self.cluster, self.group) if c is not None]
        checks.check_columns(data, used, "model column(s)")
        n = len(data)
        x = self._matrix(self.fixed_rhs, data, self.fixed_names, "fixed part")
        z = (self._matrix(self.random_rhs, data, self.random_names, "random part")
             if self.random_rhs is not None else np.empty((n, 0)))
        cluster, cluster_labels = _cluster_codes(data[self.cluster]) if self.cluster else (
            np.zeros(n, dtype=np.int64), np.array([None], dtype=object))
        group, group_labels = _group_codes(data[self.group]) if self.group else (
            np.zeros(n, dtype=np.int64), np.array([None], dtype=object))
        if self.fixed_rhs_l2 is not None:
            x_l2 = self._matrix(self.fixed_rhs_l2, data, self.fixed_names_l2, "level-2 part")
            for j, name in enumerate(self.fixed_names_l2):
                if name in self.cluster_mean_predictors:
                    x_l2[:, j] = _cluster_mean(x_l2[:, j], group, cluster)
        else:
            x_l2 = np.empty((n, 0))
        return Design(self._targets(data, self.targets), self._targets(data, self.targets_l2),
                      x, z, x_l2, cluster, cluster_labels, group, group_labels)

    def _matrix(self, rhs, data, names, part) -> np.ndarray:
        frame = model_matrix(rhs, data)
        if tuple(frame.columns) != tuple(names):
            raise MitmlError(f"The {part} of the model gives columns {list(frame.columns)} on this "
                             f"'data', but the spec has {list(names)}; use data with the same "
                             "columns and factor levels as when the spec was built.")
        return np.array(frame.to_numpy(dtype=float), dtype=float)  # writable copy

    def _targets(self, data, names) -> np.ndarray:
        out = np.empty((len(data), len(names)))
        for j, name in enumerate(names):
            col = data[name]
            if name in self.categories:
                levels = self.categories[name]
                codes = pd.Categorical(col, categories=list(levels)).codes.astype(float)
                unknown = (codes < 0) & col.notna().to_numpy()
                if unknown.any():
                    bad = sorted({str(v) for v in col[unknown]})
                    raise MitmlError(f"Target '{name}' has values {bad} that are not among its "
                                     f"levels {list(levels)}; use the levels the spec was "
                                     "built with.")
                codes[codes < 0] = np.nan
                out[:, j] = codes
            else:
                out[:, j] = col.to_numpy(dtype=float, na_value=np.nan)
        return out


def _cluster_codes(values: pd.Series):
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = values.cat.remove_unused_categories()
        return (np.array(present.cat.codes.to_numpy(), dtype=np.int64),
                np.array(present.cat.categories, dtype=object))
    try:
        labels, codes = np.unique(values.to_numpy(), return_inverse=True)
    except TypeError:  # mixed types: sort by their text
        text = values.astype(str).to_numpy()
        order, codes = np.unique(text, return_inverse=True)
        first = {t: v for t, v in zip(text[::-1], values.to_numpy()[::-1])}
        labels = np.array([first[t] for t in order], dtype=object)
    return codes.astype(np.int64).reshape(-1), labels


def _group_codes(values: pd.Series):
    codes, labels = pd.factorize(values, sort=False)
    return np.array(codes, dtype=np.int64), np.array(labels, dtype=object)


def _cluster_mean(column: np.ndarray, group: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({"v": column, "g": group, "c": cluster})
    return frame.groupby(["g", "c"], sort=False)["v"].transform("mean").to_numpy()


def _variables(rhs: str | None, columns: set) -> set:
    """Column names referred to by a right-hand side."""
    if rhs is None:
        return set()
    names = set()
    for term in rhs_terms(rhs, columns).terms:
        for expr in term:
            bare = expr[1:-1] if expr.startswith("`") and expr.endswith("`") else expr
            if bare in columns:
                names.add(bare)
                continue
            text, placeholders = sanitize_expression(expr, columns)
            try:
                tree = ast.parse(text, mode="eval")
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Name):
                    names.add(placeholders.get(node.id, node.id))
    return names


def _canonical_rhs(rhs: str, columns: set) -> tuple:
    """(canonical text, term labels with "(Intercept)") of a right-hand side."""
    terms = rhs_terms(rhs, columns)
    head = "1" if terms.intercept else "0"
    text = " + ".join([head, *terms.labels])
    labels = (("(Intercept)",) if terms.intercept else ()) + terms.labels
    return text, labels


def build_spec(data: pd.DataFrame, formula=None, type=None, group=None,  # noqa: A002
               kind: str = "pan") -> ModelSpec:
    """Validate an imputation model against ``data`` and return its :class:`ModelSpec`.

    Args:
        data: the caller's DataFrame (never modified).
        formula: ``"y1 + y2 ~ 1 + x + (1 + x | id)"``; for jomo also ``[level1, level2]``
            (``["y ~ 1 + (1 | id)", "w ~ 1"]``) or a formula without a random part
            (single-level).
        type: mitml's integer vector (one code per column, see ``type_codes``), or for jomo a
            list of two such vectors. Exactly one of ``formula`` and ``type``.
        group: a column name; a separate model is fitted within each of its values.
        kind: ``"pan"`` or ``"jomo"``.

    Raises:
        MitmlError / MitmlTypeError: naming the argument or column at fault (spec section 6.1).
    """
    checks.check_data_frame(data)
    if kind not in ("pan", "jomo"):
        raise MitmlError(f"'kind' must be 'pan' or 'jomo', not {kind!r}.")
    if formula is not None and type is not None:
        raise MitmlError("Only one of 'type' or 'formula' may be specified.")
    if formula is None and type is None:
        raise MitmlError("Specify the imputation model with either 'formula' or 'type'.")
    if type is not None:
        from mitml_jax.spec.type_codes import type_to_formula

        formula, group = type_to_formula(data, type, group, kind)
    level1, level2 = _split_levels(formula, kind)
    parsed = parse_formula(level1)
    parsed_l2 = None
    if level2 is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MitmlWarning)  # mitml drops L2 bar terms silently
            parsed_l2 = parse_formula(level2)
    return _build(data, parsed, parsed_l2, group, kind)


def _split_levels(formula, kind):
    if isinstance(formula, str):
        return formula, None
    if isinstance(formula, (list, tuple)):
        if len(formula) == 1:
            return formula[0], None
        if len(formula) == 2:
            if kind == "pan":
                raise MitmlError("'formula' for pan must be a single formula; level-2 target "
                                 "models ([level1, level2]) are supported by jomo_impute().")
            return formula[0], formula[1]
        raise MitmlError("Cannot determine the number of levels. The 'formula' or 'type' argument "
                         "must indicate either a single-level model, a model for responses at "
                         "level 1, or two models for responses at level 1 and 2 (got "
                         f"{len(formula)} formulas).")
    raise MitmlTypeError(f"'formula' must be a string or, for jomo, a list of two strings, not "
                         f"{type(formula).__name__}.")


def _check_group(data, group):
    if group is None:
        return None
    if isinstance(group, (list, tuple)):
        if len(group) != 1:
            raise MitmlError(f"Multiple 'group' variables found ({list(group)}). There can be "
                             "only one!")
        group = group[0]
    if not isinstance(group, str) or group not in data.columns:
        shown = (f"a {type(group).__name__}" if isinstance(group, (pd.Series, pd.Index, np.ndarray))
                 else repr(group))
        raise MitmlError(f"Argument 'group' is not correctly specified: {shown} must be the "
                         "name of a column of 'data'.")
    checks.check_complete(data, group, "Grouping variable")
    return group


def _build(data, parsed: ParsedFormula, parsed_l2: ParsedFormula | None, group, kind) -> ModelSpec:
    group = _check_group(data, group)
    if kind == "pan" and parsed.cluster is None:
        raise MitmlError(f"Cluster indicator not found in formula\n\n{parsed.text}\n\nPlease "
                         "specify the cluster indicator and at least one random term using the "
                         "'|' operator. Single-level imputation is supported by jomo_impute().")
    if parsed_l2 is not None and parsed.cluster is None:
        raise MitmlError("No cluster variable found. Imputation models for responses at level 1 "
                         "and 2 require the specification of a cluster variable in the level-1 "
                         "equation ('(1 | cluster)' in the first formula).")
    targets, targets_l2 = parsed.lhs, parsed_l2.lhs if parsed_l2 else ()
    checks.check_no_duplicates([*targets, *targets_l2])
    checks.check_columns(data, [*targets, *targets_l2], "target variable(s)")
    cluster = parsed.cluster
    if cluster is not None:
        checks.check_columns(data, [cluster], "cluster variable")
        checks.check_complete(data, cluster, "Cluster variable")
    roles = {cluster: "the cluster variable", group: "the grouping variable"}
    fixed_l2 = parsed_l2.fixed if parsed_l2 else None
    columns = {str(c) for c in data.columns}
    used = (_variables(parsed.fixed, columns) | _variables(parsed.random, columns)
            | _variables(fixed_l2, columns))
    for name in [*targets, *targets_l2]:
        if name in used:
            raise MitmlError(f"Target '{name}' is also used as a predictor in 'formula'; a "
                             "column can be either imputed or a predictor, not both.")
        if name in roles:
            raise MitmlError(f"Target '{name}' is also {roles[name]}; choose another column.")
    if group is not None and group == cluster:
        raise MitmlError(f"'group' '{group}' is also the cluster variable; choose another column.")
    checks.check_target_types(data, [*targets, *targets_l2], kind)
    checks.check_finite(data[list(targets) + list(targets_l2)], "Target variable", True)
    checks.check_observed(data, [*targets, *targets_l2], group)
    checks.check_has_missing(data, [*targets, *targets_l2])
    fixed_rhs, fixed_terms = _canonical_rhs(parsed.fixed, columns)
    x = _predictors(fixed_rhs, data, "fixed part")
    _check_not_empty(x, "fixed part", parsed.text, "'1' for an intercept")
    random_rhs = random_terms = None
    random_names = ()
    if parsed.random is not None:
        random_rhs, random_terms = _canonical_rhs(parsed.random, columns)
        z = _predictors(random_rhs, data, "random part")
        _check_not_empty(z, "random part", parsed.text, f"'(1 | {parsed.cluster})' for a random "
                         "intercept")
        random_names = tuple(z.columns)
    fixed_rhs_l2, fixed_terms_l2, names_l2, means = None, (), (), ()
    if parsed_l2 is not None:
        fixed_rhs_l2, fixed_terms_l2 = _canonical_rhs(parsed_l2.fixed, columns)
        x_l2 = _predictors(fixed_rhs_l2, data, "level-2 part")
        _check_not_empty(x_l2, "level-2 part", parsed_l2.text, "'1' for an intercept")
        names_l2 = tuple(x_l2.columns)
        means = _level2_checks(data, targets_l2, x_l2, cluster, group)
    group_codes, group_labels = (_group_codes(data[group]) if group is not None else
                                 (np.zeros(len(data), dtype=np.int64), [None]))
    checks.check_full_rank(x.to_numpy(), tuple(x.columns), "fixed part", group_codes,
                           group_labels)
    if parsed_l2 is not None:
        checks.check_full_rank(x_l2.to_numpy(), names_l2, "level-2 part", group_codes,
                               group_labels)
    categories = FrozenMap(
        (name, checks.target_levels(data[name])) for name in [*targets, *targets_l2]
        if checks.is_categorical(data[name]))
    fixed_names = tuple(x.columns)
    plain = {r_name(c) for c in columns} | {"(Intercept)"}
    derived = [n for n in (*fixed_names, *random_names, *names_l2) if n not in plain]
    formula = " + ".join(map(r_name, targets)) + " ~ " + fixed_rhs
    if random_rhs is not None:
        formula += f" + ({random_rhs} | {r_name(cluster)})"
    formula_l2 = (" + ".join(map(r_name, targets_l2)) + " ~ " + fixed_rhs_l2
                  if parsed_l2 else None)
    return ModelSpec(
        kind=kind, targets=tuple(targets), targets_l2=tuple(targets_l2), categories=categories,
        cluster=cluster, group=group, fixed_names=fixed_names, random_names=random_names,
        fixed_names_l2=names_l2, fixed_terms=fixed_terms, random_terms=random_terms or (),
        fixed_terms_l2=fixed_terms_l2, formula=formula, formula_l2=formula_l2,
        save_pred=tuple(dict.fromkeys(derived)), fixed_rhs=fixed_rhs, random_rhs=random_rhs,
        fixed_rhs_l2=fixed_rhs_l2, cluster_mean_predictors=means)


def _check_not_empty(matrix: pd.DataFrame, part: str, text: str, hint: str) -> None:
    """The sampler needs at least one column in every part of the model (pan and jomo have no
    model without fixed effects or, with a cluster, without random effects)."""
    if matrix.shape[1] == 0:
        raise MitmlError(f"The {part} of 'formula' {text!r} has no columns (no intercept and no "
                         f"predictors); the imputation model needs at least one: write {hint}.")


def _predictors(rhs: str, data: pd.DataFrame, part: str) -> pd.DataFrame:
    frame = model_matrix(rhs, data)
    bad = [c for c in frame.columns if frame[c].isna().any()]
    if bad:
        raise MitmlError(f"Predictor variables must not contain missing data: {', '.join(bad)} "
                         f"(in the {part}) have missing values. Impute them as targets or drop "
                         "those rows.")
    checks.check_finite(frame, "Predictor", False)
    return frame


def _level2_checks(data, targets_l2, x_l2: pd.DataFrame, cluster, group) -> tuple:
    """L2 targets must be constant within clusters; varying L2 predictors -> cluster means."""
    keys = {"c": data[cluster].to_numpy()}
    if group is not None:
        keys["g"] = data[group].to_numpy()
    clus = pd.DataFrame(keys).groupby(list(keys), sort=False).ngroup().to_numpy()
    for name in targets_l2:
        col = data[name]
        if checks.is_categorical(col):
            values = pd.factorize(col)[0].astype(float)
            values[values < 0] = np.nan
        else:
            values = col.to_numpy(dtype=float, na_value=np.nan)
        if not checks.within_cluster_constant(values, clus).all():
            raise MitmlError(f"Target variables at level 1 are not allowed in level-2 equation: "
                             f"'{name}' varies within clusters of '{cluster}'. Move it to the "
                             "level-1 formula.")
    constant = checks.within_cluster_constant(x_l2.to_numpy(dtype=float), clus)
    varying = tuple(name for name, ok in zip(x_l2.columns, constant) if not ok)
    if varying:
        warnings.warn("NOTE: Predictor variables at level 1 were found in level-2 equation and "
                      f"were replaced with cluster means ({', '.join(varying)}).", MitmlWarning,
                      stacklevel=4)
    return varying
