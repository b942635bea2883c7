"""QA regressions: ImputedList operations, cluster_means, and the parquet/Mplus/SPSS writers.

Each test failed before its fix: a traceback from pandas/pyarrow/os instead of a MitmlError that
names the argument, a silently lossy round trip, or a file that R's tools would read differently
from what mitml's writers produce for the same data.
"""

import numpy as np
import pandas as pd
import pytest

from mitml_jax import ImputedList, cluster_means
from mitml_jax.errors import MitmlError, MitmlTypeError


def _two():
    f = pd.DataFrame({"a": [1.0, 2.0], "g": [1, 2]})
    return ImputedList([f, f * 2])


# -- cluster_means ------------------------------------------------------------------------------
def test_cluster_means_rows_with_missing_group_get_nan():
    # the missing (cluster, group) pairs were coded -1 and then made one more cell of their own
    x = np.array([1.0, 2.0, 3.0, 4.0])
    out = cluster_means(x, [1, 1, 1, 1], group=[np.nan, 1, 1, np.nan])
    np.testing.assert_array_equal(out, [np.nan, 2.5, 2.5, np.nan])
    out = cluster_means(x, [1, np.nan, 1, 1], group=[1, 1, 1, 2])
    np.testing.assert_array_equal(out, [2.0, np.nan, 2.0, 4.0])


# -- ImputedList operations ---------------------------------------------------------------------
def test_rbind_with_other_columns_is_an_error_as_in_r():
    # pd.concat filled the missing columns with NaN: missing values in imputed data
    with pytest.raises(MitmlError, match="rbind: the rows added to data set 1 have columns"):
        _two().rbind(pd.DataFrame({"b": [1.0]}))
    reordered = _two().rbind(pd.DataFrame({"g": [9], "a": [9.0]}), ignore_index=True)
    assert reordered[1]["a"].tolist() == [2.0, 4.0, 9.0]  # same names in another order: fine


def test_sort_and_subset_argument_errors_name_the_argument():
    implist = _two()
    with pytest.raises(MitmlError, match="'ascending' has 1 entries for 2 sort keys"):
        implist.sort(["a", "g"], ascending=[True])
    with pytest.raises(MitmlTypeError, match="sort: 'by' must be"):
        implist.sort(3)
    with pytest.raises(MitmlError, match="no sort key"):
        implist.sort([])
    with pytest.raises(MitmlTypeError, match="subset: 'columns'"):
        implist.subset(columns=3)
    assert implist.sort(("g", "a"), ascending=[False, True])[0]["g"].tolist() == [2, 1]


def test_within_two_dimensional_column_is_an_error():
    with pytest.raises(MitmlError, match=r"column 'b' has shape \(2, 2\)"):
        _two().within(lambda d: {"b": np.ones((2, 2))})


# -- parquet ------------------------------------------------------------------------------------
pytest.importorskip("pyarrow")


def test_parquet_keeps_categoricals_with_number_and_date_categories(tmp_path):
    # parquet keeps categories only when they are strings: these came back as plain columns
    frame = pd.DataFrame({
        "k": pd.Categorical([3, 1, 3], categories=[3, 1, 2], ordered=True),
        "day": pd.Categorical(pd.to_datetime(["2020-01-02", "2020-01-01", None])),
        "s": pd.Categorical(["b", "a", "b"], categories=["b", "a", "z"]),
        "sec": pd.to_datetime(["2020-01-01", None, "2021-05-06"]).astype("datetime64[s]"),
    })
    ImputedList([frame, frame]).write(tmp_path / "c.parquet")
    back = ImputedList.read(tmp_path / "c.parquet")
    for got in back:
        pd.testing.assert_frame_equal(got, frame, check_exact=True)
    assert list(back[1]["k"].cat.categories) == [3, 1, 2] and back[1]["k"].cat.ordered


def test_parquet_write_errors_name_the_problem(tmp_path):
    import pyarrow as pa

    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(MitmlError, match="is a folder"):
        ImputedList([frame]).write(tmp_path)
    with pytest.raises(MitmlTypeError, match="'path' must be a file name"):
        ImputedList([frame]).write(3)
    for bad in (np.array([1 + 1j, 2]), pd.arrays.SparseArray([0.0, 1.0])):
        with pytest.raises(MitmlError, match="cannot be stored in parquet"):
            ImputedList([pd.DataFrame({"a": bad})]).write(tmp_path / "x.parquet")
    nested = pd.Series([[1, 2], [3]], dtype=pd.ArrowDtype(pa.list_(pa.int64())))
    with pytest.raises(MitmlError, match="nested or dictionary Arrow types"):  # unreadable file
        ImputedList([pd.DataFrame({"a": nested})]).write(tmp_path / "x.parquet")


# -- Mplus and SPSS -----------------------------------------------------------------------------
def test_writers_refuse_a_file_as_folder_and_a_name_with_a_folder(tmp_path):
    implist = _two()
    (tmp_path / "afile").write_text("")
    for writer in (implist.write_mplus, implist.write_spss):
        with pytest.raises(MitmlError, match="'folder' .* is a file"):
            writer(tmp_path / "afile")
        with pytest.raises(MitmlError, match="'name' .* without a folder"):
            writer(tmp_path / "out", name="sub/imp")
        with pytest.raises(MitmlTypeError, match="'name' must be a non-empty string"):
            writer(tmp_path / "out", name="")
    with pytest.raises(MitmlError, match="would overwrite a data file"):
        implist.write_mplus(tmp_path / "out", suffix="2")  # imp2.dat is the second data set


def test_object_columns_of_numbers_are_written_as_numbers(tmp_path):
    # they were coded 1..K like strings (R holds them as numbers) and ignored dec=","
    frame = pd.DataFrame({"x": pd.Series([2.5, 10, None], dtype=object),
                          "b": pd.Series([True, False, None], dtype=object)})
    implist = ImputedList([frame, frame])
    paths = implist.write_mplus(tmp_path, sep=";", dec=",")
    assert open(paths["data"][0]).read() == "2,5;1\n10,0;0\n-999;-999\n"
    assert "Factors were converted" not in open(paths["log"]).read()
    paths = implist.write_spss(tmp_path, sep=";", dec=",")
    lines = open(paths["data"]).read().splitlines()
    assert lines[:3] == ["Imputation_;x;b", "1;2,5;1", "1;10,0;0"]
    assert " x F9.2" in open(paths["syntax"]).read()  # R: format(c(2.5, 10, -999)) is 6 wide


def test_spss_text_is_written_unquoted_as_r_writes_it(tmp_path):
    # pandas quoted 'he said "hi"' as '"he said ""hi"""', which SPSS (no /QUALIFIER) keeps
    frame = pd.DataFrame({"s": ['he said "hi"', "a b", "naïve"], "x": [1.0, 2.0, 3.0]})
    paths = ImputedList([frame]).write_spss(tmp_path)
    lines = open(paths["data"], encoding="utf-8").read().splitlines()
    assert lines[1] == '1\the said "hi"\t1.0' and lines[3] == "1\tnaïve\t3.0"
    assert " s A12\n" in open(paths["syntax"]).read()
    with pytest.raises(MitmlError, match="column 's' has values containing the separator ','"):
        ImputedList([frame.assign(s=["a,b", "c", "d"])]).write_spss(tmp_path, sep=",")
    with pytest.raises(MitmlError, match="column 's' has values containing the separator"):
        ImputedList([frame.assign(s=["a\nb", "c", "d"])]).write_spss(tmp_path)
    with pytest.raises(MitmlError, match="column names"):
        ImputedList([frame.rename(columns={"x": "x y"})]).write_spss(tmp_path, sep=" ")


def test_spss_string_widths_count_bytes(tmp_path):
    # SPSS string widths are bytes; R's (and our) character count cut 'naïve' to 'naïv'
    frame = pd.DataFrame({"u": ["été", "naïve"]})
    sps = open(ImputedList([frame]).write_spss(tmp_path)["syntax"]).read()
    assert " u A6 ." in sps


def test_write_mplus_warns_about_names_mplus_cannot_read(tmp_path):
    frame = pd.DataFrame({"I.SES": [1.0], "LongName1": [1.0], "longname2": [1.0], "ok_1": [1.0]})
    with pytest.warns(Warning, match=r"\['I.SES', 'LongName1', 'longname2'\] are not Mplus names"
                      r".*\[\['LongName1', 'longname2'\]\] are the same to Mplus"):
        paths = ImputedList([frame]).write_mplus(tmp_path)
    assert "names = I.SES LongName1 longname2 ok_1;" in open(paths["input"]).read()


def test_sep_that_occurs_in_numbers_is_refused(tmp_path):
    # '-' made pandas quote '"-999"'; '::' was a TypeError from the csv module
    implist = ImputedList([pd.DataFrame({"a": [1.5, np.nan]})])
    for sep in ("-", "+", "1", "e", "::", "\n"):
        for writer in (implist.write_mplus, implist.write_spss):
            with pytest.raises(MitmlError, match="'sep' must be one character"):
                writer(tmp_path, sep=sep)


def test_mplus_missing_code_uses_the_decimal_mark(tmp_path):
    # R writes na.value as a number (-999,5 with dec = ","); it was written as "-999.5"
    implist = ImputedList([pd.DataFrame({"a": [1.5, np.nan], "b": [2.0, 3.0]})])
    paths = implist.write_mplus(tmp_path, sep=";", dec=",", na_value=-999.5)
    assert open(paths["data"][0]).read() == "1,5;2,0\n-999,5;3,0\n"


def test_duplicate_and_multi_level_column_names_are_refused(tmp_path):
    # AttributeError ('DataFrame' object has no attribute 'dtype') / TypeError in the syntax
    dup = ImputedList([pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])])
    multi = ImputedList([pd.DataFrame([[1.0, 2.0]], columns=pd.MultiIndex.from_tuples(
        [("a", "x"), ("a", "y")]))])
    for writer in ("write_mplus", "write_spss"):
        with pytest.raises(MitmlError, match=r"column names \['a'\] occur more than once"):
            getattr(dup, writer)(tmp_path)
        with pytest.raises(MitmlError, match="multi-level column names"):
            getattr(multi, writer)(tmp_path)
    with pytest.raises(MitmlError, match="occur more than once"):
        dup.write(tmp_path / "x.parquet")


def test_write_spss_without_rows_and_with_number_names(tmp_path):
    empty = pd.DataFrame({"a": pd.Series([], dtype=float), "s": pd.Series([], dtype=str)})
    sps = open(ImputedList([empty]).write_spss(tmp_path)["syntax"]).read()  # was max() of nothing
    assert " s A1 ." in sps
    sps = open(ImputedList([pd.DataFrame({0: [1.0], 1: ["x"]})]).write_spss(tmp_path)["syntax"]).read()
    assert sps.endswith("MISSING VALUES\n Imputation_ 0 (-999) \n 1 (\"-999\") .\n")


def test_series_with_the_same_labels_in_another_order_is_matched_by_label():
    # it was matched by position: r got 3, 2, 1 against a = 1, 2, 3 (pandas assigns by label)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=[10, 11, 12])
    implist = ImputedList([frame])
    out = implist.within(lambda d: {"r": d.a.sort_values(ascending=False)})[0]
    assert out["r"].tolist() == [1.0, 2.0, 3.0]
    out = implist.cbind({"r": frame.a.sort_values(ascending=False)})[0]
    assert out["r"].tolist() == [1.0, 2.0, 3.0]
    out = implist.within(lambda d: {"r": d.a[::-1].reset_index(drop=True)})[0]
    assert out["r"].tolist() == [3.0, 2.0, 1.0]  # other labels: by position, as before
    assert frame.columns.tolist() == ["a"]


def test_cluster_means_matches_reordered_id_series_by_label():
    # the ids were taken by position: x = 1, 2, 3 got clusters (b, a, a) instead of (a, a, b)
    x = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    ids = pd.Series(["a", "a", "b"], index=[0, 1, 2]).iloc[::-1]
    out = cluster_means(x, ids)
    assert out.tolist() == [1.5, 1.5, 3.0]
    out = cluster_means(x, ids.reset_index(drop=True))  # other labels: by position
    assert out.tolist() == [1.0, 2.5, 2.5]


def test_dates_are_labelled_as_r_prints_them(tmp_path):
    # the Mplus log said '2020-01-01T00:00:00.000000 = 1' (R: '2020-01-01 = 1') and SPSS text
    # '2020-01-01 00:00:00'
    frame = pd.DataFrame({"d": pd.to_datetime(["2020-01-01 00:00", None, "2021-05-06 12:30"])})
    paths = ImputedList([frame]).write_mplus(tmp_path)
    assert "d:\n2020-01-01 = 1\n2021-05-06 12:30:00 = 2\n" in open(paths["log"]).read()
    lines = open(ImputedList([frame]).write_spss(tmp_path)["data"]).read().splitlines()
    assert lines[1:] == ["1\t2020-01-01", "1\t-999", "1\t2021-05-06 12:30:00"]


def test_categories_that_differ_between_data_sets_get_one_code_table(tmp_path):
    # data set 2's own category codes were written under data set 1's table: 'b' (code 1 of
    # ['b', 'a']) came out as 'a', and 'z' (not in data set 1) as 'b' in Mplus, -999 in SPSS
    first = pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["a", "b"])})
    reordered = pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["b", "a"])})
    other = pd.DataFrame({"c": pd.Categorical(["a", "z"], categories=["a", "z"])})
    paths = ImputedList([first, reordered]).write_mplus(tmp_path)
    assert [open(p).read() for p in paths["data"]] == ["1\n2\n", "1\n2\n"]
    paths = ImputedList([first, other]).write_mplus(tmp_path)
    assert open(paths["data"][1]).read() == "1\n3\n"
    assert "c:\na = 1\nb = 2\nz = 3\n" in open(paths["log"]).read()
    paths = ImputedList([first, other]).write_spss(tmp_path)
    assert open(paths["data"]).read().splitlines()[3:] == ["2\t1", "2\t3"]
    assert " /c\n 1 'a'\n 2 'b'\n 3 'z' ." in open(paths["syntax"]).read()


def test_parquet_categories_that_differ_between_data_sets_keep_every_value(tmp_path):
    first = pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["a", "b"])})
    other = pd.DataFrame({"c": pd.Categorical(["a", "z"], categories=["a", "z"])})
    ImputedList([first, other]).write(tmp_path / "c.parquet")
    back = ImputedList.read(tmp_path / "c.parquet")
    assert back[0]["c"].tolist() == ["a", "b"] and back[1]["c"].tolist() == ["a", "z"]
