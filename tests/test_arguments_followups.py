"""Whole-number floats and clear errors for the remaining numeric arguments (after 79ea6f0).

R's numbers are doubles, so mitml takes ``summary(imp, n.Rhat = 3.0)``, ``plot(imp, thin = 1.0,
group = 1.0)`` and ``panImpute(..., seed = 123.0)``; here a whole finite float counts as the int
(through :func:`~mitml_jax.sampling.arguments.check_count`), and NaN, infinities, fractions,
bools, strings and the like are refused with a MitmlError/MitmlTypeError naming the argument,
never a raw ValueError/OverflowError/TypeError. ``devices`` (a count or a list of devices) does
the same, and ``repr`` of an object saved with ``save(path, drop=True)`` says that its parameter
draws were dropped.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mitml_jax as mj
from diagnostics_fakes import fake_imputations
from mitml_jax.errors import MitmlError, MitmlTypeError
from mitml_jax.sampling.arguments import rng_key_and_seed
from mitml_jax.sampling.sharding import chain_mesh

from test_reliability_bad_input import FORMULA, tiny

class Opaque:
    """A value of no accepted kind, with a stable repr (test ids)."""

    def __repr__(self):
        return "<opaque>"


KW = {"n_burn": 2, "n_iter": 1, "m": 2, "chains": 1, "progress": False}


@pytest.fixture(scope="module")
def imp():
    return fake_imputations(groups=2, n_burn=20, n_iter=5, m=4)


# -- 1. summary ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [3.0, np.float64(3.0), np.float32(3.0), np.array(3.0)],
                         ids=["float", "np.float64", "np.float32", "0-d array"])
def test_summary_n_rhat_whole_float_equals_int(imp, value):
    a = imp.summary(n_rhat=value)
    b = imp.summary(n_rhat=3)
    assert a.n_rhat == 3 and type(a.n_rhat) is int
    assert a.to_frame().equals(b.to_frame())
    assert str(a) == str(b)


@pytest.mark.parametrize("value", [1, 1.0, 0.0, -2.0, None])
def test_summary_n_rhat_below_two_or_none_skips_segment_rhat(imp, value):
    s = imp.summary(n_rhat=value)
    assert s.n_rhat is None and "Rhat" not in s.stats


@pytest.mark.parametrize("value, pattern", [
    (float("nan"), "'n_rhat' must be a finite whole number"),
    (float("inf"), "'n_rhat' must be a finite whole number"),
    (-np.inf, "'n_rhat' must be a finite whole number"),
    (2.5, "'n_rhat' must be a whole number"),
    (True, "'n_rhat' must be an integer"),
    ("3", "'n_rhat' must be an integer"),
    ([3], "'n_rhat' must be an integer"),
], ids=["nan", "inf", "-inf", "2.5", "True", "string", "list"])
def test_summary_n_rhat_refused_by_name(imp, value, pattern):
    with pytest.raises(MitmlTypeError, match=pattern) as info:
        imp.summary(n_rhat=value)
    assert "None or a whole number below 2 skips the segment R-hat" in str(info.value)


@pytest.mark.parametrize("name", ["goodness_of_appr", "autocorrelation"])
@pytest.mark.parametrize("value", [np.array([True, False]), float("nan"), "yes", None, 1],
                         ids=["array", "nan", "string", "None", "int"])
def test_summary_flags_must_be_bool(imp, name, value):
    with pytest.raises(MitmlTypeError, match=f"'{name}' must be True or False"):
        imp.summary(**{name: value})


def test_summary_flags_accept_numpy_bools(imp):
    s = imp.summary(goodness_of_appr=np.True_, autocorrelation=np.bool_(True))
    assert s.stats == ("Rhat", "SDprop", "ACF")
    assert imp.summary(goodness_of_appr=np.False_).stats == ("Rhat",)


# -- 2. plot -------------------------------------------------------------------------------------
def _picture(figures):
    """Everything drawn: per axes, the line data and texts (enough to tell two plots apart)."""
    out = []
    for fig in figures:
        for ax in fig.get_axes():
            out.append([np.asarray(line.get_xydata()).tolist() for line in ax.lines])
            out.append([t.get_text() for t in ax.texts] + [ax.get_title()])
    return out


def test_plot_whole_floats_equal_ints(imp):
    ints = imp.plot(print="beta", pos=(1, 1), group=2, thin=2, smooth=3, n_rhat=3)
    floats = imp.plot(print="beta", pos=(1.0, np.float64(1.0)), group=2.0, thin=2.0, smooth=3.0,
                      n_rhat=3.0)
    assert len(ints) == len(floats) == 1
    assert _picture(floats) == _picture(ints)
    assert _picture(imp.plot(print="beta", pos=(1, 1), group=[1.0, np.int64(2)], thin=np.float32(1))) \
        == _picture(imp.plot(print="beta", pos=(1, 1), group=[1, 2], thin=1))


def test_plot_group_zero_d_array(imp):
    assert _picture(imp.plot(print="beta", pos=(1, 1), group=np.array(2))) == \
        _picture(imp.plot(print="beta", pos=(1, 1), group=2))


def test_plot_n_rhat_none_or_below_two_leaves_rhat_out(imp):
    for value in (None, 1.0):
        text = imp.plot(print="beta", pos=(1, 1), group=1, n_rhat=value)[0].get_axes()[3].texts[0].get_text()
        assert "Rhat:  NA" in text and "nan" not in text


def test_plot_tiny_smooth_gives_widest_window_not_overflow(imp):
    figs = imp.plot(print="beta", pos=(1, 1), group=1, smooth=1e-320)
    assert len(figs) == 1


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"thin": 0}, MitmlError, "'thin' must be an integer >= 1"),
    ({"thin": 1.5}, MitmlTypeError, "'thin' must be a whole number"),
    ({"thin": float("nan")}, MitmlTypeError, "'thin' must be a finite whole number"),
    ({"thin": True}, MitmlTypeError, "'thin' must be an integer"),
    ({"thin": "2"}, MitmlTypeError, "'thin' must be an integer"),
    ({"group": 1.5}, MitmlTypeError, "'group' must be 'all' or whole numbers between 1 and 2"),
    ({"group": 3.0}, MitmlError, "'group' must be 'all' or whole numbers between 1 and 2"),
    ({"group": 0}, MitmlError, "'group' must be 'all' or whole numbers between 1 and 2"),
    ({"group": True}, MitmlTypeError, "'group' must be 'all' or whole numbers"),
    ({"group": float("nan")}, MitmlTypeError, "'group' must be 'all' or whole numbers"),
    ({"group": []}, MitmlError, "'group' must be 'all' or whole numbers"),
    ({"group": Opaque()}, MitmlTypeError, "'group' must be 'all' or whole numbers"),
    ({"smooth": float("nan")}, MitmlError, "'smooth' must be a non-negative number or None"),
    ({"smooth": -1.0}, MitmlError, "'smooth' must be a non-negative number or None"),
    ({"n_rhat": float("nan")}, MitmlTypeError, "'n_rhat' must be a finite whole number"),
    ({"n_rhat": float("inf")}, MitmlTypeError, "'n_rhat' must be a finite whole number"),
    ({"n_rhat": "3"}, MitmlTypeError, "'n_rhat' must be an integer"),
    ({"pos": (1.5, 1)}, MitmlTypeError, "'pos' must be a whole number"),
    ({"pos": ("a", 1)}, MitmlTypeError, "'pos' must be an integer"),
    ({"pos": (float("nan"), 1)}, MitmlTypeError, "'pos' must be a finite whole number"),
    ({"pos": (0, 1)}, MitmlError, "'pos' must be an integer >= 1"),
    ({"pos": 3}, MitmlTypeError, r"'pos' must be \(row, col\)"),
    ({"pos": (1, 2, 3)}, MitmlTypeError, r"'pos' must be \(row, col\)"),
], ids=lambda v: ",".join(f"{k}={x!r}" for k, x in v.items()) if isinstance(v, dict) else "")
def test_plot_bad_values_refused_by_name(imp, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        imp.plot(print="beta", **kwargs)


def test_plot_pos_fraction_is_not_truncated(imp):
    # (1.5, 1) used to be read as int(1.5) = 1, plotting entry [1,1] silently
    with pytest.raises(MitmlTypeError, match="'pos'"):
        imp.plot(print="beta", pos=(1.5, 1), group=1)


# -- 3. devices ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1.0, np.float64(1.0), np.array(1), 1],
                         ids=["float", "np.float64", "0-d array", "int"])
def test_devices_count_may_be_whole_float(value):
    assert chain_mesh(2, devices=value).shape == {"chains": 1}


@pytest.mark.parametrize("value", [1.5, float("nan"), True, "abc", Opaque(), [], [1], jax.devices()[0]],
                         ids=["1.5", "nan", "True", "string", "object", "empty list", "list of int",
                              "one device"])
def test_devices_wrong_type_refused_by_name(value):
    with pytest.raises(MitmlTypeError, match=r"'devices' must be None, 'all', an integer n \(the first n "
                                             r"local devices\) or a non-empty list of jax devices"):
        chain_mesh(2, devices=value)


@pytest.mark.parametrize("value", [0, 0.0, -1, 10_000, 10_000.0])
def test_devices_count_out_of_range(value):
    with pytest.raises(MitmlError, match=r"'devices' must be between 1 and the \d+ local device"):
        chain_mesh(2, devices=value)


def test_pan_impute_devices_float_runs():
    a = mj.pan_impute(tiny(), FORMULA, seed=5, **KW)
    b = mj.pan_impute(tiny(), FORMULA, seed=5, devices=1.0, **KW)
    np.testing.assert_allclose(b.replacement, a.replacement, rtol=1e-12)
    with pytest.raises(MitmlTypeError, match="'devices'"):
        mj.pan_impute(tiny(), FORMULA, seed=5, devices=Opaque(), **KW)


# -- 4. seed -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [123.0, np.float64(123.0), np.float32(123.0), -7.0],
                         ids=["float", "np.float64", "np.float32", "negative"])
def test_seed_whole_float_is_the_int_seed(value):
    key, seed = rng_key_and_seed(value)
    ref_key, ref_seed = rng_key_and_seed(int(value))
    assert seed == ref_seed and type(seed) is int
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(ref_key))


@pytest.mark.parametrize("value, error, pattern", [
    (123.5, MitmlTypeError, "'seed' must be a whole number"),
    (float("nan"), MitmlTypeError, "'seed' must be a whole number"),
    (float("inf"), MitmlTypeError, "'seed' must be a whole number"),
    (True, MitmlTypeError, "'seed' must be an integer"),
    (np.bool_(False), MitmlTypeError, "'seed' must be an integer"),
    ("123", MitmlTypeError, "'seed' must be an integer"),
    (2**64, MitmlError, "'seed' must fit in a signed 64-bit integer"),
    (1e300, MitmlError, "'seed' must fit in a signed 64-bit integer"),
], ids=["123.5", "nan", "inf", "True", "np.False_", "string", "2**64", "1e300"])
def test_seed_refused_by_name(value, error, pattern):
    with pytest.raises(error, match=pattern):
        rng_key_and_seed(value)


def test_pan_impute_seed_float_equals_int_seed():
    a = mj.pan_impute(tiny(), FORMULA, seed=123, **KW)
    b = mj.pan_impute(tiny(), FORMULA, seed=123.0, **KW)
    assert b.seed == 123 and type(b.seed) is int and b.call == a.call
    assert np.array_equal(a.replacement, b.replacement)
    # the recorded int seed continues the same chains
    assert np.array_equal(b.extend(m=1, progress=False).replacement, a.extend(m=1, progress=False).replacement)
    with pytest.raises(MitmlTypeError, match="'seed'"):
        mj.pan_impute(tiny(), FORMULA, seed=123.5, **KW)


# -- 5. repr of a dropped object -----------------------------------------------------------------
def test_repr_says_the_draws_were_dropped(tmp_path):
    run = mj.pan_impute(tiny(), FORMULA, seed=123, **KW)
    full = mj.Imputations.load(run.save(tmp_path / "full.pkl"))
    dropped = mj.Imputations.load(run.save(tmp_path / "dropped.pkl", drop=True))
    line = ("Parameter draws: dropped when saved with save(path, drop=True) "
            "(summary, plot and extend need them).\n")
    assert repr(full) == repr(run) and "Parameter draws" not in repr(run)
    assert repr(dropped) == repr(run) + line
