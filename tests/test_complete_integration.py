"""Completion of real pan_impute / jomo_impute output on mitml's data sets.

Marked slow: compiling the sampler dominates (about 10 to 40 s each on the shared 2-core machine).
Run with ``pytest -m slow tests/test_complete_integration.py``.
"""

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax import ImputedList, read_implist


def _sampler(name):
    try:
        return getattr(mj, name)
    except (ImportError, AttributeError) as err:  # sampler not in this checkout yet
        pytest.skip(f"{name} not available: {err}")


def _check_completed(data, implist, targets, m):
    assert isinstance(implist, ImputedList) and len(implist) == m
    n_missing = int(data[targets].isna().sum().sum())
    assert n_missing > 0
    for frame in implist:
        assert list(frame.columns)[: data.shape[1]] == list(data.columns)
        assert frame.index.equals(data.index)
        for name in data.columns:
            assert frame[name].dtype == data[name].dtype, name
            mask = data[name].notna().to_numpy()
            np.testing.assert_array_equal(  # observed cells bit for bit
                frame[name].to_numpy()[mask], data[name].to_numpy()[mask]
            )
        assert not frame[targets].isna().any().any()
        changed = (frame[data.columns].isna() != data.isna()).to_numpy().sum()
        assert changed == n_missing  # exactly the missing target cells were filled
        assert data[[c for c in data.columns if c not in targets]].isna().sum().equals(
            frame[[c for c in data.columns if c not in targets]].isna().sum()
        )


@pytest.mark.slow
def test_pan_studentratings_complete_and_round_trip(tmp_path):
    pan_impute = _sampler("pan_impute")
    data = mj.load_studentratings()
    data.index = pd.RangeIndex(1000, 1750)  # a non-default index must survive
    before = data.copy()
    m = 4
    imp = pan_impute(
        data, formula="ReadDis + SES ~ 1 + Sex + (1|ID)", n_burn=50, n_iter=5, m=m, seed=11,
        progress=False,
    )
    pd.testing.assert_frame_equal(data, before)
    implist = imp.complete()
    _check_completed(data, implist, ["ReadDis", "SES"], m)
    assert len(imp.index) == int(data[["ReadDis", "SES"]].isna().sum().sum())
    assert list(implist[0]["Sex"].cat.categories) == ["Boy", "Girl"]
    assert not implist[0]["SES"].equals(implist[1]["SES"])  # imputations differ
    pd.testing.assert_frame_equal(imp.complete(0), data)

    path = tmp_path / "pan.parquet"
    implist.write(path)
    for a, b in zip(read_implist(path), implist):
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True)


@pytest.mark.slow
def test_jomo_leadership_level2_constant_within_cluster():
    jomo_impute = _sampler("jomo_impute")
    data = mj.load_leadership()
    imp = jomo_impute(
        data, formula=["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"], n_burn=30,
        n_iter=5, m=2, seed=5, progress=False,
    )
    implist = imp.complete()
    _check_completed(data, implist, ["JOBSAT", "NEGLEAD", "WLOAD", "COHES"], 2)
    for frame in implist:
        assert frame.groupby("GRPID")["COHES"].nunique().max() == 1
        assert list(frame["WLOAD"].cat.categories) == ["low", "high"]
