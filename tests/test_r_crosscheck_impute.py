"""Cross-check of pan_impute / jomo_impute / mitml_complete against R's mitml 0.4-4.

``tests/reference/crosscheck_impute/make_crosscheck_impute.R`` builds a 60-row data set (string and
non-consecutive integer cluster ids, rows not sorted by cluster, a one-row cluster, a group, factor,
ordered and integer columns, a level-2 target, a predictor with missing values) and records for 50
scenarios which model mitml builds (``imp$model``), the shapes of ``par.imputation`` and of the
prior, ``print(imp)``, the completed data's columns, classes and factor levels, and the errors R
raises. Draws differ between R and mitml_jax, so only structure and observed values are compared.

Deliberate differences from mitml (asserted as such below):

* completed data keep the caller's column order; mitml moves cluster, group and targets to the
  front (the column *set* is the same);
* mitml bug B16: with string cluster ids R's level-2 check computes NA cluster means and rejects
  every level-2 target; here string ids work;
* pan with a factor target: R imputes the factor's codes and the completed column gets NA
  ("invalid factor level"); here it is the spec's error "Target variables must be numeric";
* priors of the wrong shape (pan ``Binv`` 3 x 3 for 2 targets, jomo ``Dinv`` 3 x 3 for 2), with
  unknown components, matrices that are not positive definite, pan's ``a`` below r - 1, or a
  list of more per-group priors than groups are accepted silently by R; here they are errors;
  R's internal errors for too few per-group priors or a pan prior per group become plain ones;
  jomo's ``a`` with ``random_L1 = "none"`` (R: "unused argument") is ignored with a warning;
* an incomplete cluster column (R imputes anyway), ``y1 + y1 ~`` (R's formula algebra reads one
  target) and rank-deficient fixed effects (R fails inside pan's Fortran code) are errors here;
* for jomo, string targets are categorical here (R: "Target variables must either be numeric or
  factors."), so the string column of the data reaches the "no missing data" check instead;
* error texts are mitml's first sentence plus what to do; R's "undefined columns selected"
  (a ``group`` that is not a column) becomes mitml's own "Argument 'group' is not correctly
  specified.".
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError, MitmlWarning
from mitml_jax.results.long_format import from_long, from_mice_long
from mitml_jax.spec.model_matrix import model_matrix
from mitml_jax.spec.model_spec import build_spec

HERE = Path(__file__).parent / "reference" / "crosscheck_impute"
R = json.loads((HERE / "crosscheck_impute.json").read_text())
TYPES = json.loads((HERE / "data_types.json").read_text())
RUN = dict(n_burn=20, n_iter=2, m=3, seed=1, progress=False)


def _as_list(x):
    return [] if x is None else (list(x) if isinstance(x, list) else [x])


def _classes(name):
    return _as_list(TYPES[name]["class"])


def load_data() -> pd.DataFrame:
    """The scenario data with R's column classes (factor levels in R's order)."""
    d = pd.read_csv(HERE / "data.csv", keep_default_na=False, na_values=[""])
    for name, info in TYPES.items():
        classes = _classes(name)
        if "factor" in classes:
            d[name] = pd.Categorical(d[name], categories=info["levels"],
                                     ordered="ordered" in classes)
        elif "integer" in classes:
            d[name] = d[name].astype("int64")
        elif "character" in classes:
            d[name] = d[name].astype(object)
    return d


DATA = load_data()
COLS = list(DATA.columns)


def ty(**codes):
    """mitml's type vector: the given codes, 0 for every other column."""
    return [codes.get(c, 0) for c in COLS]


PAN_SCENARIOS = {
    "pan_type": dict(type=ty(school=-2, grp=-1, x1=3, x2=2, y1=1, y2=1)),
    "pan_type_equiv": dict(formula="y1 + y2 ~ 1 + x1 + x2 + (1 + x1 | school)", group="grp"),
    "pan_type_group_arg": dict(type=ty(school=-2, x1=2, y1=1), group="grp"),
    "pan_interaction": dict(formula="y1 + y2 ~ x1 * x2 + I(x2^2) + (1 | school)"),
    "pan_factor_pred": dict(formula="y1 ~ 1 + f3 + x1:f3 + (1 + x1 | school)"),
    "pan_no_intercept": dict(formula="y1 + y2 ~ 0 + x1 + x2 + (1 | school)"),
    "pan_random_no_int": dict(formula="y1 ~ 1 + x1 + (0 + x1 | school)"),
    "pan_random_only_slope_not_fixed": dict(formula="y1 ~ 1 + (1 + x2 | idnum)"),
    "pan_log_poly": dict(formula="y1 ~ 1 + log(x2) + poly(x1, 2) + (1 | school)"),
    "pan_group": dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)", group="grp"),
    "pan_save_pred": dict(formula="y1 ~ 1 + f3 + I(x1 * x2) + (1 | school)", save_pred=True),
    "pan_numeric_clusters": dict(formula="y1 ~ 1 + x1 + (1 | idnum)"),
    "pan_target_complete": dict(formula="y1 + x2 ~ 1 + x1 + (1 | school)"),
    "pan_cluster_as_predictor": dict(formula="y1 ~ 1 + idnum + (1 | idnum)"),
    "pan_diag": dict(formula="y1 + y2 ~ 1 + x1 + (1 + x1 | school)", keep_chains="diagonal"),
    "pan_prior_ok": dict(formula="y1 + y2 ~ 1 + x1 + (1 + x1 | school)",
                         prior=dict(a=3, Binv=np.eye(2), c=5, Dinv=np.eye(4))),
    # more formula forms
    "pan_two_bars": dict(formula="y1 ~ 1 + x1 + (1 | school) + (1 | idnum)"),
    "pan_minus_one": dict(formula="y1 ~ -1 + x1 + (1 | school)"),
    "pan_implicit_random_intercept": dict(formula="y1 ~ x1 + (x1 | school)"),
    "pan_bar_first": dict(formula="y1 ~ 1 + (1 | school) + x1"),
    "pan_x_minus_1": dict(formula="y1 ~ x1 - 1 + (1 | school)"),
    "pan_power2": dict(formula="y1 ~ (x1 + x2 + f3)^2 + (1 | school)"),
    "pan_factor_by_group": dict(formula="y1 + y2 ~ f3 * grp + (1 | school)"),
    "pan_cluster_means": dict(formula="y1 ~ 1 + x1 + clusterMeans(x1, idnum) + (1 | idnum)"),
    "pan_factor_of_number": dict(formula="y1 ~ 1 + factor(idnum > 20) + (1 | school)"),
    "pan_random_factor": dict(formula="y1 ~ 1 + x1 + (1 + f3 | school)"),
    "pan_nested_interaction": dict(formula="y1 ~ f3 / x1 + (1 | school)"),
    "pan_backtick_poly3": dict(formula="y1 ~ poly(x2, 3) + (1 | school)"),
}
JOMO_SCENARIOS = {
    "jomo_L2_pred_interaction": dict(formula=["y1 ~ 1 + x1 + (1 | idnum)",
                                              "w ~ 1 + z2 * grp + I(z2^2)"]),
    "jomo_type_cat": dict(type=ty(idnum=-2, x1=2, f3=2, y1=1, yb=1, yc=1)),
    "jomo_type_L2": dict(type=[ty(idnum=-2, x1=3, y1=1, yb=1), ty(idnum=-2, z2=2, w=1)]),
    "jomo_type_single": dict(type=ty(x1=2, x2=2, y1=1, y2=1)),
    "jomo_type_single_code3": dict(type=ty(x1=3, x2=2, y1=1, y2=1)),
    "jomo_type_group_arg": dict(type=ty(school=-2, x1=2, y1=1), group="grp"),
    "jomo_cat_targets": dict(formula="y1 + yb + yc ~ 1 + x1 + (1 | school)"),
    "jomo_cat_first": dict(formula="yc + y1 + yb ~ 1 + x1 + (1 | school)"),
    "jomo_ordered": dict(formula="yo + y2 ~ 1 + x1 + (1 | school)"),
    "jomo_L2_list": dict(formula=["y1 + yb ~ 1 + x1 + (1 | idnum)", "w ~ 1 + z2"]),
    "jomo_L2_with_bar": dict(formula=["y1 ~ 1 + (1 | idnum)", "w ~ 1 + z2 + (1 | idnum)"]),
    "jomo_L2_diag": dict(formula=["y1 + yb ~ 1 + x1 + (1 | idnum)", "w ~ 1 + z2"],
                         keep_chains="diagonal"),
    "jomo_L2_cm": dict(formula=["y1 ~ 1 + x1 + (1 | idnum)", "w ~ 1 + x1"]),
    "jomo_randomL1_mean": dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)", random_L1="mean"),
    "jomo_randomL1_full": dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)", random_L1="full"),
    "jomo_randomL1_diag": dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)", random_L1="full",
                               keep_chains="diagonal"),
    "jomo_single_level": dict(formula="y1 + yb ~ 1 + x1 + f3"),
    "jomo_group_cat": dict(formula="y1 + yc ~ 1 + x1 + (1 | school)", group="grp"),
    "jomo_group_randomL1_full": dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)", group="grp",
                                     random_L1="full"),
    "jomo_complete_cat_target": dict(formula="y1 + f3 ~ 1 + x1 + (1 | school)"),
    "jomo_prior_ok": dict(formula="y1 + yb ~ 1 + x1 + (1 | school)",
                          prior=dict(Binv=np.eye(2), Dinv=np.eye(2))),
    "jomo_prior_ok_a": dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)", random_L1="mean",
                            prior=dict(Binv=np.eye(2), Dinv=np.eye(2), a=4)),
    "jomo_prior_groups": dict(formula="y1 ~ 1 + x1 + (1 | school)", group="grp",
                              prior=[dict(Binv=np.eye(1), Dinv=np.eye(1)),
                                     dict(Binv=2 * np.eye(1), Dinv=np.eye(1))]),
    "jomo_prior_missing_Dinv": dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)",
                                    prior=dict(Binv=np.eye(2))),
}
SCENARIOS = {**{k: ("pan", v) for k, v in PAN_SCENARIOS.items()},
             **{k: ("jomo", v) for k, v in JOMO_SCENARIOS.items()}}
# run through the sampler in the default suite (one compile each); the rest with -m slow
FAST_RUNS = ("pan_type", "pan_factor_pred", "pan_save_pred", "pan_diag", "jomo_type_L2",
             "jomo_randomL1_full", "jomo_single_level")

# R errors and the meaning our message must carry (R's first sentence unless noted)
ERROR_SCENARIOS = {
    "err_pred_missing": ("pan", dict(formula="y1 ~ 1 + xmiss + (1 | school)"), None),
    "err_jomo_pred_missing": ("jomo", dict(formula="y1 ~ 1 + xmiss + (1 | school)"), None),
    "err_transformed_target": ("pan", dict(formula="log(x2) ~ 1 + (1 | school)"),
                               "Could not find: log(x2)"),
    "err_no_missing": ("pan", dict(formula="x1 ~ 1 + (1 | school)"), None),
    "err_L2_target_varies": ("jomo", dict(formula=["y1 ~ 1 + (1 | idnum)", "y2 ~ 1"]), None),
    "err_randomL1_single": ("jomo", dict(formula="y1 ~ 1 + x1", random_L1="mean"), None),
    "err_pan_no_cluster": ("pan", dict(formula="y1 ~ 1 + x1"),
                           "Cluster indicator not found in formula"),
    # R: "Target variables must either be numeric or factors."; string targets are categorical
    # for jomo here, and this one has no missing values
    "err_jomo_char_target": ("jomo", dict(formula="txt ~ 1 + (1 | school)"),
                             "Target variables do not contain any missing data"),
    "err_target_as_predictor": ("pan", dict(formula="y1 ~ 1 + y2 + (1 | school)"), None),
    # R fails inside pan's Fortran ("NA/NaN/Inf in foreign function call (arg 20)")
    "err_group_as_predictor": ("pan", dict(formula="y1 ~ 1 + grp + (1 | school)", group="grp"),
                               "rank deficient in group 'B': grpA"),
    "err_collinear_predictors": ("pan", dict(formula="y1 ~ 1 + x1 + I(2 * x1) + (1 | school)"),
                                 "rank deficient"),
    "err_group_is_cluster": ("pan", dict(formula="y1 ~ 1 + (1 | school)", group="school"),
                             "'group' 'school' is also the cluster variable"),
    "err_three_formulas": ("jomo", dict(formula=["y1 ~ 1 + (1 | school)", "w ~ 1", "y2 ~ 1"]),
                           None),
    "err_type_length": ("pan", dict(type=[-2, 1, 2]), None),
    "err_two_clusters": ("pan", dict(type=ty(school=-2, idnum=-2, y1=1)), None),
    # R: "undefined columns selected" (from `[`); mitml's own message for a bad 'group'
    "err_group_missing": ("pan", dict(formula="y1 ~ 1 + (1 | school)", group="nonexistent"),
                          "Argument 'group' is not correctly specified"),
    # R: "replacement has length zero" (pan fails on the NULL component)
    "err_pan_prior_missing_c": ("pan", dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)",
                                            prior=dict(a=2, Binv=np.eye(2), Dinv=np.eye(2))),
                                "missing component(s) c"),
    # R: "subscript out of bounds"
    "err_pan_prior_Dinv_dim": ("pan", dict(formula="y1 + y2 ~ 1 + x1 + (1 + x1 | school)",
                                           prior=dict(a=2, Binv=np.eye(2), c=4, Dinv=np.eye(2))),
                               "prior['Dinv'] must be a 4 x 4 matrix"),
    # R: "nrow(l1cov.prior) == nrow(l1cov.start) is not TRUE"
    "err_jomo_prior_Binv_dim": ("jomo", dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)",
                                             prior=dict(Binv=np.eye(3), Dinv=np.eye(2))),
                                "prior['Binv'] must be a 2 x 2 matrix"),
}
# R accepts these; we raise (deliberate, see the module docstring)
STRICTER = {
    "pan_factor_target": ("pan", dict(formula="yb ~ 1 + (1 | school)"),
                          "Target variables must be numeric"),
    "pan_prior_Binv_dim": ("pan", dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)",
                                       prior=dict(a=2, Binv=np.eye(3), c=2, Dinv=np.eye(2))),
                           r"prior\['Binv'\] must be a 2 x 2 matrix, got shape \(3, 3\)"),
    # R imputes with the incomplete y1 as cluster ids (rows with NA ids form no cluster)
    "pan_target_is_cluster": ("pan", dict(formula="y1 ~ 1 + (1 | y1)"),
                              "Cluster variable 'y1' must not contain missing data"),
    # R's formula algebra reads 'y1 + y1' as 'y1'
    "pan_duplicate_target_in_formula": ("pan", dict(formula="y1 + y1 ~ 1 + (1 | school)"),
                                        "Found duplicate target variables: y1"),
    "jomo_prior_Dinv_dim": ("jomo", dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)",
                                         prior=dict(Binv=np.eye(2), Dinv=np.eye(3))),
                            r"prior\['Dinv'\] must be a 2 x 2 matrix, got shape \(3, 3\)"),
}


def _impute(kind, kwargs):
    fn = mj.pan_impute if kind == "pan" else mj.jomo_impute
    return fn(DATA, **kwargs, **RUN)


def _spec(kind, kwargs):
    keys = {k: kwargs[k] for k in ("formula", "type", "group") if k in kwargs}
    return build_spec(DATA, kind=kind, **keys)


def _model_of(spec) -> dict:
    return dict(
        clus=spec.cluster, yvrs=list(spec.targets), pvrs=list(spec.fixed_terms),
        qvrs=list(spec.random_terms), yvrs_L2=list(spec.targets_l2),
        pvrs_L2=list(spec.fixed_terms_l2), full_pvrs=list(spec.fixed_names),
        full_qvrs=list(spec.random_names), full_pvrs_L2=list(spec.fixed_names_l2),
        is_ML=spec.is_multilevel, is_L2=spec.is_l2)


def _r_model(name) -> dict:
    mo = R[name]["model"]
    return {k: (v if k in ("clus", "is_ML", "is_L2") else _as_list(v)) for k, v in mo.items()}


def test_fixture_covers_every_scenario():
    others = {"jomo_L2_string_ids_B16", "complete_err_two_zero", "complete_err_string",
              "model_matrices", "long_factor", "long_factor_exclude", "long_numeric",
              "jomo_save_pred_B4", "jomo_unobserved_level_B8", "jomo_group_numcat",
              "pan_integer_target", "prior_jomo_a_with_none", "rows_pan_group", "rows_jomo_group",
              "rows_observed_means", "jomo_L2_cat_target"}
    covered = set(SCENARIOS) | set(ERROR_SCENARIOS) | set(STRICTER) | set(PRIOR_PROBES)
    assert set(R) == covered | others
    for name in SCENARIOS:
        assert "error" not in R[name], name


def test_data_round_trip_matches_r_types():
    for name in COLS:
        classes, dtype = _classes(name), DATA[name].dtype
        if "factor" in classes:
            assert list(dtype.categories) == TYPES[name]["levels"]
            assert dtype.ordered == ("ordered" in classes)
    assert DATA["school"].is_monotonic_increasing is False  # rows not sorted by cluster
    assert DATA.groupby("school").size().min() == 1  # a one-row cluster


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_model_structure_matches_r(name):
    """Targets, terms, model-matrix names, cluster, level-2 parts: as mitml's ``imp$model``."""
    kind, kwargs = SCENARIOS[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = _spec(kind, kwargs)
    assert _model_of(spec) == _r_model(name)
    ours = [str(w.message) for w in caught if issubclass(w.category, MitmlWarning)]
    for message in _as_list(R[name]["warnings"]) + _as_list(R[name]["messages"]):  # and NOTEs
        assert any(message.strip()[:40] in w for w in ours), (message, ours)


@pytest.mark.parametrize("rhs", sorted(R["model_matrices"]))
def test_model_matrix_names_and_values_match_r(rhs):
    ref = R["model_matrices"][rhs]
    mm = model_matrix(rhs, DATA)
    assert list(mm.columns) == ref["names"]
    values = [[np.nan if v in (None, "NA") else v for v in col] for col in ref["values"]]
    np.testing.assert_allclose(mm.to_numpy(), np.array(values, dtype=float).T,
                               rtol=1e-13, atol=1e-14)  # NaN where R has NA (na.pass)


def _check_run(name, imp):
    r = R[name]
    # parameter blocks: R's [row, col, iteration, group] vs our (chain, draw, group, row, col)
    assert list(imp.imputation) == r["par_names"]
    dims = {k: [v.shape[3], v.shape[4], v.shape[0] * v.shape[1], v.shape[2]]
            for k, v in imp.imputation.items()}
    assert dims == r["par_dims"]
    assert imp.n_groups == r["n_groups"]
    prior = imp.prior[0]
    assert list(prior) == _as_list(r["prior_names"]) or (
        name == "jomo_prior_missing_Dinv" and list(prior) == ["Binv", "Dinv"])
    for key, shape in r["prior_dims"].items():
        assert list(np.atleast_2d(np.asarray(prior[key])).shape) == shape, key
    # print(imp): every line after the call
    keep = lambda lines: [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith(
        ("pan_impute", "jomo_impute", "panImpute", "jomoImpute", "    "))]
    assert keep(repr(imp).splitlines()) == keep(r["print"])
    # completed data
    first, original = imp.complete(1), imp.complete(0)
    assert sorted(first.columns) == sorted(r["complete_columns"])
    assert list(first.columns) == list(imp.data.columns)  # deliberate: the caller's order
    assert list(first.index) == [int(i) - 1 for i in r["complete_rownames"]]  # original row order
    for col in first.columns:
        classes, dtype = _as_list(r["complete_classes"][col]), first[col].dtype
        if "factor" in classes:
            assert isinstance(dtype, pd.CategoricalDtype)
            assert dtype.ordered == ("ordered" in classes)
            assert list(dtype.categories) == _as_list(r["complete_levels"][col]), col
        else:
            expected = {"numeric": "float64", "integer": "int64", "character": "object"}[classes[0]]
            assert str(dtype) == expected, col
    targets = [*imp.spec.targets, *imp.spec.targets_l2]
    assert int(first[targets].isna().sum().sum()) == r["n_missing_after"] == 0
    for col in DATA.columns:  # observed cells bit for bit
        seen = DATA[col].notna().to_numpy()
        a, b = DATA[col].to_numpy()[seen], first[col].to_numpy()[seen]
        assert all(x == y for x, y in zip(a, b)), col
        assert np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)), col
    pd.testing.assert_frame_equal(original[COLS], DATA)  # (+ save_pred columns, as in R)
    assert len(imp.index) == r["n_replaced"]
    r_targets = {r["data_columns"][i - 1] for i in _as_list(r["index_cols"])}
    assert {imp.data.columns[i] for i in np.unique(imp.index[:, 1])} == r_targets
    # mitmlComplete's print variants
    assert len(imp.complete("all")) == r["list_length"] == 3
    assert len(imp.complete(2, force_list=True)) == 1
    both = imp.complete([0, 2])
    assert len(both) == r["print_vector_len"] == 2 and r["print_vector_first_is_original"]
    pd.testing.assert_frame_equal(both[0], original)
    if r.get("save_pred"):
        for col, values in r["save_pred"].items():
            np.testing.assert_allclose(first[col].to_numpy(), np.array(values, dtype=float),
                                       rtol=1e-14)


@pytest.mark.parametrize("name", [
    n if n in FAST_RUNS else pytest.param(n, marks=pytest.mark.slow) for n in sorted(SCENARIOS)])
def test_result_structure_matches_r(name):
    kind, kwargs = SCENARIOS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MitmlWarning)
        imp = _impute(kind, kwargs)
    _check_run(name, imp)


@pytest.mark.parametrize("name", sorted(ERROR_SCENARIOS))
def test_errors_carry_mitmls_meaning(name):
    kind, kwargs, expected = ERROR_SCENARIOS[name]
    r_message = R[name]["error"]
    expected = expected or r_message.split(". ")[0].rstrip(".")
    with pytest.raises(MitmlError) as info:
        _impute(kind, kwargs)
    assert expected in str(info.value)


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_inputs_r_accepts_silently_are_errors_here(name):
    kind, kwargs, pattern = STRICTER[name]
    assert "error" not in R[name]
    with pytest.raises(MitmlError, match=pattern):
        _impute(kind, kwargs)


def test_string_cluster_ids_with_level2_target_work_despite_mitml_bug_b16():
    """R (B16): NA cluster means of string ids make every level-2 target 'vary'."""
    assert R["jomo_L2_string_ids_B16"]["error"].startswith("Target variables at level 1")
    spec = build_spec(DATA, formula=["y1 ~ 1 + (1 | school)", "w ~ 1"], kind="jomo")
    assert spec.targets_l2 == ("w",) and spec.cluster == "school"


def test_jomo_prior_without_dinv_uses_identity_as_jomo():
    """R passes no l2cov.prior and jomo uses the identity; we store it explicitly."""
    assert R["jomo_prior_missing_Dinv"]["prior_names"] == "Binv"
    imp = _impute("jomo", JOMO_SCENARIOS["jomo_prior_missing_Dinv"])
    np.testing.assert_array_equal(np.asarray(imp.prior[0]["Dinv"]), np.eye(2))


def test_mitml_complete_errors_match_r():
    imp = _impute("pan", dict(formula="y1 ~ 1 + (1 | school)"))
    with pytest.raises(MitmlError, match="Only one negative or zero value is allowed in 'print'."):
        imp.complete([0, -1])
    assert R["complete_err_two_zero"]["error"] == (
        "Only one negative or zero value is allowed in 'print'.")
    with pytest.raises(MitmlError, match="Invalid 'print' argument."):
        imp.complete("first")
    assert R["complete_err_string"]["error"] == "Invalid 'print' argument."


def _long_ref(name):
    return [(entry["v"], _as_list(entry["cols"])) for entry in R[name]]


def test_from_long_orders_a_categorical_split_by_its_levels_as_r():
    """long2mitml.list splits a factor in the order of its levels (not alphabetically)."""
    long = pd.DataFrame({".imp": pd.Categorical(list("BABACC"), categories=["C", "B", "A"]),
                         "v": np.arange(1, 7), "w": [1.5, np.nan, 2, 3, 4, 5]})
    got = [(f["v"].tolist(), list(f.columns)) for f in from_long(long)]
    assert got == _long_ref("long_factor")
    got = [(f["v"].tolist(), list(f.columns)) for f in from_long(long, exclude="C")]
    assert got == _long_ref("long_factor_exclude")
    mice = pd.DataFrame({".imp": pd.Categorical(list("BABAAA"), categories=["C", "B", "A"]),
                         "v": np.arange(1, 7)})
    frames = from_mice_long(mice, id=None)  # the same order for its own split
    assert [f["v"].tolist() for f in frames] == [[1, 3], [2, 4, 5, 6]]


def test_from_long_numeric_split_and_exclude_as_r():
    long = pd.DataFrame({"imp": [2, 10, 1, 2, 10, 1, 0, 0], "v": np.arange(1, 9)})
    got = [(f["v"].tolist(), list(f.columns)) for f in from_long(long, imp="imp", exclude=0)]
    assert got == _long_ref("long_numeric")


def test_save_pred_keeps_level2_predictors_mitml_bug_b4():
    """R (B4) saves the level-1 derived column x1:x2 but drops the level-2 one I(z2^2)."""
    r = R["jomo_save_pred_B4"]
    assert list(r["save_pred"]) == ["x1:x2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MitmlWarning)
        imp = _impute("jomo", dict(formula=["y1 ~ 1 + x1:x2 + (1 | idnum)", "w ~ 1 + I(z2^2)"],
                                   save_pred=True))
    assert _model_of(imp.spec) == _r_model("jomo_save_pred_B4")
    first = imp.complete(1)
    assert list(first.columns) == COLS + ["x1:x2", "I(z2^2)"]
    np.testing.assert_allclose(first["x1:x2"], np.array(r["save_pred"]["x1:x2"], dtype=float),
                               rtol=1e-14)
    np.testing.assert_allclose(first["I(z2^2)"], DATA["z2"] ** 2, rtol=1e-14)


def test_unobserved_intermediate_level_is_never_imputed_mitml_bug_b8():
    """R (B8) maps jomo's codes by position: with level "mid" unobserved it imputes "mid"
    (never observed) and never "c3"; here imputations come from the observed levels only."""
    r = R["jomo_unobserved_level_B8"]
    assert r["imputed"] == ["c2", "mid"] and r["observed"] == ["c2", "c3"]
    d8 = DATA.copy()
    values = d8["yc"].astype(object).where(d8["yc"] != "c1", None)
    d8["yc2"] = pd.Categorical(values, categories=r["levels"])
    assert sorted(d8["yc2"].dropna().unique().astype(str)) == r["observed"]
    imp = mj.jomo_impute(d8, formula="yc2 ~ 1 + x1 + (1 | school)", **RUN)
    dims = {k: [v.shape[3], v.shape[4], v.shape[0] * v.shape[1], v.shape[2]]
            for k, v in imp.imputation.items()}
    assert dims == r["par_dims"]  # one latent column: 2 observed categories
    missing = d8["yc2"].isna().to_numpy()
    imputed = set()
    for frame in imp.complete("all"):
        assert list(frame["yc2"].dtype.categories) == r["levels"]
        imputed |= set(frame["yc2"][missing].astype(str))
    assert imputed <= set(r["observed"]) and imputed


def test_groups_with_different_observed_categories_as_r():
    """Group "A" never observes "c3": its latent block is smaller and padded (R: NA), and its
    imputations use its own observed categories only."""
    r = R["jomo_group_numcat"]
    d9 = DATA.copy()
    d9.loc[(d9["grp"] == "A") & (d9["yc"] == "c3"), "yc"] = np.nan
    imp = mj.jomo_impute(d9, formula="y1 + yc ~ 1 + x1 + (1 | school)", group="grp", **RUN)
    dims = {k: [v.shape[3], v.shape[4], v.shape[0] * v.shape[1], v.shape[2]]
            for k, v in imp.imputation.items()}
    assert dims == r["par_dims"]
    assert imp.n_groups == 2
    first_group = d9["grp"].iloc[0]  # groups numbered by first appearance, as in mitml
    assert first_group == "B" and [n[0] for n in r["numcat"]] == [3, 2]
    beta = imp.imputation["beta"][0, -1]  # (group, p, columns)
    assert np.isfinite(beta[0]).all() and np.isnan(beta[1][:, 2]).all()
    assert np.isfinite(beta[1][:, :2]).all()
    keep = lambda lines: [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith(
        ("jomo_impute", "jomoImpute", "    "))]
    assert keep(repr(imp).splitlines()) == keep(r["print"])
    for grp, expected in r["imputed"].items():
        rows = (d9["grp"] == grp).to_numpy() & d9["yc"].isna().to_numpy()
        got = set()
        for frame in imp.complete("all"):
            got |= set(frame["yc"][rows].astype(str))
        assert got <= set(expected if grp == "A" else ["c1", "c2", "c3"]) and got, grp


def test_integer_target_with_missing_values_becomes_float_as_r():
    """R: an integer target is numeric after imputation, integer in the original (print = 0)."""
    r = R["pan_integer_target"]
    assert (r["class_before"], r["class_after"], r["class_original"]) == (
        "integer", "numeric", "integer")
    d10 = DATA.copy()
    cnt = pd.array(np.round(10 * DATA["x2"].to_numpy()).astype(np.int64), dtype="Int64")
    cnt[DATA["y1"].isna().to_numpy()] = pd.NA
    d10["cnt"] = cnt
    imp = mj.pan_impute(d10, formula="cnt ~ 1 + x1 + (1 | school)", **RUN)
    assert imp.complete(1)["cnt"].dtype == np.float64
    assert imp.complete(0)["cnt"].dtype == "Int64"
    seen = d10["cnt"].notna().to_numpy()
    assert np.array_equal(imp.complete(1)["cnt"].to_numpy()[seen],
                          d10["cnt"].to_numpy()[seen].astype(float))


I2 = np.eye(2)
_PJ = dict(formula="y1 + y2 ~ 1 + x1 + (1 | school)")
# R's outcome -> ours: "ok" (same prior names) or an error pattern (R accepts silently or fails
# with an internal message; see the module docstring)
PRIOR_PROBES = {
    "prior_jomo_3_for_2_groups": ("jomo", dict(group="grp", prior=[dict(Binv=I2, Dinv=I2)] * 3),
                                  "a list of 3 priors but there are 2 groups"),
    "prior_jomo_1_for_2_groups": ("jomo", dict(group="grp", prior=[dict(Binv=I2, Dinv=I2)]),
                                  "a list of 1 priors but there are 2 groups"),
    "prior_jomo_list_no_group": ("jomo", dict(prior=[dict(Binv=I2, Dinv=I2)]), "ok"),
    "prior_jomo_missing_Binv": ("jomo", dict(prior=dict(Dinv=I2)), "ok"),
    "prior_jomo_mean_without_a": ("jomo", dict(random_L1="mean", prior=dict(Binv=I2, Dinv=I2)),
                                  "ok"),
    "prior_jomo_extra_component": ("jomo", dict(prior=dict(Binv=I2, Dinv=I2, zz=1)),
                                   r"unknown component\(s\) \['zz'\]"),
    "prior_jomo_Binv_not_pd": ("jomo", dict(prior=dict(Binv=-I2, Dinv=I2)),
                               r"prior\['Binv'\] must be positive definite"),
    "prior_pan_extra_component": ("pan", dict(prior=dict(a=2, Binv=I2, c=2, Dinv=I2, zz=1)),
                                  r"unknown component\(s\) zz"),
    "prior_pan_a_too_small": ("pan", dict(prior=dict(a=0.5, Binv=I2, c=2, Dinv=I2)),
                              r"prior\['a'\] = 0.5 must exceed 1"),
    "prior_pan_Binv_not_pd": ("pan", dict(prior=dict(a=2, Binv=-I2, c=2, Dinv=I2)),
                              r"prior\['Binv'\] must be positive definite"),
    "prior_pan_list_per_group": ("pan", dict(group="grp",
                                             prior=[dict(a=2, Binv=I2, c=2, Dinv=I2)] * 2),
                                 "prior must be a dict"),
}


@pytest.mark.parametrize("name", sorted(PRIOR_PROBES))
def test_prior_forms_against_r(name):
    kind, kwargs, outcome = PRIOR_PROBES[name]
    r = R[name]
    if outcome == "ok":
        assert "error" not in r
        imp = _impute(kind, _PJ | kwargs)
        names = list(imp.prior[0])
        r_names = _as_list(r["prior_names"])
        # R keeps a partial prior as given (jomo fills in its identity defaults); we store them
        assert set(r_names) <= set(names) <= {"Binv", "Dinv", "a"}
        assert "a" in names if kwargs.get("random_L1", "none") != "none" else "a" not in names
        return
    with pytest.raises((MitmlError, TypeError), match=outcome):
        _impute(kind, _PJ | kwargs)


def test_prior_a_without_random_l1_warns():
    """R: jomo stops with "unused argument (a = 7)"; we ignore 'a' with a warning."""
    assert R["prior_jomo_a_with_none"]["error"] == "unused argument (a = 7)"
    with pytest.warns(MitmlWarning, match=r"prior\['a'\] is used only with random_L1"):
        imp = _impute("jomo", _PJ | dict(prior=dict(Binv=I2, Dinv=I2, a=7)))
    assert list(imp.prior[0]) == ["Binv", "Dinv"]


@pytest.mark.parametrize("kind", ["pan", "jomo"])
def test_imputations_land_in_their_rows_as_in_r(kind):
    """Cluster k's y1 shifted by 20 k, group "A" by +200 (rows unsorted, string ids): the mean
    imputed y1 of every cluster is R's (and the observed cluster mean) within Monte Carlo error
    (tolerance 6 against gaps of 20 between clusters), so no imputation is in another row."""
    d = DATA.copy()
    k = d["school"].map({sc: i + 1 for i, sc in enumerate(d["school"].unique())})
    d["y1"] = d["y1"] + 20 * k + np.where(d["grp"] == "A", 200, 0)
    second = "y2" if kind == "pan" else "yb"
    imp = _impute_data(kind, d, formula=f"y1 + {second} ~ 1 + x1 + (1 | school)", group="grp",
                       n_burn=2000, n_iter=20, m=5, seed=1, progress=False)
    mean = sum(frame["y1"] for frame in imp.complete("all")) / 5
    miss = d["y1"].isna()
    ours = mean[miss].groupby(d["school"][miss]).mean()
    ref = R[f"rows_{kind}_group"]
    assert sorted(ours.index) == sorted(ref)
    for school, value in ours.items():
        assert abs(value - ref[school]) < 6, (school, value, ref[school])
        assert abs(value - R["rows_observed_means"][school]) < 6, school


def _impute_data(kind, data, **kwargs):
    fn = mj.pan_impute if kind == "pan" else mj.jomo_impute
    return fn(data, **kwargs)


def test_categorical_level2_target_as_r():
    """A factor level-2 target (constant within clusters) next to a numeric one."""
    r = R["jomo_L2_cat_target"]
    d13 = DATA.copy()
    sign = np.where(d13["w"] > 0, "pos", np.where(d13["w"].isna(), None, "neg"))
    d13["wcat"] = pd.Categorical(sign, categories=["pos", "neg"])
    imp = mj.jomo_impute(d13, formula=["y1 ~ 1 + x1 + (1 | idnum)", "wcat + w ~ 1 + z2"], **RUN)
    assert _model_of(imp.spec) == {k: (v if k in ("clus", "is_ML", "is_L2") else _as_list(v))
                                   for k, v in r["model"].items()}
    dims = {k: [v.shape[3], v.shape[4], v.shape[0] * v.shape[1], v.shape[2]]
            for k, v in imp.imputation.items()}
    assert dims == r["par_dims"] and list(imp.imputation) == r["par_names"]
    assert {k: list(np.atleast_2d(v).shape) for k, v in imp.prior[0].items()} == r["prior_dims"]
    keep = lambda lines: [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith(
        ("jomo_impute", "jomoImpute", "    "))]
    assert keep(repr(imp).splitlines()) == keep(r["print"])
    assert r["constant"] and r["n_missing_after"] == 0
    for frame in imp.complete("all"):
        assert list(frame["wcat"].dtype.categories) == r["complete_levels"]["wcat"]
        assert frame.groupby("idnum")["wcat"].nunique().eq(1).all()
        assert frame[["wcat", "w", "y1"]].notna().all().all()


def test_poly_forms_and_errors():
    small = pd.DataFrame({"x1": [1, 3, 2, 5, 4.5, 7.0], "x2": [1, 1, 2, 2, 1, 2.0]})
    # R 4: colnames(model.matrix(~ poly(x1, 2, raw = T), data.frame(x1 = ...)))
    assert list(model_matrix("poly(x1, 2, raw = T)", small).columns) == [
        "(Intercept)", "poly(x1, 2, raw = T)1", "poly(x1, 2, raw = T)2"]
    with pytest.raises(MitmlError, match="must be less than the number of unique points"):
        model_matrix("poly(x2, 2)", small)
    with pytest.raises(MitmlError, match="'degree' must be a positive whole number"):
        model_matrix("poly(x1, 0)", small)
    gap = small.assign(x1=[1, np.nan, 2, 5, 4.5, 7.0])
    mm = model_matrix("poly(x1, 2)", gap)
    assert mm.iloc[1, 1:].isna().all() and mm.drop(index=1).notna().all().all()
    with pytest.raises(MitmlError, match="Predictor variables must not contain missing data"):
        build_spec(DATA, formula="y1 ~ poly(xmiss, 2) + (1 | school)", kind="pan")


def test_type_with_non_string_column_names_says_what_to_do():
    """R's data frames always have string names; pandas' may be integers (pd.DataFrame(array))."""
    d = DATA[["school", "x1", "y1", "y2"]].copy()
    d.columns = [0, 1, 2, 3]
    with pytest.raises(MitmlError, match=r"'type' needs string column names.*\[0, 1, 2, 3\]"):
        mj.pan_impute(d, type=[-2, 2, 1, 1], **RUN)
    d.columns = d.columns.astype(str)  # the advice works
    spec = build_spec(d, type=[-2, 2, 1, 1], kind="pan")
    assert spec.targets == ("2", "3") and spec.cluster == "0"


def test_print_takes_whole_floats_as_r_numerics():
    """R's ``1`` is a double: mitmlComplete(imp, 1) and c(0, 2) are numeric vectors."""
    imp = _impute("pan", dict(formula="y1 ~ 1 + (1 | school)"))
    pd.testing.assert_frame_equal(imp.complete(1.0), imp.complete(1))
    both = imp.complete(np.array([0.0, 2.0]))
    pd.testing.assert_frame_equal(both[0], DATA)
    pd.testing.assert_frame_equal(both[1], imp.complete(2))
    with pytest.raises(MitmlError, match="Invalid 'print' argument"):
        imp.complete(2.5)
    with pytest.raises(MitmlError, match="Invalid 'print' argument"):
        imp.complete(True)


def test_type_code_3_without_cluster_is_a_fixed_effect_as_r():
    with pytest.warns(MitmlWarning, match="'type' code 3 .* for x1 without a cluster indicator"):
        spec = build_spec(DATA, type=ty(x1=3, x2=2, y1=1, y2=1), kind="jomo")
    assert spec == build_spec(DATA, type=ty(x1=2, x2=2, y1=1, y2=1), kind="jomo")
