"""ImputedList list operations: each returns an ImputedList and leaves its input alone."""

import numpy as np
import pandas as pd
import pytest

from mitml_jax import AnalysisList, ImputedList
from mitml_jax.errors import MitmlError, MitmlTypeError


def make_list(m=3, n=6):
    frames = []
    for i in range(m):
        frames.append(
            pd.DataFrame(
                {
                    "id": np.repeat([2, 1, 3], n // 3),
                    "x": np.arange(n, dtype=float) + 10 * i,
                    "g": pd.Categorical(list("abcabc"[:n]), categories=["c", "b", "a"]),
                },
                index=pd.RangeIndex(100, 100 + n),
            )
        )
    return ImputedList(frames)


def snapshot(implist):
    return [f.copy() for f in implist]


def assert_unchanged(implist, before):
    assert len(implist) == len(before)
    for a, b in zip(implist, before):
        pd.testing.assert_frame_equal(a, b)


def test_construction_and_slicing():
    implist = make_list()
    assert isinstance(implist[1:], ImputedList) and len(implist[1:]) == 2
    assert isinstance(implist[0], pd.DataFrame)
    assert "3 data sets" in repr(implist)
    with pytest.raises(MitmlTypeError, match="entry 1"):
        ImputedList([implist[0], np.zeros(3)])


def test_concat_and_add():
    a, b = make_list(2), make_list(3)
    for combined in (a + b, a.concat(b), a + list(b)):
        assert isinstance(combined, ImputedList) and len(combined) == 5
    assert isinstance(list(b) + a, ImputedList)
    with pytest.raises(MitmlTypeError):
        a + a[0]


def test_subset_rows_and_columns():
    implist = make_list()
    before = snapshot(implist)
    out = implist.subset(rows=lambda d: d.x > 12, columns=["x", "id"])
    assert isinstance(out, ImputedList)
    assert out[0].shape == (0, 2) and list(out[0].columns) == ["x", "id"]
    assert out[1].index.tolist() == [103, 104, 105] and out[2].shape == (6, 2)
    mask = np.array([True, False, True, False, True, False])
    assert make_list().subset(rows=mask)[2].index.tolist() == [100, 102, 104]
    with_na = pd.Series([True, None, True, None, False, True], dtype="boolean")
    assert implist.subset(rows=with_na.to_numpy())[0].shape[0] == 3
    assert implist.subset(rows=lambda d: pd.Series(with_na.to_numpy(), index=d.index))[0].shape[0] == 3
    with pytest.raises(MitmlError, match="logical"):
        implist.subset(rows=np.arange(6))
    with pytest.raises(MitmlError, match="not in the data"):
        implist.subset(columns=["nope"])
    assert_unchanged(implist, before)


def test_sort():
    implist = make_list()
    before = snapshot(implist)
    out = implist.sort("id")
    assert isinstance(out, ImputedList)
    assert out[0]["id"].tolist() == [1, 1, 2, 2, 3, 3]
    assert out[0].index.tolist() == [102, 103, 100, 101, 104, 105]  # stable, index kept
    down = implist.sort(["id", "x"], ascending=[True, False])
    assert down[1]["x"].tolist() == [13.0, 12.0, 11.0, 10.0, 15.0, 14.0]
    by_category = implist.sort("g")  # category order c, b, a
    assert by_category[0]["g"].tolist() == ["c", "c", "b", "b", "a", "a"]
    by_key = implist.sort(lambda d: -d["x"])
    assert by_key[2]["x"].tolist() == sorted(implist[2]["x"], reverse=True)
    assert_unchanged(implist, before)


def test_rbind_and_cbind_keep_class():
    implist = make_list()
    before = snapshot(implist)
    doubled = implist.rbind(implist)
    assert isinstance(doubled, ImputedList) and doubled[1].shape == (12, 3)
    extra = pd.DataFrame({"x": [99.0], "id": [7], "g": pd.Categorical(["a"], categories=["c", "b", "a"])})
    plus_one = implist.rbind(extra, ignore_index=True)
    assert plus_one[2]["x"].iloc[-1] == 99.0 and plus_one[2]["g"].dtype == implist[2]["g"].dtype

    per_imp = implist.cbind({"b": [1, 2, 3], "shared": np.arange(6)})
    assert isinstance(per_imp, ImputedList)
    assert [int(f["b"].iloc[0]) for f in per_imp] == [1, 2, 3]
    assert per_imp[2]["shared"].tolist() == list(range(6))
    frames = implist.cbind([pd.DataFrame({"z": [i] * 6}) for i in range(3)])
    assert isinstance(frames, ImputedList) and frames[2]["z"].tolist() == [2] * 6
    assert frames[2].index.equals(implist[2].index)
    with pytest.raises(MitmlError, match="one per imputation"):
        implist.cbind({"b": [1, 2]})
    with pytest.raises(MitmlError, match="already exist"):
        implist.cbind({"x": 1.0})
    with pytest.raises(MitmlError, match="2 data sets given for 3"):
        implist.rbind(implist[:2])
    assert_unchanged(implist, before)


def test_within_forms():
    implist = make_list()
    before = snapshot(implist)

    def mutate(d):
        d["x"] = d["x"] * 2
        d["new"] = 1

    out = implist.within(mutate)
    assert out[1]["x"].tolist() == (implist[1]["x"] * 2).tolist() and "new" in out[1]
    frame_form = implist.within(lambda d: d[["x"]])
    assert list(frame_form[0].columns) == ["x"]
    with pytest.raises(MitmlTypeError, match="dict of columns"):
        implist.within(lambda d: 3)
    with pytest.raises(MitmlError, match="values for 6 rows"):
        implist.within(lambda d: {"y": np.arange(4)})
    assert_unchanged(implist, before)


def test_analyse_returns_analysis_list():
    implist = make_list()
    result = implist.analyse(lambda d: d["x"].mean())
    assert isinstance(result, AnalysisList) and list(result) == [2.5, 12.5, 22.5]
    assert result.data is None
    kept = implist.analyze(lambda d: d.shape, include_data=True)
    assert len(kept.data) == 3 and kept.data[0] is implist[0]
    with pytest.raises(MitmlTypeError):
        implist.analyse("x ~ 1")


def test_long_with_original_mice_style():
    implist = make_list()
    original = implist[0].copy()
    original.loc[101, "x"] = np.nan
    long = implist.to_mice_long(original)
    assert long[".imp"].tolist()[:7] == [0] * 6 + [1]
    assert long[".id"].tolist()[:6] == list(range(100, 106))
    frames = ImputedList.from_mice_long(long)
    assert len(frames) == 3 and frames[0].index.tolist() == list(range(100, 106))
    pd.testing.assert_frame_equal(frames[2], implist[2], check_index_type=False)
    widened = implist.within(lambda d: {"y": d.x + 1})
    with pytest.raises(MitmlError, match="fill=True"):
        widened.to_mice_long(original)
    filled = widened.to_mice_long(original, fill=True)
    assert filled.loc[filled[".imp"] == 0, "y"].isna().all()
    with pytest.raises(MitmlError, match="original"):
        implist.to_long(include_original=True)


def test_from_long_exclude_and_jomo():
    long = pd.DataFrame({"Imputation": [2, 0, 1, 2, 0, 1], "v": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0]})
    jomo = ImputedList.from_jomo(long)
    assert len(jomo) == 2 and jomo[0]["v"].tolist() == [3.0, 6.0] and jomo[1]["v"].tolist() == [1.0, 4.0]
    assert list(jomo[0].columns) == ["v"]
    assert len(ImputedList.from_long(long, imp="Imputation")) == 3
    assert len(ImputedList.from_long(long, imp="Imputation", exclude=[0, 1])) == 1
    with pytest.raises(MitmlError, match="split column"):
        ImputedList.from_long(long)


def test_lmer_forwards_to_batched_lmer(monkeypatch):
    import sys
    import types

    calls = []
    fake = types.ModuleType("mitml_jax.analysis.lmer")
    fake.lmer = lambda formula, implist, reml=True: calls.append((formula, implist, reml)) or "fits"
    monkeypatch.setitem(sys.modules, "mitml_jax.analysis.lmer", fake)
    implist = make_list()
    assert implist.lmer("x ~ 1 + (1|id)", reml=False) == "fits"
    assert calls == [("x ~ 1 + (1|id)", implist, False)]


def test_to_long_with_duplicate_index_labels():
    frame = pd.DataFrame({"a": [1.0, 2.0]}, index=[5, 5])
    implist = ImputedList([frame, frame * 2])
    long = implist.to_long()
    assert long[".id"].tolist() == [5, 5, 5, 5] and long["a"].tolist() == [1.0, 2.0, 2.0, 4.0]
    assert implist.rbind(implist).to_long().shape == (8, 3)


def test_from_long_that_leaves_no_data_set_is_an_error():
    long = pd.DataFrame({".imp": [1, 2, 1, 2], "v": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(MitmlError, match="leaves no data set"):
        ImputedList.from_long(long, exclude=[1, 2])
    with pytest.raises(MitmlError, match="no rows"):
        ImputedList.from_long(long.iloc[:0])


def test_to_mice_long_matches_the_original_by_index_label():
    """The original data's rows are matched to the imputed data sets' by index label: the same
    labels in another order are put in the data sets' order (so .id agrees across .imp); other
    labels are an error instead of a silent mismatch."""
    frames = [pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=[10, 11, 12]) * k for k in (1, 2)]
    implist = ImputedList(frames)
    original = pd.DataFrame({"a": [np.nan, 2.0, 3.0]}, index=[10, 11, 12])
    shuffled = original.iloc[[2, 0, 1]]
    long = implist.to_mice_long(shuffled)
    assert long.loc[long[".imp"] == 0, ".id"].tolist() == [10, 11, 12]
    assert long.loc[long[".imp"] == 0, "a"].tolist()[1:] == [2.0, 3.0]
    with pytest.raises(MitmlError, match="index of 'original'"):
        implist.to_mice_long(original.reset_index(drop=True))


def test_analyse_says_which_data_set_failed():
    implist = make_list()

    def fn(frame):
        if frame is not None and len(fails) == 1:
            raise ZeroDivisionError("division by zero")
        fails.append(1)
        return 0

    fails = []
    with pytest.raises(ZeroDivisionError) as info:
        implist.analyse(fn)
    assert f"imputed data set 2 of {len(implist)}" in "".join(getattr(info.value, "__notes__", []))


def test_lmer_with_r_spelling_of_reml_is_a_clear_error():
    with pytest.raises(MitmlTypeError, match="reml=False"):
        make_list().lmer("x ~ 1 + (1|id)", REML=False)
