"""Bad-input battery across the public API (issue 10, reliability part A).

Every case calls a public function with one thing wrong and asserts that

* the error is one of ours (:class:`MitmlError` / :class:`MitmlTypeError`), never an exception
  from inside JAX, NumPy or pandas, and its message names the argument or column at fault;
* the caller's DataFrame(s) are unchanged (deep copy before, ``assert_frame_equal`` after).

"Should work" cases (a cluster whose targets are all missing, string cluster ids, ...) assert
success instead, plus a property of the result. Data are tiny (24 rows, 6 clusters) and
iteration counts minimal (``n_burn=5, n_iter=2, m=2``) so the battery runs in seconds once the
sampler is compiled.

``python tests/test_reliability_bad_input.py`` rewrites ``docs/bad_input_report.md`` (every case
with the message it produces); ``test_report_lists_every_case`` keeps the committed report in
step with ``CASES``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning

# -- tiny data ---------------------------------------------------------------------------------
FORMULA = "y1 + y2 ~ 1 + x + (1|id)"
FAST = {"n_burn": 5, "n_iter": 2, "m": 2, "seed": 1, "progress": False}


def tiny() -> pd.DataFrame:
    """24 rows, 6 clusters of 4; y1, y2 continuous with missing values, x complete."""
    rng = np.random.default_rng(7)
    n, j = 24, 6
    cid = np.repeat(np.arange(1, j + 1), n // j)
    u = rng.normal(size=j)[cid - 1]
    x = rng.normal(size=n)
    y1 = 1.0 + 0.5 * x + u + rng.normal(size=n)
    y2 = -1.0 + 0.3 * x + 0.5 * u + rng.normal(size=n)
    y1[[1, 6, 11, 17]] = np.nan
    y2[[2, 6, 13, 22]] = np.nan
    cat = pd.Categorical(np.array(["a", "b", "c"])[np.arange(n) % 3], categories=["a", "b", "c"])
    cat[[3, 9, 20]] = np.nan
    return pd.DataFrame({
        "id": cid, "x": x, "y1": y1, "y2": y2,
        "grp": np.where(cid <= 3, "g1", "g2"), "cat": cat,
        "w": rng.normal(size=n),
    })


def _with(**changes) -> Callable[[], pd.DataFrame]:
    """Factory: tiny() with column changes; a callable value gets the frame."""
    def make():
        d = tiny()
        for col, val in changes.items():
            d[col] = val(d) if callable(val) else val
        return d
    return make


def _set(col, rows, value):
    def change(d):
        s = d[col].copy()
        s.iloc[rows] = value
        return s
    return change


def _dup_columns():
    d = tiny()
    return pd.concat([d, d[["y1"]]], axis=1)


def _all_missing_cluster():
    """Cluster 2 (rows 4-7) has both targets missing; as many missing cells as tiny() (8), so the
    sampler compiled for tiny() is reused."""
    d = tiny()
    rng = np.random.default_rng(3)
    for col in ("y1", "y2"):
        values = d[col].to_numpy().copy()
        values[np.isnan(values)] = rng.normal(size=int(np.isnan(values).sum()))
        values[4:8] = np.nan
        d[col] = values
    return d


def _mixed_object(col):
    def make():
        d = tiny()
        vals = d[col].astype(object)
        vals.iloc[0] = "three"
        d[col] = vals
        return d
    return make


# -- shared results, built once per process (compiles the sampler once) ------------------------
@functools.lru_cache(maxsize=None)
def _imp():
    return mj.pan_impute(tiny(), FORMULA, **FAST)


@functools.lru_cache(maxsize=None)
def _implist():
    return _imp().complete("all")


def _text_file():
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "text.parquet")
    with open(path, "w") as fh:
        fh.write("not parquet")
    return path


def _not_a_run():
    import pickle
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "other.pkl")
    with open(path, "wb") as fh:
        pickle.dump({"some": "dict"}, fh)
    return path


def _ols(formula):
    def fit(d):
        import statsmodels.formula.api as smf

        return smf.ols(formula, d).fit()
    return fit


@functools.lru_cache(maxsize=None)
def _fits(formula="y1 ~ x"):
    return _implist().analyse(_ols(formula))


# -- cases -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One bad (or borderline) input.

    Attributes:
        name: short id (pytest id and report row).
        area: public entry point exercised.
        make: factory of the caller's data (a DataFrame is checked for mutation), or None.
        call: ``call(data)`` performs the public call.
        error: expected exception class, or None when the call must succeed.
        match: regex the message must contain (names the argument or column).
        check: for successful calls, ``check(result, data)`` asserts a property of the result.
    """

    name: str
    area: str
    make: Callable[[], Any] | None
    call: Callable[[Any], Any]
    error: type | None
    match: str = ""
    check: Callable[[Any, Any], None] | None = None
    warning: type | None = None


def pan(**kw):
    args = {"formula": FORMULA, **FAST, **kw}
    return lambda d: mj.pan_impute(d, **args)


def jomo(**kw):
    args = {"formula": FORMULA, **FAST, **kw}
    return lambda d: mj.jomo_impute(d, **args)


def _works_all_missing_cluster(imp, data):
    rows = np.flatnonzero(data["id"].to_numpy() == 2)
    done = imp.complete(1)
    assert np.isfinite(done.loc[rows, ["y1", "y2"]].to_numpy()).all()
    assert np.isfinite(imp.replacement).all()


def _works_finite(imp, data):
    assert np.isfinite(imp.replacement).all()
    done = imp.complete(1)
    assert not done[list(imp.spec.targets)].isna().any().any()


def _works_no_missing_in_targets(res, data):
    assert isinstance(res, pd.DataFrame)


def _prior(r=2, q=1, **kw):
    p = {"a": 2.0, "Binv": np.eye(r), "c": 1.0 * r * q, "Dinv": np.eye(r * q)}
    p.update(kw)
    return p


#: cases whose validation is missing in a file this battery's owner may not edit: name -> reason
GAPS: dict = {
}
#: cases that compile a sampler of their own (another shape or jomo): run with -m slow
SLOW = {"jomo_string_clusters", "pan_single_cluster"}

NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])

CASES = [
    # ---- pan_impute: the data argument
    Case("pan_data_numpy", "pan_impute", lambda: tiny().to_numpy(), pan(), MitmlTypeError, "'data'"),
    Case("pan_data_list", "pan_impute", lambda: tiny().values.tolist(), pan(), MitmlTypeError, "'data'"),
    Case("pan_data_none", "pan_impute", lambda: None, pan(), MitmlTypeError, "'data'"),
    Case("pan_data_dict", "pan_impute", lambda: tiny().to_dict("list"), pan(), MitmlTypeError, "'data'"),
    Case("pan_data_empty", "pan_impute", lambda: tiny().iloc[:0], pan(), MitmlError, "y1|rows|empty"),
    # ---- iteration counts
    Case("pan_m_string", "pan_impute", tiny, pan(m="5"), MitmlTypeError, "'m'"),
    Case("pan_m_zero", "pan_impute", tiny, pan(m=0), MitmlError, "'m'"),
    Case("pan_m_float", "pan_impute", tiny, pan(m=2.5), MitmlTypeError, "'m'"),
    Case("pan_n_burn_negative", "pan_impute", tiny, pan(n_burn=-1), MitmlError, "'n_burn'"),
    Case("pan_n_burn_float", "pan_impute", tiny, pan(n_burn=1.5), MitmlTypeError, "'n_burn'"),
    Case("pan_n_iter_zero", "pan_impute", tiny, pan(n_iter=0), MitmlError, "'n_iter'"),
    Case("pan_n_iter_negative", "pan_impute", tiny, pan(n_iter=-3), MitmlError, "'n_iter'"),
    Case("pan_n_iter_bool", "pan_impute", tiny, pan(n_iter=True), MitmlTypeError, "'n_iter'"),
    Case("pan_chains_zero", "pan_impute", tiny, pan(chains=0), MitmlError, "'chains'"),
    Case("pan_chains_string", "pan_impute", tiny, pan(chains="2"), MitmlTypeError, "'chains'"),
    Case("pan_chains_gt_m", "pan_impute", tiny, pan(chains=4, m=2), MitmlError, "'chains'.*'m'|'m'.*'chains'"),
    Case("pan_seed_string", "pan_impute", tiny, pan(seed="abc"), MitmlTypeError, "'seed'"),
    Case("pan_keep_chains", "pan_impute", tiny, pan(keep_chains="some"), MitmlError, "'keep_chains'"),
    Case("pan_dtype", "pan_impute", tiny, pan(dtype="int32"), MitmlError, "'dtype'"),
    # ---- columns
    Case("pan_unknown_target", "pan_impute", tiny, pan(formula="y1 + nope ~ 1 + x + (1|id)"), MitmlError, "nope"),
    Case("pan_unknown_predictor", "pan_impute", tiny, pan(formula="y1 ~ 1 + nope + (1|id)"), MitmlError, "nope"),
    Case("pan_unknown_cluster", "pan_impute", tiny, pan(formula="y1 ~ 1 + x + (1|school)"), MitmlError, "school"),
    Case("pan_unknown_group", "pan_impute", tiny, pan(group="land"), MitmlError, "land"),
    Case("pan_duplicated_data_column", "pan_impute", _dup_columns, pan(), MitmlError, "y1"),
    Case("pan_duplicated_target", "pan_impute", tiny, pan(formula="y1 + y1 ~ 1 + x + (1|id)"), MitmlError, "y1"),
    Case("pan_inf_target", "pan_impute", _with(y1=_set("y1", [4], np.inf)), pan(), MitmlError, "y1"),
    Case("pan_inf_predictor", "pan_impute", _with(x=_set("x", [4], -np.inf)), pan(), MitmlError, "'x'|\\bx\\b"),
    Case("pan_target_all_missing", "pan_impute", _with(y2=np.nan), pan(), MitmlError, "y2"),
    Case("pan_target_constant", "pan_impute", _with(y2=_set("y2", slice(None), 3.0)), pan(formula="y1 + y2 ~ 1 + x + (1|id)"),
         MitmlError, "y2"),
    Case("pan_predictor_missing", "pan_impute", _with(x=_set("x", [0, 5], np.nan)), pan(), MitmlError, "'x'|\\bx\\b"),
    Case("pan_cluster_missing", "pan_impute", _with(id=_set("id", [0], np.nan)), pan(), MitmlError, "id"),
    Case("pan_mixed_object_target", "pan_impute", _mixed_object("y1"), pan(), MitmlError, "y1"),
    Case("pan_mixed_object_predictor", "pan_impute", _mixed_object("x"), pan(), MitmlError, "'x'|\\bx\\b"),
    Case("pan_categorical_target", "pan_impute", tiny, pan(formula="cat ~ 1 + x + (1|id)"), MitmlError, "cat"),
    Case("pan_no_missing", "pan_impute", tiny, pan(formula="w ~ 1 + x + (1|id)"), MitmlError, "missing"),
    # ---- formula / type
    Case("pan_formula_no_lhs", "pan_impute", tiny, pan(formula="~ 1 + x + (1|id)"), MitmlError, "formula|target"),
    Case("pan_formula_unbalanced", "pan_impute", tiny, pan(formula="y1 ~ 1 + x + (1|id"), MitmlError, "formula|parenthes"),
    Case("pan_formula_int", "pan_impute", tiny, pan(formula=3), MitmlTypeError, "formula"),
    Case("pan_formula_and_type", "pan_impute", tiny, pan(type=[-2, 2, 1, 1, 0, 0, 0]), MitmlError, "formula.*type|type.*formula"),
    Case("pan_no_formula_no_type", "pan_impute", tiny, pan(formula=None), MitmlError, "formula"),
    Case("pan_type_wrong_length", "pan_impute", tiny, pan(formula=None, type=[-2, 2, 1, 1]), MitmlError, "type"),
    Case("pan_two_cluster_terms", "pan_impute", tiny, pan(formula="y1 + y2 ~ 1 + x + (1|id) + (1|grp)"), None,
         "2 random parts.*only the first", check=_works_finite, warning=MitmlWarning),
    # ---- prior
    Case("pan_prior_not_dict", "pan_impute", tiny, pan(prior=[1, 2]), MitmlTypeError, "prior"),
    Case("pan_prior_missing_part", "pan_impute", tiny, pan(prior={"a": 2.0, "Binv": np.eye(2)}), MitmlError, "prior.*c.*Dinv"),
    Case("pan_prior_Binv_shape", "pan_impute", tiny, pan(prior=_prior(Binv=np.eye(3))), MitmlError, "Binv"),
    Case("pan_prior_Binv_not_pd", "pan_impute", tiny, pan(prior=_prior(Binv=NOT_PD)), MitmlError, "Binv.*positive definite"),
    Case("pan_prior_Dinv_not_symmetric", "pan_impute", tiny, pan(prior=_prior(Dinv=np.array([[1.0, 0.5], [0.0, 1.0]]))),
         MitmlError, "Dinv"),
    Case("pan_prior_a_too_small", "pan_impute", tiny, pan(prior=_prior(a=0.5)), MitmlError, "'a'"),
    Case("pan_prior_nan", "pan_impute", tiny, pan(prior=_prior(Binv=np.array([[1.0, np.nan], [np.nan, 1.0]]))), MitmlError, "Binv"),
    # ---- borderline inputs that must WORK
    Case("pan_cluster_all_targets_missing", "pan_impute",
         _all_missing_cluster,
         pan(), None, check=_works_all_missing_cluster),
    Case("pan_string_clusters", "pan_impute", _with(id=lambda d: "school-" + d["id"].astype(str)),
         pan(), None, check=_works_finite),
    Case("pan_single_cluster", "pan_impute", _with(id=1), pan(prior=_prior(a=4.0, c=4.0)), None, check=_works_finite),
    Case("pan_categorical_cluster", "pan_impute", _with(id=lambda d: pd.Categorical(d["id"])), pan(), None,
         check=_works_finite),
    # ---- jomo_impute
    Case("jomo_data_none", "jomo_impute", lambda: None, jomo(), MitmlTypeError, "'data'"),
    Case("jomo_m_zero", "jomo_impute", tiny, jomo(m=0), MitmlError, "'m'"),
    Case("jomo_chains_gt_m", "jomo_impute", tiny, jomo(chains=3, m=2), MitmlError, "'chains'.*'m'|'m'.*'chains'"),
    Case("jomo_n_iter_float", "jomo_impute", tiny, jomo(n_iter=2.5), MitmlTypeError, "'n_iter'"),
    Case("jomo_random_L1", "jomo_impute", tiny, jomo(random_L1="some"), MitmlError, "'random_L1'"),
    Case("jomo_random_L1_no_cluster", "jomo_impute", tiny, jomo(formula="y1 ~ 1 + x", random_L1="mean"), MitmlError, "random_L1"),
    Case("jomo_one_level_category", "jomo_impute", _with(cat=lambda d: pd.Categorical(
        np.where(d["cat"].isna(), None, "a"), categories=["a", "b"])),
        jomo(formula="cat + y1 ~ 1 + x + (1|id)"), MitmlError, "cat"),
    Case("jomo_prior_list_length", "jomo_impute", tiny, jomo(group="grp", prior=[{"Binv": np.eye(2), "Dinv": np.eye(2)}] * 3),
         MitmlError, "'prior'.*3"),
    Case("jomo_prior_not_pd", "jomo_impute", tiny, jomo(prior={"Binv": NOT_PD, "Dinv": np.eye(2)}), MitmlError, "Binv"),
    Case("jomo_prior_unknown_part", "jomo_impute", tiny, jomo(prior={"Binv": np.eye(2), "B": 1}), MitmlError, "'B'"),
    Case("jomo_formula_list_malformed", "jomo_impute", tiny, jomo(formula=["y1 ~ 1 + x + (1|id)", "~~"]), MitmlError, "formula"),
    Case("jomo_target_all_missing", "jomo_impute", _with(y2=np.nan), jomo(), MitmlError, "y2"),
    Case("jomo_string_clusters", "jomo_impute", _with(id=lambda d: "s" + d["id"].astype(str)), jomo(), None,
         check=_works_finite),
    # ---- completion
    Case("complete_not_imputations", "mitml_complete", tiny, lambda d: mj.mitml_complete(d), MitmlTypeError, "'imp'"),
    Case("complete_print_too_big", "mitml_complete", None, lambda d: _imp().complete(5), MitmlError, "'print'.*5"),
    Case("complete_print_string", "mitml_complete", None, lambda d: _imp().complete("some"), MitmlError, "'print'"),
    Case("complete_print_two_zeros", "mitml_complete", None, lambda d: _imp().complete([0, -1]), MitmlError, "'print'"),
    Case("complete_print_float", "mitml_complete", None, lambda d: _imp().complete(1.5), MitmlError, "'print'"),
    # ---- ImputedList
    Case("implist_non_frame", "ImputedList", None, lambda d: mj.ImputedList([tiny(), np.zeros(3)]), MitmlTypeError, "entry 1"),
    Case("implist_analyse_not_callable", "ImputedList.analyse", None, lambda d: _implist().analyse("y1 ~ x"), MitmlTypeError, "fn|callable"),
    Case("implist_within_bad_return", "ImputedList.within", None, lambda d: _implist().within(lambda f: 3), MitmlTypeError, "within"),
    Case("implist_subset_unknown_column", "ImputedList.subset", None, lambda d: _implist().subset(columns=["nope"]), MitmlError, "nope"),
    Case("implist_sort_unknown_column", "ImputedList.sort", None, lambda d: _implist().sort("nope"), MitmlError, "nope"),
    Case("implist_rbind_wrong_length", "ImputedList.rbind", None, lambda d: _implist().rbind([tiny()] * 3), MitmlError, "rbind|3"),
    Case("implist_cbind_wrong_rows", "ImputedList.cbind", None, lambda d: _implist().cbind(tiny().iloc[:5]), MitmlError, "cbind|rows"),
    Case("implist_from_long_no_imp", "ImputedList.from_long", tiny, lambda d: mj.ImputedList.from_long(d), MitmlError, "\\.imp"),
    # ---- pooling
    Case("estimates_m1", "test_estimates", None, lambda d: mj.test_estimates(_fits()[:1]), MitmlError, "m = 1|two"),
    Case("estimates_different_models", "test_estimates", None,
         lambda d: mj.test_estimates([_fits()[0], _fits("y1 ~ x + w")[1]]), MitmlError, "model"),
    Case("estimates_not_fits", "test_estimates", None, lambda d: mj.test_estimates(["a", "b"]), MitmlError, "model|str"),
    Case("estimates_model_and_qhat", "test_estimates", None, lambda d: mj.test_estimates(_fits(), qhat=[1.0, 2.0]), MitmlError, "'qhat'"),
    Case("estimates_qhat_ragged", "test_estimates", None, lambda d: mj.test_estimates(qhat=[[1.0, 2.0], [1.0]]), MitmlError, "'qhat'"),
    Case("estimates_df_com_length", "test_estimates", None, lambda d: mj.test_estimates(_fits(), df_com=[1, 2, 3]), MitmlError, "'df_com'"),
    Case("models_method", "test_models", None, lambda d: mj.test_models(_fits("y1 ~ x + w"), _fits(), method="D9"), MitmlError, "'method'"),
    Case("models_length_mismatch", "test_models", None, lambda d: mj.test_models(_fits("y1 ~ x + w"), _fits()[:1]), MitmlError, "null_model|length|number"),
    Case("constraints_unknown_parameter", "test_constraints", None,
         lambda d: mj.test_constraints(_fits(), constraints="nope - x"), MitmlError, "nope"),
    Case("constraints_malformed", "test_constraints", None,
         lambda d: mj.test_constraints(_fits(), constraints="x - - * 2"), MitmlError, "constraint"),
    Case("constraints_empty", "test_constraints", None, lambda d: mj.test_constraints(_fits(), constraints=[]), MitmlError, "'constraints'"),
    Case("anova_one_model", "anova", None, lambda d: mj.anova(_fits()), MitmlError, "two"),
    Case("anova_method", "anova", None, lambda d: mj.anova(_fits("y1 ~ x + w"), _fits(), method="D1"), MitmlError, "'method'"),
    Case("r2_print", "multilevel_r2", None, lambda d: mj.multilevel_r2(_fits(), print="XYZ"), MitmlError, "'print'"),
    Case("r2_not_mixed", "multilevel_r2", None, lambda d: mj.multilevel_r2(_fits()), MitmlError, "multilevel R-squared|mitml_r2"),
    # ---- lmer
    Case("lmer_malformed_formula", "lmer", None, lambda d: mj.lmer("y1 ~ x + (1|id", _implist()), MitmlError, "formula|parenthes"),
    Case("lmer_unknown_column", "lmer", None, lambda d: mj.lmer("y1 ~ nope + (1|id)", _implist()), MitmlError, "nope"),
    Case("lmer_no_random", "lmer", None, lambda d: mj.lmer("y1 ~ x", _implist()), MitmlError, "random|\\|"),
    Case("lmer_not_list", "lmer", tiny, lambda d: mj.lmer("y1 ~ x + (1|id)", d), MitmlError, "implist|list"),
    Case("lmer_reml_string", "lmer", None, lambda d: mj.lmer("y1 ~ x + (1|id)", _implist(), reml="yes"), MitmlTypeError, "'reml'"),
    # ---- plot
    Case("plot_print_unknown", "Imputations.plot", None, lambda d: _imp().plot(print="nope"), MitmlError, "'print'"),
    Case("plot_pos_out_of_range", "Imputations.plot", None, lambda d: _imp().plot(print="beta", pos=(9, 9)), MitmlError,
         r"entry \[9,9\] in 'beta'"),
    Case("plot_export", "Imputations.plot", None, lambda d: _imp().plot(print="beta", export="gif"), MitmlError, "'export'"),
    Case("plot_thin", "Imputations.plot", None, lambda d: _imp().plot(print="beta", thin=0), MitmlError, "'thin'"),
    # ---- I/O
    Case("read_missing_file", "read_implist", None, lambda d: mj.read_implist("/nonexistent/imputed.parquet"), MitmlError, "nonexistent"),
    Case("write_non_frames", "ImputedList.write", None,
         lambda d: __import__("mitml_jax.results.parquet", fromlist=["x"]).write_implist([1, 2], "/tmp/x.parquet"), MitmlError, "frame|DataFrame"),
    Case("write_mplus_bad_na", "ImputedList.write_mplus", None,
         lambda d: _implist().write_mplus("/tmp/mitml_bad_mplus", na_value="NA"), MitmlError, "na_value"),
    Case("complete_force_list_string", "mitml_complete", None, lambda d: _imp().complete(1, force_list="yes"), MitmlTypeError,
         "'force_list'"),
    Case("summary_n_rhat_string", "Imputations.summary", None, lambda d: _imp().summary(n_rhat="3"), MitmlTypeError, "'n_rhat'"),
    Case("read_not_parquet", "read_implist", None, lambda d: mj.read_implist(_text_file()), MitmlError, "not a readable parquet"),
    Case("write_missing_folder", "ImputedList.write", None, lambda d: _implist().write("/nonexistent/dir/x.parquet"),
         MitmlError, "/nonexistent/dir"),
    Case("cluster_means_adj_string", "cluster_means", None, lambda d: mj.cluster_means(np.ones(4), [1, 1, 2, 2], adj="yes"),
         MitmlTypeError, "'adj'"),
    Case("estimates_df_com_negative", "test_estimates", None, lambda d: mj.test_estimates(_fits(), df_com=-5), MitmlError,
         "'df_com'"),
    Case("pan_save_pred_string", "pan_impute", tiny, pan(save_pred="yes"), MitmlTypeError, "'save_pred'"),
    Case("pan_group_target_missing", "pan_impute", _with(y1=_set("y1", list(range(12)), np.nan)), pan(group="grp"),
         MitmlError, "'y1'.*group 'g1'"),
    # ---- extend / save / load
    Case("extend_m_zero", "Imputations.extend", None, lambda d: _imp().extend(m=0), MitmlError, "'m'"),
    Case("extend_m_string", "Imputations.extend", None, lambda d: _imp().extend(m="2"), MitmlTypeError, "'m'"),
    Case("extend_n_iter_negative", "Imputations.extend", None, lambda d: _imp().extend(n_iter=-1, m=1), MitmlError, "'n_iter'"),
    Case("load_missing_file", "Imputations.load", None, lambda d: mj.Imputations.load("/nonexistent/run.pkl"), MitmlError,
         "nonexistent"),
    Case("load_not_a_run", "Imputations.load", None, lambda d: mj.Imputations.load(_not_a_run()), MitmlError,
         "not a saved Imputations"),
    # ---- cluster_means
    Case("cluster_means_length", "cluster_means", None, lambda d: mj.cluster_means(np.ones(5), np.ones(4)), MitmlError, "cluster|length"),
    Case("cluster_means_unknown_column", "cluster_means", tiny, lambda d: mj.cluster_means("nope", "id", data=d), MitmlError, "nope"),
    Case("cluster_means_string_x", "cluster_means", None, lambda d: mj.cluster_means(["a", "b"], [1, 1]), MitmlError, "'x'"),
]


def _run(case: Case):
    """(outcome, exception or result, data before, data after, warnings) for one case."""
    import warnings

    data = case.make() if case.make is not None else None
    before = copy.deepcopy(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = case.call(data)
        except Exception as exc:  # noqa: BLE001 - the battery classifies every exception
            return "raised", exc, before, data, list(caught)
    return "returned", result, before, data, list(caught)


def _frames_equal(before, after):
    if isinstance(before, pd.DataFrame):
        pdt.assert_frame_equal(after, before, check_exact=True)


def _params():
    for case in CASES:
        marks = []
        if case.name in GAPS:
            marks.append(pytest.mark.skip(reason=GAPS[case.name]))
        if case.name in SLOW:
            marks.append(pytest.mark.slow)
        yield pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(case):
    outcome, value, before, after, caught = _run(case)
    _frames_equal(before, after)
    if case.warning is not None:
        messages = [str(w.message) for w in caught if issubclass(w.category, case.warning)]
        assert any(re.search(case.match, msg) for msg in messages), (
            f"{case.name}: no {case.warning.__name__} matching {case.match!r} in {messages}")
    if case.error is None:
        if outcome == "raised":
            raise AssertionError(f"{case.name} should work, raised {type(value).__name__}: {value}") from value
        if case.check is not None:
            case.check(value, after)
        return
    assert outcome == "raised", f"{case.name}: no error raised, returned {type(value).__name__}"
    assert isinstance(value, case.error), (
        f"{case.name}: expected {case.error.__name__}, got {type(value).__module__}."
        f"{type(value).__name__}: {value}")
    assert re.search(case.match, str(value)), f"{case.name}: message {str(value)!r} lacks {case.match!r}"
    _assert_no_jax_frames(value)


def _assert_no_jax_frames(exc):
    """Raised by our code: no JAX exception in the chain, no JAX frame in the traceback."""
    import traceback

    import jax

    jax_dir = os.path.dirname(jax.__file__)
    seen = exc
    while seen is not None:
        assert type(seen).__module__.split(".")[0] not in ("jax", "jaxlib"), f"JAX exception leaked: {seen!r}"
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    frames = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    assert not any(f.startswith(jax_dir) for f in frames), f"raised from inside JAX: {frames}"


def test_battery_size():
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)


def test_report_lists_every_case():
    """docs/bad_input_report.md is regenerated whenever CASES change."""
    with open(REPORT, encoding="utf-8") as fh:
        text = fh.read()
    listed = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.M))
    assert listed == {c.name for c in CASES}, "rerun: python tests/test_reliability_bad_input.py"


# -- report ------------------------------------------------------------------------------------
REPORT = os.path.join(os.path.dirname(__file__), "..", "docs", "bad_input_report.md")


def write_report(path=REPORT):
    """Run every case and write a Markdown table of outcomes and messages."""
    rows = []
    for case in CASES:
        outcome, value, _, _, caught = _run(case)
        if outcome == "raised":
            ok = case.error is not None and isinstance(value, case.error) and re.search(case.match, str(value))
            got = f"{type(value).__name__}: {value}"
        else:
            ok = case.error is None
            warned = [str(w.message) for w in caught if case.warning and issubclass(w.category, case.warning)]
            got = "works" + (f" (warns: {warned[0]})" if warned else "")
        status = "pass" if ok else ("GAP (skipped)" if case.name in GAPS else "FAIL")
        expected = "works" if case.error is None else case.error.__name__
        got = got.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{case.name}` | {case.area} | {expected} | {status} | {got} |")
    text = [
        "# Bad-input battery report",
        "",
        "Generated by `python tests/test_reliability_bad_input.py` from `CASES` in",
        "`tests/test_reliability_bad_input.py` (tiny data: 24 rows, 6 clusters; "
        "`n_burn=5, n_iter=2, m=2`).",
        "Each row: the case, the public entry point, the expected outcome, whether the current code",
        "meets it, and the message the user sees.",
        "",
        f"{len(CASES)} cases.",
        "",
        "| case | entry point | expected | status | message |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(text))
    return rows


if __name__ == "__main__":
    for row in write_report(sys.argv[1] if len(sys.argv) > 1 else REPORT):
        print(row)
