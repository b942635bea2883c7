"""QA of the result objects: regression tests for defects found by using them as a mitml user.

Each test failed before its fix: jomo runs with keep_chains="diagonal" and a categorical target
of three or more categories (summary, plot and to_arviz crashed), Psi names of such targets,
plot's argument checks (print, group, thin, folder), NumPy warnings from the summary panel, the
rank plot's entry limit, print after extend(n_iter=...), save/load paths, and complete(print=)
with a 0-d array.
"""

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from diagnostics_fakes import ar1, fake_imputations
import mitml_jax as mj
from mitml_jax import build_spec, load_leadership
from mitml_jax.diagnostics.arviz_export import arviz_coords
from mitml_jax.diagnostics.entries import parameter_entries
from mitml_jax.errors import MitmlError, MitmlTypeError
from mitml_jax.results.imputations import Imputations

CAT_FORMULA = ["JOBSAT + NEG3 + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"]
LATENT = ("JOBSAT", "NEG31", "NEG32", "WLOAD")  # NEG3's three categories: two latent columns


def jomo_categorical(keep_chains="diagonal", random_L1="none", chains=2, n_burn=10, n_iter=2, m=4):
    """A jomo-shaped Imputations with a three-category target, labelled as jomo_impute labels
    it (beta's columns name the latent variables; Sigma's diagonal column is unnamed)."""
    rng = np.random.default_rng(5)
    data = load_leadership()
    data["NEG3"] = pd.cut(data.NEGLEAD, [-np.inf, -0.5, 0.5, np.inf], labels=["lo", "mid", "hi"])
    spec = build_spec(data, CAT_FORMULA, kind="jomo")
    clusters = np.sort(data.GRPID.unique())
    stacked = random_L1 == "full"
    sigma_rows = tuple(f"{c}:{v}" for c in clusters for v in LATENT) if stacked else LATENT
    diagonal = keep_chains == "diagonal"
    psi_names = tuple(f"{v}:(Intercept)" for v in LATENT) + ("COHES",)
    shapes = {"beta": (1, 4), "beta2": (1, 1), "psi": (5, 1 if diagonal else 5),
              "sigma": (len(sigma_rows), 1 if diagonal else 4)}
    total = n_burn + n_iter * (m // chains)
    draws = {k: ar1(rng, (chains, 1) + s, 0.3, total) + 2.0 for k, s in shapes.items()}
    labels = {"beta": (("(Intercept)",), LATENT), "beta2": (("(Intercept)",), ("COHES",)),
              "psi": (psi_names, ("",) if diagonal else psi_names),
              "sigma": (sigma_rows, ("",) if diagonal else LATENT)}
    return Imputations(
        data=data, spec=spec, kind="jomo", call="jomo_impute(...)", n_burn=n_burn, n_iter=n_iter,
        m=m, chains=chains, seed=5, prior=[{}], keep_chains=keep_chains, random_L1=random_L1,
        replacement=np.zeros((0, m)), index=np.zeros((0, 2), int),
        burnin={k: v[:, :n_burn] for k, v in draws.items()},
        imputation={k: v[:, n_burn:] for k, v in draws.items()}, labels=labels,
        imputation_source=np.column_stack([np.arange(m) % chains, np.arange(m) // chains]),
    )


# -- jomo: a categorical target with three categories ----------------------------------------
@pytest.mark.parametrize("random_L1", ["none", "full"])
def test_diagonal_jomo_with_three_categories_summarises_plots_and_exports(random_L1):
    # before: IndexError from entries.py (summary, plot) and arviz_export.py (to_arviz): Sigma's
    # variables were taken to be the 3 targets, not the 4 latent columns
    imp = jomo_categorical(random_L1=random_L1)
    sigma = [e for e in parameter_entries(imp) if e.block == "sigma"]
    assert len(sigma) == imp.imputation["sigma"].shape[3]
    assert sigma[1].title.startswith("Sigma [2,1]: NEG31 WITH NEG31")
    assert sigma[3].title.startswith("Sigma [4,1]: WLOAD WITH WLOAD")
    if random_L1 == "full":
        first = str(np.sort(imp.data.GRPID.unique())[1])
        assert sigma[4].title == f"Sigma [5,1]: JOBSAT WITH JOBSAT [GRPID:{first}]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = str(imp.summary())
    assert "Sigma:" in text
    coords, dims = arviz_coords(imp)
    assert coords["sigma_row"][:4] == (list(LATENT) if random_L1 == "none"
                                       else [f"{v}|GRPID:1" for v in LATENT])
    assert dims["sigma"] == ["sigma_row", "diagonal"]
    figs = imp.plot(print="sigma", pos=(2, 1))
    assert figs[0].get_axes()[0].get_title().startswith("Sigma [2,1]: NEG31 WITH NEG31")


def test_psi_of_a_three_category_target_is_named_as_mitml_names_it():
    # before: "NEG31:(Intercept) WITH JOBSAT:(Intercept)" and file names with ':'
    imp = jomo_categorical(keep_chains="full")
    psi = {e.position: e for e in parameter_entries(imp) if e.block == "psi"}
    assert psi["[2,1]"].title == "Psi [2,1]: (NEG31 ON (Intercept)) WITH (JOBSAT ON (Intercept))"
    assert psi["[5,3]"].title == "Psi [5,3]: COHES WITH (NEG32 ON (Intercept))"
    assert psi["[2,1]"].file_stem == "PSI_NEG31_ON_Intercept_WITH_JOBSAT_ON_Intercept"
    assert all(":" not in e.file_stem for e in psi.values())
    coords, _ = arviz_coords(imp)
    assert coords["psi_row"] == [f"{v} ON (Intercept)" for v in LATENT] + ["COHES"]
    sigma = [e for e in parameter_entries(imp) if e.block == "sigma"]
    assert sigma[1].title.startswith("Sigma [2,1]: NEG31 WITH JOBSAT")


# -- plot: arguments ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake():
    return fake_imputations(chains=2, n_burn=10, n_iter=2, m=6)


@pytest.mark.parametrize("bad", [None, 1, {"beta": 1}])
def test_plot_print_of_the_wrong_type_names_print(fake, bad):
    with pytest.raises(MitmlTypeError, match="'print' must be a block name"):
        fake.plot(print=bad)


def test_plot_print_empty_is_an_error_and_duplicates_plot_once(fake):
    with pytest.raises(MitmlError, match="'print' must name at least one block"):
        fake.plot(print=[])
    once = fake.plot(print=["sigma", "beta", "beta"])
    titles = [f.get_axes()[0].get_title() for f in once[:-1]]
    assert len(once) == 3 + 6 + 1 and titles[0].startswith("Beta [1,1]")  # mitml's block order


def test_plot_group_named_twice_is_plotted_once():
    imp = fake_imputations(groups=2, n_burn=10, n_iter=2, m=3)
    assert len(imp.plot(print="beta", group=[2, 2])) == 3


@pytest.mark.parametrize("trace", ["imputation", "all"])
def test_plot_thin_larger_than_the_draws_names_thin(fake, trace):
    # before: ValueError "zero-size array to reduction operation fmin" from NumPy
    d = fake.imputation["beta"].shape[1]
    with pytest.raises(MitmlError, match=rf"'thin' \({d + 1}\) is larger than the {d} imputation-"):
        fake.plot(print="beta", thin=d + 1, trace=trace)
    assert len(fake.plot(print="beta", pos=(1, 1), thin=d)) == 2  # one draw per chain is fine


def test_plot_export_folder_errors_name_folder(fake, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    with pytest.raises(MitmlError, match="folder"):
        fake.plot(print="beta", pos=(1, 1), export="png", folder=str(a_file))
    with pytest.raises(MitmlTypeError, match="'folder'"):
        fake.plot(print="beta", pos=(1, 1), export="png", folder=None)


def test_plot_panel_with_missing_statistics_gives_no_numpy_warnings():
    # one chain of 3 draws: the segment R-hat (n_rhat=2) and ACF-k are missing
    imp = fake_imputations(n_burn=4, n_iter=3, m=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # before: "Mean of empty slice"
        fig = imp.plot(print="beta", pos=(1, 1), n_rhat=2)[0]
    text = fig.get_axes()[3].texts[0].get_text()
    assert "Rhat:  NA" in text and "ACF-k: NA" in text


def test_rank_plot_title_says_when_entries_were_left_out():
    imp = fake_imputations(chains=2, groups=3, n_burn=4, n_iter=2, m=4)  # 45 entries
    title = imp.plot()[-1]._suptitle.get_text()
    assert "first 30 of 45 entries" in title


# -- print after extend with another n_iter ----------------------------------------------------
def test_print_after_extend_with_another_n_iter_gives_each_spacing():
    data = mj.load_studentratings()
    imp = mj.pan_impute(data, formula="ReadDis ~ 1 + (1|ID)", n_burn=5, n_iter=2, m=2, chains=1,
                        seed=1, progress=False)
    once = imp.extend(m=1, n_iter=3, progress=False)
    assert "each 2 (imputations 1-2) and 3 (imputation 3) iterations apart." in repr(once)
    twice = once.extend(m=2, progress=False)  # before: the same n_iter again was not recorded
    assert twice.extra["n_iter_history"] == [(2, 2), (1, 3), (2, 3)]
    assert "each 2 (imputations 1-2) and 3 (imputations 3-5) iterations apart." in repr(twice)
    assert "each 2 iterations apart." in repr(imp.extend(m=1, progress=False))


# -- save and load paths -------------------------------------------------------------------------
def test_save_to_a_directory_or_missing_folder_says_so_and_leaves_no_file(tmp_path):
    imp = fake_imputations(n_burn=4, n_iter=2, m=2)
    with pytest.raises(MitmlError, match="is a directory; pass a file name"):
        imp.save(tmp_path)
    assert os.listdir(tmp_path) == [] and not any(
        n.startswith(tmp_path.name + ".tmp") for n in os.listdir(tmp_path.parent))
    with pytest.raises(MitmlError, match="folder .* does not exist"):
        imp.save(tmp_path / "missing" / "imp.pkl")
    with pytest.raises(MitmlTypeError, match="'path'"):
        imp.save(None)
    with pytest.raises(MitmlError, match="is a directory"):
        Imputations.load(tmp_path)
    with pytest.raises(MitmlTypeError, match="'path'"):
        Imputations.load(None)
    path = imp.save(str(tmp_path / "imp.pkl"))
    assert os.listdir(tmp_path) == ["imp.pkl"]
    np.testing.assert_array_equal(Imputations.load(path).replacement, imp.replacement)


def test_save_interrupted_leaves_no_temporary_file(tmp_path, monkeypatch):
    import pickle

    imp = fake_imputations(n_burn=4, n_iter=2, m=2)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pickle, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        imp.save(tmp_path / "imp.pkl")
    assert os.listdir(tmp_path) == []


# -- complete ----------------------------------------------------------------------------------
def test_complete_with_a_zero_dimensional_array_is_one_data_set():
    imp = fake_imputations(n_burn=4, n_iter=2, m=3)
    one = imp.complete(np.array(2))
    assert isinstance(one, pd.DataFrame)
    pd.testing.assert_frame_equal(one, imp.complete(2))


def test_plot_burnin_trace_without_burnin_draws_names_the_cause():
    # before: NumPy's "zero-size array to reduction operation fmin"
    imp = fake_imputations(n_burn=0, n_iter=2, m=2)
    with pytest.raises(MitmlError, match="no burn-in draws"):
        imp.plot(print="beta", trace="burnin")


def test_exported_rank_plots_of_different_selections_do_not_overwrite_each_other(tmp_path):
    imp = fake_imputations(chains=2, groups=2, n_burn=4, n_iter=2, m=4)
    folder = str(tmp_path)
    imp.plot(print="beta", export="png", folder=folder)
    imp.plot(print="psi", group=2, export="png", folder=folder)
    imp.plot(print="sigma", pos=(2, 1), group=1, export="png", folder=folder)
    imp.plot(print="beta", pos=(1, 1), export="png", folder=folder)
    ranks = sorted(n for n in os.listdir(folder) if n.startswith("RANKS"))
    assert ranks == ["RANKS_BETA.png", "RANKS_BETA_1-1.png", "RANKS_PSI_Group-2.png",
                     "RANKS_SIGMA_Group-1_ReadDis_WITH_ReadAchiev.png"]
    imp.plot(export="png", folder=folder)  # every block and group: mitml-style RANKS
    assert "RANKS.png" in os.listdir(folder)


def test_arviz_names_stacked_sigma_rows_of_grouped_runs_by_position():
    # before: "JOBSAT|GRPID:1" for the first cluster of every group, though in group "even" that
    # is GRPID 2: the label looked like a cluster value and was wrong
    imp = jomo_categorical(keep_chains="full", random_L1="full")
    grouped = Imputations(**{**imp.__dict__,
                             "burnin": {k: np.repeat(v, 2, axis=2) for k, v in imp.burnin.items()},
                             "imputation": {k: np.repeat(v, 2, axis=2)
                                            for k, v in imp.imputation.items()},
                             "prior": [{}, {}], "extra": {"group_labels": ["odd", "even"]}})
    coords, dims = arviz_coords(grouped)
    assert coords["group"] == ["odd", "even"] and dims["sigma"][0] == "group"
    assert coords["sigma_row"][:5] == [f"{v}|GRPID#1" for v in LATENT] + ["JOBSAT|GRPID#2"]
    assert arviz_coords(imp)[0]["sigma_row"][4] == "JOBSAT|GRPID:2"  # one group: the values


def test_plot_pos_on_a_diagonal_run_says_where_the_variances_are():
    imp = fake_imputations(keep_chains="diagonal", n_burn=4, n_iter=2, m=2)
    with pytest.raises(MitmlError, match=r"There is no entry \[2,2\] in 'psi'\. With keep_chains="
                                         r"'diagonal'.*pos=\(2, 1\)"):
        imp.plot(print="psi", pos=(2, 2))
    title = imp.plot(print="psi", pos=(2, 1))[0].get_axes()[0].get_title()
    assert title.startswith("Psi [2,1]:") and title.count("(ReadDis ON (Intercept))") == 2
