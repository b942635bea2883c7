"""The mitml-jax command line: a CSV with missing values in, long CSV of m imputations out."""

import pickle

import numpy as np
import pandas as pd
import pytest

from mitml_jax import ImputedList, load_studentratings
from mitml_jax.cli import main


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    load_studentratings()[["ID", "Sex", "ReadDis", "SES"]].to_csv(path, index=False)
    return path


def test_impute_round_trip(csv_path, tmp_path, capsys):
    out = tmp_path / "imputed.csv"
    run = tmp_path / "run.pkl"
    code = main(["impute", str(csv_path), "--formula", "ReadDis + SES ~ 1 + Sex + (1|ID)",
                 "--m", "3", "--chains", "3", "--n-burn", "20", "--n-iter", "5", "--seed", "1",
                 "--out", str(out), "--save-run", str(run), "--quiet"])
    assert code == 0
    long = pd.read_csv(out)
    implist = ImputedList.from_long(long, imp=".imp")
    assert len(implist) == 3
    original = pd.read_csv(csv_path)
    for frame in implist:
        assert len(frame) == len(original)
        assert not frame[["ReadDis", "SES"]].isna().any().any()
        observed = original["SES"].notna().to_numpy()
        np.testing.assert_array_equal(frame["SES"].to_numpy()[observed],
                                      original["SES"].to_numpy()[observed])
    with open(run, "rb") as handle:
        assert pickle.load(handle).m == 3

    assert main(["summary", "--run", str(run)]) == 0
    assert "Across chains" in capsys.readouterr().out


def test_bad_input_exits_nonzero(csv_path, tmp_path, capsys):
    code = main(["impute", str(csv_path), "--formula", "Nope ~ 1 + (1|ID)", "--m", "2",
                 "--n-burn", "5", "--n-iter", "2", "--out", str(tmp_path / "x.csv"), "--quiet"])
    assert code == 2
    assert "Nope" in capsys.readouterr().err
    assert main(["impute", str(tmp_path / "missing.csv"), "--formula", "a ~ 1 + (1|b)",
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert main(["impute", str(csv_path), "--formula", "ReadDis ~ 1 + (1|ID)", "--m", "2",
                 "--out", str(tmp_path / "x.txt"), "--n-burn", "5", "--n-iter", "2",
                 "--quiet"]) == 2
