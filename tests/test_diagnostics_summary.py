"""print(imp) and imp.summary(): mitml's layout and numbers on synthetic AR(1) draws."""

import numpy as np
import pandas as pd
import pytest

from diagnostics_fakes import fake_imputations
from mitml_jax.diagnostics.entries import parameter_entries
from mitml_jax.diagnostics.mitml_stats import reduced_acf, sd_prop, segment_rhat
from mitml_jax.diagnostics.printing import format_numeric_table, format_text_table
from mitml_jax.diagnostics.rank import rank_diagnostics
from mitml_jax.diagnostics.summary import missing_rates
from mitml_jax.errors import MitmlTypeError


def test_print_layout_matches_mitml():
    imp = fake_imputations(formula="ReadDis + SES ~ 1 + Sex + (1|ID)", n_burn=500, n_iter=50,
                           m=5)
    text = repr(imp)
    expected = (
        "Cluster variable:         ID \n"
        "Target variables:         ReadDis SES \n"
        "Fixed effect predictors:  (Intercept) Sex \n"
        "Random effect predictors: (Intercept) \n"
        "\n"
        "Performed 500 burn-in iterations, and generated 5 imputed data sets,\n"
        "each 50 iterations apart. \n"
    )
    assert text.startswith("\nCall:\n\npan_impute(")
    assert text.endswith(expected)


def test_print_groups_and_chains():
    text = repr(fake_imputations(chains=4, groups=2))
    assert "Imputations were carried out seperately within 2 groups.\n \n" in text
    assert "Chains: 4" in text


def test_entries_skip_redundant_and_titles():
    imp = fake_imputations()
    entries = parameter_entries(imp)
    psi = [e for e in entries if e.block == "psi"]
    sigma = [e for e in entries if e.block == "sigma"]
    assert len(psi) == 6 and len(sigma) == 6 and all(e.row >= e.col for e in psi + sigma)
    assert entries[0].title == "Beta [1,1]: ReadAchiev ON (Intercept)"
    assert psi[1].title == "Psi [2,1]: (ReadDis ON (Intercept)) WITH (ReadAchiev ON (Intercept))"
    assert psi[1].file_stem == "PSI_ReadDis_ON_Intercept_WITH_ReadAchiev_ON_Intercept"
    assert sigma[1].title == "Sigma [2,1]: ReadDis WITH ReadAchiev"
    grouped = parameter_entries(fake_imputations(groups=2))
    assert grouped[-1].title.startswith("Sigma [3,3,Group:2]") and "Group-2_" in grouped[-1].file_stem


def test_single_chain_summary_equals_mitml_statistics():
    imp = fake_imputations(n_iter=10, m=6)
    s = imp.summary(n_rhat=3, goodness_of_appr=True, autocorrelation=True)
    f = s.to_frame()
    assert len(f) == 3 + 6 + 6
    row = f[(f.block == "psi") & (f.row == 3) & (f.col == 2)].iloc[0]
    chain = imp.imputation["psi"][0, :, 0, 2, 1]
    assert row.rhat_segments == pytest.approx(segment_rhat(chain, 3), rel=1e-12)
    assert row.sd_prop == pytest.approx(sd_prop(chain), rel=1e-12)
    np.testing.assert_allclose([row.acf_lag1, row.acf_lagk, row.acf_lag2k],
                               reduced_acf(chain, 10), rtol=1e-12)
    assert row.ess_bulk == pytest.approx(
        rank_diagnostics(chain[None, :], which=("ess_bulk",))["ess_bulk"], rel=1e-12)
    assert np.isnan(row.rhat_rank)  # needs two chains
    text = str(s)
    for part in ("Potential scale reduction (Rhat, imputation phase):\n \n         Min   25%  Mean"
                 " Median   75%   Max\nBeta:  ",
                 "\nLargest potential scale reduction:\nBeta: [1,",
                 "Goodness of approximation (imputation phase):",
                 "\nAutocorrelation (ACF, imputation phase):\n\n        Mean              Max"
                 "             \n        Lag1  Lagk Lag2k  Lag1  Lagk Lag2k\n",
                 "Largest autocorrelation at lag k:", "Missing data per variable:\n", "MD% 0 "):
        assert part in text
    # the largest Rhat entry printed is the arg-max of the frame
    beta = f[f.block == "sigma"]
    k = int(np.argmax(beta.rhat_segments))
    assert f"Sigma: [{beta.row.iloc[k]},{beta.col.iloc[k]}]" in text.split("Largest potential")[1]


def test_multichain_summary_rank_columns_and_nested():
    imp = fake_imputations(chains=8, n_iter=5, m=8)
    s = imp.summary()
    f = s.to_frame()
    x = imp.imputation["beta"][:, :, 0, 0, :]
    ref = rank_diagnostics(x, which=("rhat", "ess_bulk", "ess_tail", "mcse_mean"))
    got = f[f.block == "beta"]
    np.testing.assert_allclose(got.rhat_rank, ref["rhat"], rtol=1e-12)
    np.testing.assert_allclose(got.ess_tail, ref["ess_tail"], rtol=1e-12)
    np.testing.assert_allclose(got.mcse_mean, ref["mcse_mean"], rtol=1e-12)
    assert np.isfinite(f.rhat_nested).all()
    seg = segment_rhat(np.moveaxis(x, 1, 2), 3)
    np.testing.assert_allclose(got.rhat_segments, seg.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got.rhat_segments_max, seg.max(axis=0), rtol=1e-12)
    text = str(s)
    assert "Across chains (8 chains x 40 draws" in text and "Max nRhat" in text
    assert "Largest rank-normalised Rhat:" in text
    assert "<pre>" in s._repr_html_()


def test_diagonal_note_and_disabled_rhat():
    s = fake_imputations(keep_chains="diagonal").summary(n_rhat=None)
    assert s.stats == ()
    assert "Note: Convergence" not in str(s)  # mitml prints the note only with statistics
    s = fake_imputations(keep_chains="diagonal").summary()
    assert "Note: Convergence criteria were calculated from a reduced set of\nparameters " \
           "(setting: diagonal)." in str(s)
    with pytest.raises(MitmlTypeError, match="n_rhat"):
        fake_imputations().summary(n_rhat="3")


def test_missing_rates_format():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [1, 2, 3], "c": [np.nan] * 3})
    assert list(missing_rates(df)) == ["33.3", "0", "100.0"]


def test_r_table_formatting():
    text = format_numeric_table(["Beta:", "Psi:", "Sigma:"], ["Min", "25%", "Mean", "Median",
                                "75%", "Max"], [[1.015, 1.026, 1.047, 1.033, 1.054, 1.108],
                                                [1.005, 1.017, 1.140, 1.030, 1.208, 1.386],
                                                [1.0, 1.004, 1.040, 1.009, 1.060, 1.110]])
    assert text == ("         Min   25%  Mean Median   75%   Max\n"
                    "Beta:  1.015 1.026 1.047  1.033 1.054 1.108\n"
                    "Psi:   1.005 1.017 1.140  1.030 1.208 1.386\n"
                    "Sigma: 1.000 1.004 1.040  1.009 1.060 1.110\n")
    md = format_text_table(["MD%"], ["ID", "ReadDis", "SES"], [["0", "20.4", "37.5"]])
    assert md == "    ID ReadDis SES \nMD% 0  20.4    37.5\n"


def test_two_level_jomo_print_entries_and_summary():
    from diagnostics_fakes import fake_jomo_imputations

    imp = fake_jomo_imputations()
    text = repr(imp)
    assert "\nLevel 1:\n \nCluster variable:         GRPID \n" in text
    assert ("\n" + "Level 2:\n" + " " * 15 + " \nTarget variables:         COHES \n"
            "Fixed effect predictors:  (Intercept) \n") in text
    entries = parameter_entries(imp)
    titles = [e.title for e in entries]
    assert "Beta2 [1,1]: COHES ON (Intercept)" in titles
    assert "Psi [4,1]: COHES WITH (JOBSAT ON (Intercept))" in titles
    first_cluster = str(np.sort(imp.data.GRPID.unique())[1])
    assert f"Sigma [4,1]: JOBSAT WITH JOBSAT [GRPID:{first_cluster}]" in titles
    sig = [e for e in entries if e.block == "sigma"]
    assert len(sig) == 6 * imp.data.GRPID.nunique()
    s = imp.summary()
    assert "Beta2:" in str(s) and len(s.to_frame()) == len(entries)


def test_pooled_mean_sd_and_nested_from_moments():
    from mitml_jax.diagnostics.nested import default_superchains, rhat_nested

    imp = fake_imputations(chains=8, n_iter=5, m=8)
    f = imp.summary(n_rhat=None).to_frame()
    x = imp.imputation["sigma"][:, :, 0, 2, 1]
    row = f[(f.block == "sigma") & (f.row == 3) & (f.col == 2)].iloc[0]
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert row["sd"] == pytest.approx(x.std(ddof=1), rel=1e-10)
    assert row.rhat_nested == pytest.approx(rhat_nested(x, default_superchains(8, 4)), rel=1e-12)


def test_nested_rhat_uses_every_chain_when_chains_are_not_a_multiple_of_four():
    """10 chains: superchains of 3, 2, 3 and 2 chains (before, the last two chains were left out)."""
    from mitml_jax.diagnostics.nested import default_superchains, rhat_nested

    imp = fake_imputations(chains=10, n_iter=5, m=10)
    x = imp.imputation["sigma"][:, :, 0, 2, 1]
    row = imp.summary(n_rhat=None).to_frame().query("block == 'sigma' and row == 3 and col == 2").iloc[0]
    assert row.rhat_nested == pytest.approx(rhat_nested(x, default_superchains(10, 4)), rel=1e-12)
    imp.imputation["sigma"][9, :, 0, 2, 1] += 100.0  # the last chain, elsewhere
    moved = imp.summary(n_rhat=None).to_frame().query("block == 'sigma' and row == 3 and col == 2").iloc[0]
    assert moved.rhat_nested > row.rhat_nested + 0.1  # unchanged when chain 9 was left out


def test_autocorrelation_beyond_the_draws_prints_na_without_warnings():
    """Lag 2k beyond the draws (m = 2): the ACF table shows NA, and NumPy's empty-slice warnings
    (from the mean and maximum of all-NaN columns) do not reach the user."""
    import warnings

    imp = fake_imputations(n_burn=10, n_iter=5, m=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = str(imp.summary(autocorrelation=True))
    acf = text.split("Autocorrelation")[1].split("Largest")[0]
    assert "NA" in acf
    one = fake_imputations(n_burn=10, n_iter=1, m=1)
    assert "1 chain x 1 draw," in str(one.summary(n_rhat=None))
