"""ImputedList against R's completed data sets (tests/reference/completed.csv, mitml 0.4-4)."""

import os

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax import ImputedList, cluster_means

REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "completed.csv")


@pytest.fixture(scope="module")
def long():
    return pd.read_csv(REFERENCE)


def test_from_long_splits_in_order(long):
    implist = ImputedList.from_long(long)
    assert isinstance(implist, ImputedList) and len(implist) == 20
    for i, frame in enumerate(implist):
        assert ".imp" not in frame.columns
        assert frame.shape == (750, long.shape[1] - 1)
        assert frame.index.equals(pd.RangeIndex(750))
        expected = long[long[".imp"] == i + 1].drop(columns=".imp").reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_within_reproduces_R_cluster_means(long):
    implist = ImputedList.from_long(long)
    recomputed = implist.within(
        lambda d: {
            "G.SES": cluster_means(d.SES, d.ID),
            "I.SES": d.SES - cluster_means(d.SES, d.ID),
        }
    )
    assert isinstance(recomputed, ImputedList)
    worst = 0.0
    for r_frame, frame in zip(implist, recomputed):
        assert list(frame.columns) == list(r_frame.columns)  # overwritten in place
        for name in ("G.SES", "I.SES"):
            worst = max(worst, float(np.max(np.abs(frame[name] - r_frame[name]))))
        # other columns untouched
        pd.testing.assert_frame_equal(
            frame.drop(columns=["G.SES", "I.SES"]), r_frame.drop(columns=["G.SES", "I.SES"])
        )
    # the CSV holds R's values rounded to 15 significant digits, hence not bit-identical
    assert worst < 1e-12


def test_within_assign_style_and_string_names(long):
    implist = ImputedList.from_long(long)[:2]
    via_assign = implist.within(lambda d: d.assign(cm=cluster_means("SES", "ID", data=d)))
    via_dict = implist.within(lambda d: {"cm": cluster_means(d["SES"], d["ID"])})
    for a, b in zip(via_assign, via_dict):
        pd.testing.assert_frame_equal(a, b)
        assert a.columns[-1] == "cm"
    dropped = implist.within(lambda d: {"HighDis": None, "x2": d.SES * 2}, ignore=["G.SES"])
    assert "HighDis" not in dropped[0] and "G.SES" not in dropped[0] and "x2" in dropped[0]
    assert "HighDis" in implist[0]  # input untouched


def test_to_long_round_trip(long):
    implist = ImputedList.from_long(long)
    pd.testing.assert_frame_equal(implist.to_long(with_id=False), long, check_exact=True)
    stacked = implist.to_long()
    assert list(stacked.columns[:2]) == [".imp", ".id"]
    np.testing.assert_array_equal(stacked[".id"].to_numpy()[:750], np.arange(750))
    back = ImputedList.from_mice_long(stacked)
    for a, b in zip(back, implist):
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True)


def test_mixedlm_through_analyse(long):
    smf = pytest.importorskip("statsmodels.formula.api")
    implist = ImputedList.from_long(long)[:3]
    fits = implist.analyse(
        lambda d: smf.mixedlm(
            'MathAchiev ~ 1 + Sex + Q("I.SES") + Q("G.SES")',
            d.dropna(subset=["MathAchiev"]),
            groups="ID",
        ).fit(reml=True)
    )
    assert isinstance(fits, mj.AnalysisList) and len(fits) == 3
    assert fits.data is None
    for fit in fits:
        assert fit.model.nobs == 750 - 132  # MathAchiev is not imputed in this model
        # R's pooled estimates over 20 imputations: I.SES 0.81, G.SES 1.33 (pooled.json); each
        # single data set lands near them
        assert 0.4 < fit.fe_params['Q("I.SES")'] < 1.0
        assert 0.8 < fit.fe_params['Q("G.SES")'] < 2.0
    pooled = mj.test_estimates(fits)  # the pooling functions accept the AnalysisList
    assert pooled.m == 3
    assert 0.4 < float(np.asarray(pooled.coef())[2]) < 1.0


@pytest.mark.slow
def test_mixedlm_all_20_pooled_close_to_R_lmer(long):
    """All 20 data sets through statsmodels MixedLM (REML) and test_estimates, against R's
    testEstimates on lme4 fits. The optimisers differ (statsmodels vs lme4), so estimates agree
    to about 0.01 standard errors and standard errors to about 1% (measured: 0.003 SE, 0.45%)."""
    import json

    smf = pytest.importorskip("statsmodels.formula.api")
    implist = ImputedList.from_long(long).within(
        lambda d: {
            "G.SES": cluster_means(d.SES, d.ID),
            "I.SES": d.SES - cluster_means(d.SES, d.ID),
        }
    )
    fits = implist.analyse(
        lambda d: smf.mixedlm(
            'MathAchiev ~ 1 + Sex + Q("I.SES") + Q("G.SES")',
            d.dropna(subset=["MathAchiev"]),
            groups="ID",
        ).fit(reml=True)
    )
    assert isinstance(fits, mj.AnalysisList) and len(fits) == 20
    table = mj.test_estimates(fits).to_frame()
    with open(os.path.join(os.path.dirname(__file__), "reference", "pooled.json")) as handle:
        ref = np.array(json.load(handle)["lmer_estimates"]["value"]["estimates"]["values"])
    estimate, std_error = table.iloc[:, 0].to_numpy(), table.iloc[:, 1].to_numpy()
    assert np.all(np.abs(estimate - ref[:, 0]) < 0.01 * ref[:, 1])
    np.testing.assert_allclose(std_error, ref[:, 1], rtol=0.01)
