"""Parquet round trip and Mplus export of ImputedList."""

import os

import numpy as np
import pandas as pd
import pytest

from mitml_jax import ImputedList, read_implist
from mitml_jax.errors import MitmlError

pytest.importorskip("pyarrow")


def mixed_list(m=3):
    rng = np.random.default_rng(7)
    frames = []
    for i in range(m):
        n = 5
        frames.append(
            pd.DataFrame(
                {
                    "id": np.array([3, 3, 1, 1, 2], dtype=np.int32),
                    "y": rng.normal(size=n) * 1e3 + 1 / 3,
                    "w": rng.normal(size=n).astype(np.float32),
                    "f": pd.Categorical(["lo", "hi", "hi", None, "mid"], categories=["lo", "mid", "hi", "unused"], ordered=True),
                    "s": pd.array(["a", "b", None, "a", "c"], dtype="str"),
                    "nullable": pd.array([1, None, 3, 4, 5], dtype="Int64"),
                    "flag": [True, False, True, True, False],
                    "I.SES": np.array([1.5, np.nan, -2.25, 0.0, 1e-300]),
                },
                index=pd.Index([10, 11, 12, 13, 14]) if i == 1 else pd.RangeIndex(n),
            )
        )
    return ImputedList(frames)


def test_parquet_round_trip_exact(tmp_path):
    implist = mixed_list()
    path = tmp_path / "imp.parquet"
    implist.write(path)
    for back in (ImputedList.read(path), read_implist(str(path))):
        assert isinstance(back, ImputedList) and len(back) == len(implist)
        for a, b in zip(back, implist):
            pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True)
            assert type(a.index) is type(b.index)
        assert list(back[0]["f"].cat.categories) == ["lo", "mid", "hi", "unused"]
        assert back[0]["f"].cat.ordered


def test_parquet_is_a_plain_long_table(tmp_path):
    implist = mixed_list()
    path = tmp_path / "imp.parquet"
    implist.write(path)
    plain = pd.read_parquet(path)
    assert plain[".imp"].tolist() == [1] * 5 + [2] * 5 + [3] * 5


def test_read_long_file_without_metadata(tmp_path):
    implist = mixed_list()
    long = ImputedList([f.reset_index(drop=True) for f in implist]).to_long()
    path = tmp_path / "cli.parquet"
    long.to_parquet(path, index=False)  # what `mitml-jax impute --out x.parquet` writes
    back = read_implist(path)
    assert len(back) == 3
    pd.testing.assert_frame_equal(back[1], implist[1].reset_index(drop=True), check_exact=True)


def test_write_errors(tmp_path):
    with pytest.raises(MitmlError, match="no data sets"):
        ImputedList([]).write(tmp_path / "x.parquet")
    clash = ImputedList([pd.DataFrame({".imp": [1]})])
    with pytest.raises(MitmlError, match="'.imp'"):
        clash.write(tmp_path / "x.parquet")
    different = ImputedList([pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]})])
    with pytest.raises(MitmlError, match="different columns"):
        different.write(tmp_path / "x.parquet")
    with pytest.raises(MitmlError, match="not strings"):
        ImputedList([pd.DataFrame({0: [1.0]})]).write(tmp_path / "x.parquet")
    with pytest.raises(MitmlError, match="does not exist"):
        read_implist(tmp_path / "missing.parquet")


def test_write_mplus_files(tmp_path):
    implist = mixed_list(2)
    paths = implist.write_mplus(tmp_path / "mplus", name="sr")
    folder = tmp_path / "mplus"
    assert sorted(os.listdir(folder)) == ["sr.inp", "sr.log", "sr1.dat", "sr2.dat", "srlist.dat"]
    assert (folder / "srlist.dat").read_text().split() == ["sr1.dat", "sr2.dat"]
    assert paths["data"] == [str(folder / "sr1.dat"), str(folder / "sr2.dat")]

    # round_trip: pandas 3's default float parser read one value back 1 ulp off (JAX 0.11 machine)
    data = pd.read_csv(folder / "sr2.dat", sep="\t", header=None, float_precision="round_trip")
    assert data.shape == (5, 8)
    frame = implist[1]
    np.testing.assert_array_equal(data[0], frame["id"])
    np.testing.assert_array_equal(data[1], frame["y"])  # full precision
    np.testing.assert_array_equal(data[2].astype(np.float32), frame["w"])
    assert data[3].tolist() == [1, 3, 3, -999, 2]  # category codes 1..K, NA -> -999
    assert data[4].tolist() == [1, 2, -999, 1, 3]  # strings: sorted levels a, b, c
    assert data[5].tolist() == [1, -999, 3, 4, 5]
    assert data[6].tolist() == [1, 0, 1, 1, 0]
    assert data[7].tolist() == [1.5, -999, -2.25, 0.0, 1e-300]
    for line in (folder / "sr1.dat").read_text().splitlines():
        assert len(line.split("\t")) == 8

    log = (folder / "sr.log").read_text()
    assert "id y w f s nullable flag I.SES" in log
    assert "f:\nlo = 1\nmid = 2\nhi = 3\nunused = 4\n" in log
    assert "s:\na = 1\nb = 2\nc = 3\n" in log

    inp = (folder / "sr.inp").read_text()
    assert "file = srlist.dat;" in inp and "type = imputation;" in inp
    assert "missing = all (-999);" in inp
    assert "names = id y w f s nullable flag I.SES;" in inp
    assert all(len(line) <= 90 for line in inp.splitlines())  # Mplus input line limit


def test_parquet_keeps_named_and_multi_indexes(tmp_path):
    named = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index(["r1", "r2"], name="rid"))
    stepped = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.RangeIndex(0, 4, 2, name="k"))
    multi = pd.DataFrame(
        {"a": [1.0, 2.0]}, index=pd.MultiIndex.from_tuples([(1, "x"), (2, "y")], names=["p", "q"])
    )
    for k, frame in enumerate((named, stepped, multi)):
        path = tmp_path / f"i{k}.parquet"
        ImputedList([frame, frame * 2]).write(path)
        back = read_implist(path)
        pd.testing.assert_frame_equal(back[1], frame * 2, check_index_type=True)


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from mitml_jax.errors import MitmlError

    implist = ImputedList([pd.DataFrame({"a": [1.0, 2.0]})] * 2)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MitmlError, match=r"write: parquet files need pyarrow.*mitml-jax\[parquet\]"):
        implist.write(tmp_path / "x.parquet")
    (tmp_path / "y.parquet").write_bytes(b"PAR1")
    with pytest.raises(MitmlError, match="read_implist: parquet files need pyarrow"):
        read_implist(tmp_path / "y.parquet")
