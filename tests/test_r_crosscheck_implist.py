"""ImputedList operations, cluster_means and write_mplus against mitml 0.4-4 on the same data.

tests/reference/crosscheck_implist/make_implist.R builds a small data set (unsorted, unbalanced
clusters, a cluster without observed x, string ids, a factor with a non-alphabetical level
order and an unused level, a grouping variable), three completed data sets, and stores mitml's
results (implist_ops.json) and write.mitmlMplus's files (mplus/). Row numbers from R are
1-based row names; ours are the 0-based RangeIndex labels + 1.

Deliberate differences (documented in the modules) are asserted as such: cluster_means handles
string ids (R turns them into one NA cluster, bug B16), within() appends new columns in dict order
(R: reverse order of creation), write_mplus writes booleans as 0/1 (R codes logicals as factor
levels FALSE = 1, TRUE = 2), numbers at full precision and data file names relative to the folder.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from mitml_jax import ImputedList, cluster_means

HERE = os.path.join(os.path.dirname(__file__), "reference", "crosscheck_implist")
LEVELS = ["lo", "mid", "hi", "zz"]


@pytest.fixture(scope="module")
def ref():
    with open(os.path.join(HERE, "implist_ops.json")) as handle:
        out = json.load(handle)
    return {k: _nan(v) for k, v in out.items()}


def _nan(value):
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return np.nan if value is None else value


@pytest.fixture(scope="module")
def data():
    d = pd.read_csv(os.path.join(HERE, "implist_input.csv"), keep_default_na=False,
                    na_values={"x": [""], "f": [""]})
    d["f"] = pd.Categorical(d["f"].replace("", np.nan), categories=LEVELS)
    return d


def _fill(d, i):
    z = d.copy()
    miss = z["x"].isna()
    z.loc[miss, "x"] = i * 1.5 + np.arange(1, miss.sum() + 1) / 8
    return z


@pytest.fixture(scope="module")
def implist(data):
    return ImputedList([_fill(data, i) for i in (1, 2, 3)])


def _close(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours, float), np.asarray(theirs, float), rtol=0,
                               atol=1e-12)


# -- cluster_means ---------------------------------------------------------------------------
def test_cluster_means_equal_r(data, ref):
    x, cl, grp = data["x"], data["id"], data["grp"]
    _close(cluster_means(x, cl), ref["cm_plain"])
    _close(cluster_means(x, cl, adj=True), ref["cm_adj"])
    _close(cluster_means(x, cl, group=grp), ref["cm_group_chr"])
    _close(cluster_means(x, cl, adj=True, group=grp), ref["cm_group_chr_adj"])
    _close(cluster_means(x, pd.Categorical(data["sid"])), ref["cm_factor_cluster"])
    group_f = pd.Categorical(list(data["f"][:22]) + list(data["f"][:2]), categories=LEVELS)
    _close(cluster_means(data["y"], cl, group=group_f), ref["cm_y_group_factor"])
    _close(cluster_means("x", "id", group="grp", data=data), ref["cm_names"])
    # numpy input gives an array, a Series keeps its index
    assert isinstance(cluster_means(x.to_numpy(), cl.to_numpy()), np.ndarray)


def test_cluster_means_string_ids_deliberately_differ_from_r(data, ref):
    # R: as.integer("c1") is NA, so every row is in one NA cluster: the grand mean (B16).
    assert np.allclose(ref["cm_string_cluster"], np.nanmean(data["x"]))
    _close(cluster_means(data["x"], data["sid"]), ref["cm_factor_cluster"])


def test_cluster_means_missing_ids_and_group_codes_deliberately_differ(data, ref):
    ids = data["id"].copy()
    ids[[1, 8]] = np.nan
    ours = cluster_means(data["x"], ids)
    theirs = np.asarray(ref["cm_na_cluster"], float)
    # R makes the rows with a missing id one more cluster; we give them NaN (documented)
    assert np.isnan(ours[[1, 8]]).all() and theirs[1] == theirs[8] == 2.0
    keep = np.ones(len(ids), bool)
    keep[[1, 8]] = False
    _close(ours[keep], theirs[keep])
    # R codes cells as cluster + group / (ngr + 1): numeric group codes outside 1..ngr can
    # merge cells of different clusters (1 + 4/4 == 2 + 0/4); ours keeps every cell apart
    x, cl, grp = [1.0, 2, 10, 20, 7], [1, 1, 2, 2, 3], [4, 4, 0, 0, 1]
    _close(ref["cm_group_collision"], [8.25] * 4 + [7])
    _close(cluster_means(x, cl, group=grp), [1.5, 1.5, 15, 15, 7])


# -- sort, subset, within --------------------------------------------------------------------
def _rows(frames):
    return [list(f.index + 1) for f in frames]


def test_sort_equals_r(implist, ref):
    assert _rows(implist.sort("id")) == ref["sort_id"]
    assert _rows(implist.sort(lambda d: [d.f, d.id, -d.y])) == ref["sort_f_id_negy"]
    assert _rows(implist.sort("id", ascending=False)) == ref["sort_id_decr"]
    assert _rows(implist.sort("x")) == ref["sort_x"]
    assert _rows(implist.sort("grp", ascending=False)) == ref["sort_grp_decr"]
    na_list = implist.within(_blank)
    assert _rows(na_list.sort(["f", "x"])) == ref["sort_na"]  # NA last
    assert _rows(na_list.sort(["f", "x"], ascending=False)) == ref["sort_na_decr"]  # NA last too


def _blank(d):
    d = d.copy()
    d.loc[[1, 4], "x"] = np.nan
    return d


def test_subset_equals_r(implist, ref):
    with_na = implist.within(_blank)
    for rows in (lambda d: d.x > 2, lambda d: d.x.astype("Float64") > 2):  # NA -> False
        sub = with_na.subset(rows=rows, columns=["y", "id", "x"])
        assert _rows(sub) == ref["subset_rows"]
        assert list(sub[0].columns) == ref["subset_cols"]
    cols = list(implist[0].columns)
    assert list(implist.subset(columns=[c for c in cols if c not in ("y", "f")])[0].columns) \
        == ref["subset_minus"]


def test_within_values_equal_r_column_order_documented(implist, ref):
    w = implist.within(lambda d: {"G.x": cluster_means(d.x, d.id),
                                  "I.x": d.x - cluster_means(d.x, d.id), "y": d.y * 2})
    for frame, gx in zip(w, ref["within_Gx"]):
        _close(frame["G.x"], gx)
    # R appends new columns in reverse order of creation; we append in dict order
    assert list(w[0].columns) == ref["within_cols"][:-2] + ref["within_cols"][-2:][::-1]


# -- long format, c, rbind, cbind ---------------------------------------------------------------
def _long(implist):
    parts = [f.assign(imp=v)[["imp", *f.columns]] for v, f in zip((20, 10, 30), implist[::-1])]
    return pd.concat(parts, ignore_index=True)


def test_from_long_and_jomo_equal_r(implist, data, ref):
    split = ImputedList.from_long(_long(implist), imp="imp", exclude=20)
    assert len(split) == ref["long_n"][0]
    assert [list(f.columns) for f in split] == [ref["long_cols"]] * 2
    assert [list(f["y"][:3]) for f in split] == ref["long_first_y"]
    pd.testing.assert_frame_equal(split[0], implist[1])  # 10 -> the second data set
    pd.testing.assert_frame_equal(split[1], implist[0])  # 30 -> the first
    jl = pd.concat([data.assign(Imputation=0), implist[1].assign(Imputation=2),
                    implist[0].assign(Imputation=1)], ignore_index=True)
    jomo = ImputedList.from_jomo(jl)
    assert len(jomo) == ref["jomo_n"][0]
    for frame, values in zip(jomo, ref["jomo_x_na_rows"]):
        _close(frame["x"][data["x"].isna()], values)


def test_from_long_factor_split_follows_level_order(implist, data, ref):
    long = _long(implist)
    long["imp"] = pd.Categorical(long["imp"], categories=[30, 10, 20])
    split = ImputedList.from_long(long, imp="imp")
    first_na = int(np.flatnonzero(data["x"].isna())[0])
    assert [[f["x"][first_na]] for f in split] == ref["long_factor_first_x"]


def test_concat_rbind_cbind_equal_r(implist, ref):
    assert len(implist.concat(implist[:2])) == ref["c_len"][0]
    assert [len(f) for f in implist.rbind(implist)] == ref["rbind_nrow"]
    cb = implist.cbind({"b": [1, 2, 3]})  # one value per imputation, as R's Map
    assert [list(pd.unique(f["b"])) for f in cb] == ref["cbind_b"]
    assert list(cb[0].columns) == ref["cbind_cols"]


# -- write_mplus ------------------------------------------------------------------------------
def test_write_mplus_fields_equal_r(implist, tmp_path):
    frames = [f.assign(flag=f.y > 10) for f in implist]
    frames[1].loc[0, "grp"] = "c"  # a level only the second data set has
    paths = ImputedList(frames).write_mplus(tmp_path, name="imp")
    r_dir = os.path.join(HERE, "mplus")
    with open(os.path.join(r_dir, "implist.dat")) as handle:  # R: names with the folder
        assert [os.path.basename(p) for p in handle.read().split()] == \
            (tmp_path / "implist.dat").read_text().split()
    columns = list(frames[0].columns)
    for i, path in enumerate(paths["data"], start=1):
        ours = pd.read_csv(path, sep="\t", header=None, names=columns,
                           float_precision="round_trip")
        theirs = pd.read_csv(os.path.join(r_dir, f"imp{i}.dat"), sep="\t", header=None,
                             names=columns, float_precision="round_trip")
        assert ours.shape == theirs.shape == (24, 7)
        np.testing.assert_array_equal(ours["x"], frames[i - 1]["x"])  # ours: full precision
        np.testing.assert_allclose(ours["x"], theirs["x"], rtol=1e-14)  # R: 15 digits
        same = [c for c in columns if c not in ("flag", "x")]
        np.testing.assert_array_equal(ours[same].to_numpy(), theirs[same].to_numpy())
        np.testing.assert_array_equal(ours["flag"], theirs["flag"] - 1)  # 0/1 against 1/2
        assert (ours["f"] == -999).sum() == 1
    log = (tmp_path / "imp.log").read_text()
    r_log = open(os.path.join(r_dir, "imp.log")).read()
    for block in ("f:\nlo = 1\nmid = 2\nhi = 3\nzz = 4\n",
                  "sid:\nc1 = 1\nc2 = 2\nc3 = 3\nc4 = 4\nc5 = 5\nc6 = 6\n"):
        assert block in log and block in r_log
    # R's table is the last data set's (a, b); ours covers every data set (a, b, c)
    assert "grp:\na = 1\nb = 2\n\n" in r_log and "grp:\na = 1\nb = 2\nc = 3\n" in log
    assert "id x y grp f sid flag" in log and "id x y grp f sid flag" in r_log
    inp = (tmp_path / "imp.inp").read_text()
    r_inp = open(os.path.join(r_dir, "imp.inp")).read()
    for line in ("  type = imputation;", "  names = id x y grp f sid flag;",
                 "  missing = all (-999);", "DATA:", "VARIABLE:", "TITLE:"):
        assert line in inp.splitlines() and line in r_inp.splitlines()


def test_write_mplus_sep_dec_suffix_equal_r(implist, tmp_path):
    paths = implist.write_mplus(tmp_path, name="alt", na_value=-99, sep=";", dec=",",
                                suffix="_files")
    r_dir = os.path.join(HERE, "mplus")
    assert paths["list"] == str(tmp_path / "alt_files.dat")
    assert (tmp_path / "alt_files.dat").read_text().split() == ["alt1.dat", "alt2.dat", "alt3.dat"]
    assert "  file = alt_files.dat;" in (tmp_path / "alt.inp").read_text().splitlines()
    assert "  missing = all (-99);" in (tmp_path / "alt.inp").read_text().splitlines()
    for i, path in enumerate(paths["data"], start=1):
        read = dict(sep=";", decimal=",", header=None, float_precision="round_trip")
        ours = pd.read_csv(path, **read)
        theirs = pd.read_csv(os.path.join(r_dir, f"alt{i}.dat"), **read)
        np.testing.assert_allclose(ours.to_numpy(float), theirs.to_numpy(float), rtol=1e-14)
        assert (ours.to_numpy() == -99).sum() == (theirs.to_numpy() == -99).sum() == 1
        first = open(path).readline().rstrip("\n").split(";")
        assert first[1] == "1,5" and len(first) == 6


def test_write_mplus_argument_errors(implist, tmp_path):
    from mitml_jax.errors import MitmlError

    with pytest.raises(MitmlError, match="'dec'"):
        implist.write_mplus(tmp_path, dec=";")
    with pytest.raises(MitmlError, match="'sep'"):
        implist.write_mplus(tmp_path, sep=",", dec=",")


# -- write_spss -------------------------------------------------------------------------------
def _spss_list(implist):
    frames = [f.copy() for f in implist]
    frames[1].loc[2, "sid"] = np.nan
    return ImputedList(frames)


@pytest.mark.parametrize("name,kwargs", [
    ("imp", {}), ("alt", dict(sep=";", dec=",", na_value=-9, locale="de_DE"))])
def test_write_spss_equals_r_but_numbers_imputations_from_one(implist, tmp_path, name, kwargs):
    paths = _spss_list(implist).write_spss(tmp_path, name=name, **kwargs)
    r_dir = os.path.join(HERE, "spss")
    read = dict(sep=kwargs.get("sep", "\t"), decimal=kwargs.get("dec", "."),
                float_precision="round_trip", keep_default_na=False)
    ours = pd.read_csv(paths["data"], **read)
    theirs = pd.read_csv(os.path.join(r_dir, f"{name}.dat"), **read)
    assert list(ours.columns) == list(theirs.columns) == ["Imputation_", *implist[0].columns]
    # B12: R numbers the imputations 0..m-1, SPSS's code for the original data; ours 1..m
    np.testing.assert_array_equal(ours["Imputation_"], theirs["Imputation_"] + 1)
    for col in ("id", "x", "y", "f"):
        np.testing.assert_allclose(ours[col].to_numpy(float), theirs[col].to_numpy(float),
                                   rtol=1e-14, err_msg=col)
    for col in ("grp", "sid"):
        assert ours[col].astype(str).tolist() == theirs[col].astype(str).tolist()
    na = str(kwargs.get("na_value", -999))
    assert (ours["sid"].astype(str) == na).sum() == 1 and (ours["f"] == int(na)).sum() == 3
    # the syntax file is R's line for line, apart from the data file's path
    ours_sps = open(paths["syntax"]).read().split("\n")
    theirs_sps = open(os.path.join(r_dir, f"{name}.sps")).read().split("\n")
    file_line = [i for i, line in enumerate(theirs_sps) if line.startswith(" /FILE=")]
    assert ours_sps[file_line[0]] == f' /FILE="{name}.dat"'
    del ours_sps[file_line[0]], theirs_sps[file_line[0]]
    assert ours_sps == theirs_sps


def test_write_spss_original_and_edge_cases(implist, data, tmp_path):
    paths = implist.write_spss(tmp_path, original=data, syntax=False)
    assert paths["syntax"] is None
    out = pd.read_csv(paths["data"], sep="\t")
    assert out["Imputation_"].tolist() == [k for k in range(4) for _ in range(len(data))]
    assert (out.loc[out.Imputation_ == 0, "x"] == -999).sum() == data["x"].isna().sum()
    # no categorical or string columns: no VALUE LABELS, one MISSING VALUES list
    plain = ImputedList([f[["id", "x"]].assign(b=f.y > 10) for f in implist])
    sps = open(plain.write_spss(tmp_path, name="plain")["syntax"]).read()
    assert "VALUE LABELS" not in sps
    assert sps.endswith("MISSING VALUES\n Imputation_ id x b (-999) .\n")
    assert " b F4.2" in sps  # booleans as 0/1 numbers
    from mitml_jax.errors import MitmlError

    with pytest.raises(MitmlError, match="decimal mark"):
        implist.write_spss(tmp_path, dec=";")
    with pytest.raises(MitmlError, match="not in 'original'"):
        implist.write_spss(tmp_path, original=data[["id"]])


def test_write_spss_from_imputations_includes_original(tmp_path):
    from diagnostics_fakes import fake_imputations
    from mitml_jax.results.io import write_spss

    imp = fake_imputations(m=3)
    out = pd.read_csv(write_spss(imp, tmp_path, name="sr")["data"], sep="\t")
    n = len(imp.data)
    assert out["Imputation_"].tolist() == [k for k in range(4) for _ in range(n)]
    assert ((out.ReadDis == -999).to_numpy()[:n]).sum() == imp.data.ReadDis.isna().sum()
    assert not (out.ReadDis[n:] == -999).any()
    sps = (tmp_path / "sr.sps").read_text()
    assert " /FedState\n 1 'B'\n 2 'SH'\n /Sex\n 1 'Boy'\n 2 'Girl' .\n" in sps
