"""QA (round 10) of what a user does with an imputation result, many chains and groups included.

Each test failed before its fix:

* ``to_arviz`` of a run with more chains than draws per chain (the normal many-chain run, e.g.
  200 chains x 100 draws) passed on ArviZ's "More chains than draws" UserWarning, which says the
  arrays were transposed when they were not;
* ``summary(goodness_of_appr=True)`` / ``summary(autocorrelation=True)`` left the section out
  without a word when the chains had fewer than 3 imputation-phase draws (the segment R-hat
  already warned);
* ``plot(export=...)`` with a group label, name or cluster id holding ``/`` tried to write into
  a subfolder and failed with "could not write the plots to folder" (R fails alike: "could not
  open file 'mitmlPlots/BETA_Group-Berlin/Brandenburg_ReadDis_ON_Intercept.png'");
* a float group column (and a float cluster column of jomo's stacked Sigma) was labelled
  ``Group:2.0`` / ``ID:2001.0`` in titles, file names, ``summary().to_frame()`` and ArviZ
  coordinates, where mitml writes ``Group:2`` (``paste`` of R's number).
"""

import dataclasses
import os
import warnings

import numpy as np
import pandas as pd
import pytest

from diagnostics_fakes import fake_imputations
from mitml_jax import build_spec
from mitml_jax.diagnostics.arviz_export import arviz_coords
from mitml_jax.diagnostics.entries import _cluster_ids, file_stem, group_labels, parameter_entries
from mitml_jax.errors import MitmlWarning

FORMULA = "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)"


def _grouped(column_values, labels):
    """A two-group fake run whose spec names the group column ``G`` (values given per row)."""
    imp = fake_imputations(chains=2, n_burn=6, n_iter=2, m=4, groups=2)
    data = imp.data.copy()
    data["G"] = column_values(data)
    spec = build_spec(data, FORMULA, group="G")
    return dataclasses.replace(imp, data=data, spec=spec, extra={"group_labels": labels})


# -- to_arviz with more chains than draws -------------------------------------------------------
def test_to_arviz_drops_only_arviz_chains_than_draws_warning(monkeypatch):
    """Fast (no ArviZ import): a stand-in ``arviz`` module that warns as ArviZ 0.x does."""
    import sys
    import types

    calls = []

    def from_dict(posterior=None, **kwargs):
        calls.append((posterior, kwargs))
        warnings.warn("More chains (8) than draws (4). Passed array should have shape (chains, "
                      "draws, *shape)", UserWarning)
        warnings.warn("some other warning", UserWarning)
        return "data"

    monkeypatch.setitem(sys.modules, "arviz", types.SimpleNamespace(__version__="0.23.4",
                                                                    from_dict=from_dict))
    imp = fake_imputations(chains=8, n_burn=6, n_iter=1, m=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert imp.to_arviz() == "data"
    assert [str(w.message) for w in caught] == ["some other warning"]
    posterior, kwargs = calls[0]
    assert posterior["beta"].shape == (8, 4, 1, 3) and kwargs["warmup_posterior"]["beta"].shape[1] == 6


@pytest.mark.slow
def test_to_arviz_with_more_chains_than_draws_passes_on_no_arviz_warning():
    pytest.importorskip("arviz")
    imp = fake_imputations(chains=8, n_burn=6, n_iter=1, m=4)  # 4 draws (6 burn-in) per chain
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = imp.to_arviz()
    assert not [w for w in caught if "More chains" in str(w.message)], [str(w.message) for w in caught]
    assert dict(data.posterior.sizes)["chain"] == 8 and dict(data.posterior.sizes)["draw"] == 4
    assert dict(data.warmup_posterior.sizes)["draw"] == 6
    np.testing.assert_array_equal(data.posterior["beta"].values, imp.imputation["beta"][:, :, 0])


# -- summary sections skipped for too few draws -------------------------------------------------
def test_summary_says_when_goodness_and_autocorrelation_are_skipped():
    imp = fake_imputations(chains=4, n_burn=4, n_iter=1, m=2)  # 2 imputation-phase draws per chain
    with pytest.warns(MitmlWarning) as caught:
        text = str(imp.summary(n_rhat=None, goodness_of_appr=True, autocorrelation=True))
    messages = [str(w.message) for w in caught]
    assert any("goodness_of_appr=True" in m and "(2)" in m for m in messages), messages
    assert any("autocorrelation=True" in m and "(2)" in m for m in messages), messages
    assert "Goodness of approximation" not in text and "Autocorrelation" not in text
    # enough draws: no warning, both sections printed
    imp = fake_imputations(chains=2, n_burn=4, n_iter=1, m=3)  # 3 draws per chain
    with warnings.catch_warnings():
        warnings.simplefilter("error", MitmlWarning)
        text = str(imp.summary(n_rhat=None, goodness_of_appr=True, autocorrelation=True))
    assert "Goodness of approximation" in text and "Autocorrelation" in text


# -- export file names with path separators ------------------------------------------------------
def test_file_stem_keeps_path_separators_out_of_file_names():
    assert file_stem("BETA_Group-Berlin/Brandenburg_ReadDis ON (Intercept)") == \
        "BETA_Group-Berlin-Brandenburg_ReadDis-ON-Intercept"
    assert file_stem("SIGMA_a\\b_WITH_c\x00d") == "SIGMA_a-b_WITH_c-d"
    # mitml's own rules unchanged
    assert file_stem("PSI_(y ON z),x") == "PSI_y-ON-zx"


def test_plot_export_with_a_slash_in_the_group_label_writes_into_the_folder(tmp_path):
    pytest.importorskip("matplotlib")
    imp = fake_imputations(chains=2, n_burn=6, n_iter=2, m=4, groups=2)
    imp.extra["group_labels"] = ["Berlin/Brandenburg", "SH"]
    figures = imp.plot(print="beta", group=1, export="png", folder=str(tmp_path))
    files = sorted(os.listdir(tmp_path))
    assert len(files) == len(figures) == 4  # three Beta entries and the rank plot
    assert all(os.path.isfile(tmp_path / f) for f in files)
    assert "BETA_Group-Berlin-Brandenburg_ReadAchiev_ON_Intercept.png" in files
    assert "RANKS_BETA_Group-Berlin-Brandenburg.png" in files
    assert figures[0].axes[0].get_title().startswith("Beta [1,1,Group:Berlin/Brandenburg]")


# -- float group and cluster values labelled as R prints them ---------------------------------------
def test_float_group_values_are_labelled_as_mitml_labels_them():
    # R: as.character(c(2, 1)) is "2" "1"; plot.mitml pastes ",Group:" and "Group-" to them.
    # R 4 / mitml 0.4-4: d$G <- ifelse(studentratings$FedState == "B", 2, 1);
    # plot(panImpute(d, ReadDis ~ 1 + (1|ID), group = "G", n.burn = 10, n.iter = 2, m = 3,
    # seed = 1), print = "beta", export = "png") writes "BETA_Group-2_ReadDis_ON_Intercept.png"
    imp = _grouped(lambda d: np.where(d.FedState == "B", 2.0, 1.0), ["2.0", "1.0"])
    assert group_labels(imp) == ["2", "1"]
    entries = parameter_entries(imp, blocks=["beta"])
    assert entries[0].title == "Beta [1,1,Group:2]: ReadAchiev ON (Intercept)"
    assert entries[0].file_stem == "BETA_Group-2_ReadAchiev_ON_Intercept"
    frame = imp.summary(n_rhat=None).to_frame()
    assert sorted(set(frame["group_label"])) == ["1", "2"]
    assert arviz_coords(imp)[0]["group"] == ["2", "1"]


def test_float_group_values_beyond_whole_numbers_follow_r():
    # R: as.character(c(1e5, 0.1)) is "1e+05" "0.1"
    imp = _grouped(lambda d: np.where(d.FedState == "B", 1e5, 0.1), ["100000.0", "0.1"])
    assert group_labels(imp) == ["1e+05", "0.1"]
    # text and integer group columns keep their labels as they are
    imp = _grouped(lambda d: np.where(d.FedState == "B", 2, 1), ["2", "1"])
    assert group_labels(imp) == ["2", "1"]
    imp = _grouped(lambda d: np.where(d.FedState == "B", "2.0", "x"), ["2.0", "x"])
    assert group_labels(imp) == ["2.0", "x"]


def test_stacked_sigma_cluster_ids_of_a_float_cluster_column_as_r_prints_them():
    imp = _grouped(lambda d: np.where(d.FedState == "B", 2.0, 1.0), ["2.0", "1.0"])
    data = imp.data.copy()
    data["ID"] = data["ID"].astype(float)
    imp = dataclasses.replace(imp, data=data, spec=build_spec(data, FORMULA, group="G"))
    ids_group_1 = np.sort(data.loc[data.G == 2.0, "ID"].unique())
    ours = _cluster_ids(imp, 0, len(ids_group_1))
    assert ours == [str(int(v)) for v in ids_group_1]  # 2001, not 2001.0; rows of group "2"


# -- posterior_summary's phase ------------------------------------------------------------------------
def test_posterior_summary_phase_is_checked_and_no_burnin_gives_nan_quietly():
    from mitml_jax.errors import MitmlError
    from mitml_jax.results.posterior import posterior_summary

    imp = fake_imputations(chains=2, n_burn=0, n_iter=1, m=3)  # a run that kept no burn-in draws
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy "Mean of empty slice" warnings
        out = posterior_summary(imp, phase="burnin")
    assert len(out) == len(posterior_summary(imp)) and out[["mean", "sd", "mcse"]].isna().all().all()
    with pytest.raises(MitmlError, match="'phase' must be 'imputation' or 'burnin', got 'Burnin'"):
        posterior_summary(imp, phase="Burnin")  # was taken silently as the burn-in


# -- plot(print=) naming a block the run does not have -------------------------------------------------
def test_plot_of_a_block_the_run_lacks_plots_nothing_as_mitml(tmp_path):
    """R: plot(panImpute(...), print = "beta2", export = "png") writes no file (pan has no
    Beta2); print = c("beta2", "sigma") plots Sigma only. Before the fix every entry of every
    block was plotted (parameter_entries took the empty selection for 'all')."""
    pytest.importorskip("matplotlib")
    imp = fake_imputations(chains=2, n_burn=4, n_iter=1, m=5)
    with pytest.warns(MitmlWarning, match=r"only blocks this run does not have \(beta2\)"):
        assert imp.plot(print="beta2", export="png", folder=str(tmp_path / "out")) == []
    with pytest.warns(MitmlWarning, match="nothing is plotted"):
        assert imp.plot(print="beta2", pos=(1, 1)) == []
    assert not (tmp_path / "out").exists()
    sigma = [e for e in parameter_entries(imp) if e.block == "sigma"]
    assert len(imp.plot(print=["beta2", "sigma"])) == len(sigma) + 1  # and the rank plot
    assert parameter_entries(imp, blocks=[]) == []


# -- completed frames and analyse/within copies never write through (pandas 2 without CoW) -----------
def _shares(a: pd.DataFrame, b: pd.DataFrame, column: str) -> bool:
    return np.shares_memory(a[column].to_numpy(), b[column].to_numpy())


@pytest.mark.parametrize("cow", [False, True])
def test_completed_frames_do_not_share_columns_without_copy_on_write(monkeypatch, cow):
    """pyproject allows pandas>=2.0; without Copy-on-Write a shallow copy shares the column
    arrays, so ``imp.complete(1).loc[0, "SES"] = 0`` changed imp.data and every other completed
    data set. Simulated here by telling mitml_jax that Copy-on-Write is off (pandas 3 has it
    always on, where a shallow copy is safe and kept)."""
    from mitml_jax.results import frames

    monkeypatch.setattr(frames, "copy_on_write", lambda: cow)
    imp = fake_imputations(chains=1, n_burn=2, n_iter=1, m=2)
    seen = []
    completed = imp.complete("all")
    assert _shares(completed[0], imp.data, "SES") is cow  # SES: not a target, never imputed
    completed.analyse(lambda d: seen.append(_shares(d, completed[0], "SES")))
    completed.within(lambda d: seen.append(_shares(d, completed[0], "SES")))
    assert seen == [cow, cow, cow, cow]
