"""The mitml-jax command line: a CSV with missing values in, long CSV of m imputations out."""

import os
import pickle

import numpy as np
import pandas as pd
import pytest

import mitml_jax
from mitml_jax import Imputations, ImputedList, load_studentratings
from mitml_jax.cli import build_parser, main


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
    assert Imputations.load(run).m == 3  # --save-run writes Imputations.save's format

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


QUICK = ["--m", "2", "--n-burn", "5", "--n-iter", "2", "--quiet"]
FORMULA = "ReadDis + SES ~ 1 + Sex + (1|ID)"


@pytest.fixture
def no_sampling(monkeypatch):
    """Errors that can be found from the arguments must come before the sampler runs."""
    def refuse(*args, **kwargs):
        raise AssertionError("the sampler ran before the arguments were checked")

    monkeypatch.setattr(mitml_jax, "pan_impute", refuse)
    monkeypatch.setattr(mitml_jax, "jomo_impute", refuse)


def _error(capsys, argv):
    """Run the command line; it must end with status 2 and a one-line message (no traceback)."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mitml-jax: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("kind", ["missing_folder", "directory", "data_file", "wrong_extension"])
def test_out_path_checked_before_sampling(csv_path, tmp_path, capsys, no_sampling, kind):
    out = {"missing_folder": tmp_path / "nope" / "x.csv", "directory": tmp_path,
           "data_file": csv_path, "wrong_extension": tmp_path / "x.txt"}[kind]
    before = csv_path.read_bytes()
    err = _error(capsys, ["impute", str(csv_path), "--formula", FORMULA, *QUICK, "--out", str(out)])
    assert "--out" in err
    assert csv_path.read_bytes() == before  # the data file is never overwritten


@pytest.mark.parametrize("kind", ["missing_folder", "directory", "data_file", "same_as_out"])
def test_save_run_path_checked_before_sampling(csv_path, tmp_path, capsys, no_sampling, kind):
    out = tmp_path / "x.csv"
    run = {"missing_folder": tmp_path / "nope" / "r.pkl", "directory": tmp_path,
           "data_file": csv_path, "same_as_out": out}[kind]
    err = _error(capsys, ["impute", str(csv_path), "--formula", FORMULA, *QUICK, "--out", str(out),
                          "--save-run", str(run)])
    assert "--save-run" in err
    assert not out.exists()


def test_unreadable_data_files_are_named(tmp_path, capsys, no_sampling):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not parquet")
    for path in (empty, broken, tmp_path):
        err = _error(capsys, ["impute", str(path), "--formula", FORMULA, *QUICK,
                              "--out", str(tmp_path / "x.csv")])
        assert repr(str(path)) in err


def test_parquet_without_pyarrow_is_refused_before_sampling(csv_path, tmp_path, capsys, no_sampling,
                                                            monkeypatch):
    from mitml_jax import cli

    monkeypatch.setattr(cli, "_have_parquet", lambda: False)
    out = tmp_path / "x.parquet"
    err = _error(capsys, ["impute", str(csv_path), "--formula", FORMULA, *QUICK, "--out", str(out)])
    assert "--out" in err and "pip install 'mitml-jax[parquet]'" in err
    assert err.replace(str(out), "").count("pyarrow") == 1
    data = tmp_path / "data.parquet"
    data.write_bytes(b"PAR1")
    err = _error(capsys, ["impute", str(data), "--formula", FORMULA, *QUICK,
                          "--out", str(tmp_path / "x.csv")])
    assert repr(str(data)) in err
    assert err.replace(str(data), "").count("pyarrow") == 1  # one hint, not pandas' too


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_out_path_not_writable_is_refused_before_sampling(csv_path, tmp_path, capsys, no_sampling,
                                                         monkeypatch, kind):
    """Checked by permission, not by writing (tests run as root, which may write anywhere)."""
    from mitml_jax import cli

    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "x.csv"
    if kind == "file":
        out.write_text("keep")
    real = os.access
    target = str(locked) if kind == "folder" else str(out)
    monkeypatch.setattr(cli.os, "access", lambda path, mode: str(path) != target and real(path, mode))
    err = _error(capsys, ["impute", str(csv_path), "--formula", FORMULA, *QUICK, "--out", str(out)])
    assert "--out" in err and ("not writable" if kind == "folder" else "read-only") in err
    if kind == "file":
        assert out.read_text() == "keep"


def test_model_options_that_contradict_each_other(csv_path, tmp_path, capsys, no_sampling):
    out = ["--out", str(tmp_path / "x.csv")]
    err = _error(capsys, ["impute", str(csv_path), "--type", "-2 a 1 1", *QUICK, *out])
    assert "--type '-2 a 1 1'" in err
    err = _error(capsys, ["impute", str(csv_path), "--formula", FORMULA, "--method", "pan",
                          "--formula-l2", "x ~ 1", *QUICK, *out])
    assert "--formula-l2" in err and "jomo" in err
    err = _error(capsys, ["impute", str(csv_path), "--formula", FORMULA, "--random-l1", "full",
                          *QUICK, *out])
    assert "--random-l1" in err and "--method jomo" in err  # pan used to ignore it silently
    err = _error(capsys, ["impute", str(csv_path), "--type", "-2 2 1 1", "--formula-l2", "x ~ 1",
                          *QUICK, *out])
    assert "--formula-l2" in err


def test_run_files(csv_path, tmp_path, capsys):
    """--run reads Imputations.save files and plain pickles of the object (earlier --save-run);
    anything else is one line naming --run; --run with a data file is refused."""
    imp = mitml_jax.pan_impute(pd.read_csv(csv_path), formula=FORMULA, n_burn=5, n_iter=2, m=2,
                               chains=2, seed=1, progress=False)
    saved, dropped, plain = tmp_path / "saved.pkl", tmp_path / "dropped.pkl", tmp_path / "plain.pkl"
    imp.save(saved)
    imp.save(dropped, drop=True)
    with open(plain, "wb") as handle:
        pickle.dump(imp, handle)
    for path in (saved, plain):
        assert main(["summary", "--run", str(path)]) == 0
        assert "Across chains" in capsys.readouterr().out
    other = tmp_path / "other.pkl"
    with open(other, "wb") as handle:
        pickle.dump({"a": 1}, handle)
    for path in (other, csv_path, tmp_path, tmp_path / "missing.pkl"):
        assert "--run" in _error(capsys, ["summary", "--run", str(path)])
    assert "dropped" in _error(capsys, ["summary", "--run", str(dropped)])
    assert "not both" in _error(capsys, ["summary", str(csv_path), "--formula", FORMULA,
                                         "--run", str(saved)])

    folder = tmp_path / "plots"
    assert main(["plot", "--run", str(saved), "--print", "beta, sigma", "--folder", str(folder),
                 "--quiet"]) == 0
    names = os.listdir(folder)
    assert any(n.startswith("BETA_") for n in names) and any(n.startswith("SIGMA_") for n in names)
    assert not any(n.startswith("PSI_") for n in names)
    assert capsys.readouterr().err == ""  # --quiet: no message
    assert "--folder" in _error(capsys, ["plot", "--run", str(saved), "--folder", str(csv_path)])


def test_help_states_the_defaults():
    parser = build_parser()
    impute = parser._subparsers._group_actions[0].choices["impute"]
    text = impute.format_help()
    for default in ("(10)", "(1)", "(5000)", "(100)", "(none)"):
        assert default in text
    for action in impute._actions:
        if action.dest not in ("help",):
            assert action.help, f"--{action.dest} has no help text"


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mitml_jax", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "impute" in out.stdout and "summary" in out.stdout
