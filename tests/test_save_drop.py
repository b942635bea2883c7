"""``Imputations.save(path, drop=True)``: mitml's ``write.mitml(x, filename, drop = TRUE)``.

The file leaves out the parameter draws of the burn-in and imputation phases (R removes
``par.burnin``/``par.imputation``), so it is smaller. Unlike R (where dropping them also loses
the class), the loaded object is still an :class:`Imputations`: its imputations and completed
data are identical, and the methods that need the draws raise a MitmlError saying they were
dropped. Tiny runs on the bad-input battery's data (shares its compiled sampler).
"""

from __future__ import annotations

import os

import numpy as np
import pandas.testing as pdt
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError, MitmlTypeError

from test_reliability_bad_input import FORMULA, tiny

# n_burn large enough that the draws are most of the file; it does not change the compiled program
KW = {"n_burn": 60, "n_iter": 2, "m": 2, "seed": 3, "progress": False}


@pytest.fixture(scope="module")
def run():
    return mj.pan_impute(tiny(), FORMULA, **KW)


@pytest.fixture(scope="module")
def files(run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("drop")
    full = run.save(folder / "full.pkl")
    dropped = run.save(folder / "dropped.pkl", drop=True)
    return full, dropped


@pytest.fixture(scope="module")
def dropped(files):
    return mj.Imputations.load(files[1])


def test_file_is_smaller(run, files):
    full, dropped = (os.path.getsize(p) for p in files)
    draw_bytes = sum(a.nbytes for phase in (run.burnin, run.imputation) for a in phase.values())
    assert dropped < full
    assert full - dropped >= 0.95 * draw_bytes  # the draws are what went


def test_imputations_and_completed_data_are_identical(run, dropped):
    assert isinstance(dropped, mj.Imputations)
    assert dropped.m == run.m and dropped.kind == run.kind and dropped.call == run.call
    assert np.array_equal(dropped.replacement, run.replacement)
    assert np.array_equal(dropped.index, run.index)
    assert np.array_equal(dropped.imputation_source, run.imputation_source)
    pdt.assert_frame_equal(dropped.data, run.data)
    assert dropped.spec == run.spec
    for x, y in zip(mj.mitml_complete(dropped, "all"), mj.mitml_complete(run, "all")):
        pdt.assert_frame_equal(x, y, check_exact=True)
    pdt.assert_frame_equal(dropped.complete(0), run.complete(0), check_exact=True)
    pdt.assert_frame_equal(dropped.complete(2), run.complete(2), check_exact=True)


def test_draws_are_gone_but_their_layout_stays(run, dropped):
    assert dropped.draws_dropped and not run.draws_dropped
    assert dropped.blocks == run.blocks and dropped.n_groups == run.n_groups
    assert dropped.labels.keys() == run.labels.keys()
    for phase, kept in ((dropped.burnin, run.burnin), (dropped.imputation, run.imputation)):
        assert phase.keys() == kept.keys()
        for block, arr in phase.items():
            assert arr.shape == (kept[block].shape[0], 0) + kept[block].shape[2:]
            assert arr.dtype == kept[block].dtype
    assert dropped.extra["draws_dropped"] == {"burnin": KW["n_burn"], "imputation": KW["m"] * KW["n_iter"]}
    assert "Performed 60 burn-in iterations" in repr(dropped)  # printing still works


def test_the_saved_object_is_not_changed(run, files):
    assert not run.draws_dropped and "draws_dropped" not in run.extra
    assert run.imputation["beta"].shape[1] == KW["m"] * KW["n_iter"]
    assert run.burnin["beta"].shape[1] == KW["n_burn"]


@pytest.mark.parametrize("method, call", [
    ("summary", lambda imp: imp.summary()),
    ("plot", lambda imp: imp.plot()),
    ("posterior_summary", lambda imp: imp.posterior_summary()),
    ("to_arviz", lambda imp: imp.to_arviz()),
    ("extend", lambda imp: imp.extend(m=1, progress=False)),
])
def test_methods_needing_draws_say_they_were_dropped(dropped, method, call):
    with pytest.raises(MitmlError, match=rf"^{method}: .*dropped when it was saved with save\(path, "
                                         r"drop=True\)\. Save the run without drop=True"):
        call(dropped)


def test_full_file_keeps_the_draws(run, files):
    full = mj.Imputations.load(files[0])
    assert not full.draws_dropped
    for block in run.imputation:
        assert np.array_equal(full.imputation[block], run.imputation[block])
        assert np.array_equal(full.burnin[block], run.burnin[block])
    pdt.assert_frame_equal(full.posterior_summary(), run.posterior_summary())


def test_saving_a_dropped_object_again_stays_dropped(dropped, tmp_path):
    again = mj.Imputations.load(dropped.save(tmp_path / "again.pkl"))
    assert again.draws_dropped and again.extra["draws_dropped"] == dropped.extra["draws_dropped"]
    twice = mj.Imputations.load(dropped.save(tmp_path / "twice.pkl", drop=True))
    assert twice.extra["draws_dropped"] == dropped.extra["draws_dropped"]  # counts of the original run
    with pytest.raises(MitmlError, match="dropped"):
        again.summary()


@pytest.mark.parametrize("drop", ["yes", 1, None])
def test_drop_must_be_bool(run, tmp_path, drop):
    with pytest.raises(MitmlTypeError, match="'drop' must be True or False"):
        run.save(tmp_path / "x.pkl", drop=drop)
    assert not (tmp_path / "x.pkl").exists()


def test_jomo_run(tmp_path):
    kw = {"formula": "y1 ~ 1 + x + (1|id)", "n_burn": 3, "n_iter": 1, "m": 2, "seed": 2, "progress": False}
    run = mj.jomo_impute(tiny(), **kw)
    dropped = mj.Imputations.load(run.save(tmp_path / "jomo.pkl", drop=True))
    assert np.array_equal(dropped.replacement, run.replacement)
    for x, y in zip(dropped.complete("all"), run.complete("all")):
        pdt.assert_frame_equal(x, y, check_exact=True)
    with pytest.raises(MitmlError, match="^summary: .*dropped"):
        dropped.summary()
    with pytest.raises(MitmlError, match="^extend: .*dropped"):
        dropped.extend(m=1, progress=False)
