"""Iteration counts may be whole-number floats, as in mitml (R's numbers are doubles).

``panImpute(..., n.burn = 20.0)`` works in R; here ``n_burn=20.0`` (a float, a NumPy float or a
0-d array) is taken as ``20`` by every entry point that reads counts (``pan_impute``,
``jomo_impute``, ``Imputations.extend``, ``impute_in_stages``; ``mitml_complete``'s ``print``
has its own check). Bools, fractions, NaN/inf and strings are still refused, naming the argument.
Runs are tiny (the bad-input battery's data, ``n_iter`` 1 or 2) and compare the float run with
the int run bit for bit.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas.testing as pdt
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError, MitmlTypeError
from mitml_jax.results.checkpoint import impute_in_stages
from mitml_jax.sampling.arguments import check_count

from test_reliability_bad_input import FORMULA, tiny

KW = {"seed": 5, "progress": False}


# -- check_count -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [20, np.int32(20), 20.0, np.float64(20.0), np.float32(20.0),
                                   np.array(20.0), np.array(20), jnp.asarray(20.0)],
                         ids=["int", "np.int32", "float", "np.float64", "np.float32", "0-d float array",
                              "0-d int array", "0-d jax array"])
def test_whole_numbers_are_accepted_as_int(value):
    got = check_count("n_burn", value, 0)
    assert got == 20 and type(got) is int


def test_zero_float_meets_minimum_zero():
    assert check_count("n_burn", 0.0, 0) == 0


@pytest.mark.parametrize("value, pattern", [
    (20.5, "'n_burn' must be a whole number"),
    (np.float64(2.25), "'n_burn' must be a whole number"),
    (np.array(1.5), "'n_burn' must be a whole number"),
    (float("nan"), "'n_burn' must be a finite whole number"),
    (float("inf"), "'n_burn' must be a finite whole number"),
    (-np.inf, "'n_burn' must be a finite whole number"),
    (True, "'n_burn' must be an integer"),
    (np.bool_(False), "'n_burn' must be an integer"),
    (np.array(True), "'n_burn' must be an integer"),
    ("20", "'n_burn' must be an integer"),
    (None, "'n_burn' must be an integer"),
    ([20], "'n_burn' must be an integer"),
    (np.array([20.0]), "'n_burn' must be an integer"),
    (20 + 0j, "'n_burn' must be an integer"),
], ids=["20.5", "np.float64 2.25", "0-d 1.5", "nan", "inf", "-inf", "True", "np.False_", "0-d bool",
        "string", "None", "list", "1-d array", "complex"])
def test_non_whole_numbers_are_refused(value, pattern):
    with pytest.raises(MitmlTypeError, match=pattern):
        check_count("n_burn", value, 0)


def test_whole_float_below_minimum_is_refused():
    with pytest.raises(MitmlError, match=r"'m' must be an integer >= 1, got 0\b"):
        check_count("m", 0.0, 1)
    with pytest.raises(MitmlError, match=r"'n_burn' must be an integer >= 0, got -1\b"):
        check_count("n_burn", -1.0, 0)


# -- the public entry points -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pan_int():
    return mj.pan_impute(tiny(), FORMULA, n_burn=2, n_iter=1, m=2, chains=1, **KW)


def _same_run(a, b):
    assert np.array_equal(a.replacement, b.replacement)
    for block in a.imputation:
        assert np.array_equal(a.imputation[block], b.imputation[block]), block
        assert np.array_equal(a.burnin[block], b.burnin[block]), block


def test_pan_impute_takes_whole_floats(pan_int):
    imp = mj.pan_impute(tiny(), FORMULA, n_burn=2.0, n_iter=np.float64(1.0), m=2.0, chains=np.array(1.0), **KW)
    _same_run(imp, pan_int)
    for name in ("n_burn", "n_iter", "m", "chains"):
        assert type(getattr(imp, name)) is int, name
    assert imp.call == pan_int.call  # "n_burn=2", not "n_burn=2.0"


@pytest.mark.parametrize("name, value, pattern", [
    ("n_burn", 2.5, "'n_burn' must be a whole number"),
    ("n_iter", float("nan"), "'n_iter' must be a finite whole number"),
    ("m", float("inf"), "'m' must be a finite whole number"),
    ("chains", 1.5, "'chains' must be a whole number"),
])
def test_pan_impute_refuses_fractions_and_non_finite(name, value, pattern):
    data = tiny()
    before = data.copy()
    args = {"n_burn": 2, "n_iter": 1, "m": 2, **KW, name: value}
    with pytest.raises(MitmlTypeError, match=pattern):
        mj.pan_impute(data, FORMULA, **args)
    pdt.assert_frame_equal(data, before)


def test_jomo_impute_takes_whole_floats_and_refuses_fractions():
    kw = {"formula": "y1 ~ 1 + x + (1|id)", "n_iter": 1, **KW}
    a = mj.jomo_impute(tiny(), n_burn=2, m=1, **kw)
    b = mj.jomo_impute(tiny(), n_burn=2.0, m=np.float32(1.0), **kw)
    assert np.array_equal(a.replacement, b.replacement)
    assert b.m == 1 and type(b.n_burn) is int
    with pytest.raises(MitmlTypeError, match="'n_burn' must be a whole number"):
        mj.jomo_impute(tiny(), n_burn=2.5, m=1, **kw)


def test_extend_takes_whole_floats(pan_int):
    a = pan_int.extend(m=1, progress=False)
    b = pan_int.extend(m=1.0, n_iter=1.0, progress=False)
    _same_run(a, b)
    assert b.m == 3 and b.call == a.call
    with pytest.raises(MitmlTypeError, match="'m' must be a whole number"):
        pan_int.extend(m=1.5)
    with pytest.raises(MitmlTypeError, match="'n_iter' must be an integer"):
        pan_int.extend(m=1, n_iter=True)


def test_impute_in_stages_checks_its_counts(pan_int):
    staged = impute_in_stages(mj.pan_impute, tiny(), m=2.0, stage=1.0, formula=FORMULA, n_burn=2, n_iter=1,
                              **KW)
    assert staged.m == 2 and np.array_equal(staged.replacement, pan_int.replacement)
    # a fraction is refused before any sampling (int(2.5) used to run 3 imputations silently)
    with pytest.raises(MitmlTypeError, match="'m' must be a whole number"):
        impute_in_stages(mj.pan_impute, tiny(), m=2.5, stage=1, formula=FORMULA, **KW)
    with pytest.raises(MitmlTypeError, match="'stage' must be a whole number"):
        impute_in_stages(mj.pan_impute, tiny(), m=2, stage=0.5, formula=FORMULA, **KW)
    with pytest.raises(MitmlError, match="'stage' must be an integer >= 1"):
        impute_in_stages(mj.pan_impute, tiny(), m=2, stage=0, formula=FORMULA, **KW)


def test_mitml_complete_print_takes_whole_floats(pan_int):
    pdt.assert_frame_equal(mj.mitml_complete(pan_int, print=2.0), mj.mitml_complete(pan_int, print=2))
    got = mj.mitml_complete(pan_int, print=[np.float64(1.0), 2.0])
    for x, y in zip(got, mj.mitml_complete(pan_int, print=[1, 2])):
        pdt.assert_frame_equal(x, y)
    with pytest.raises(MitmlError, match="'print'"):
        mj.mitml_complete(pan_int, print=1.5)
