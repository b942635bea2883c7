"""imp.plot(): figures per entry in mitml's layout, exports, pos/group handling, fixed bugs."""

import os

import numpy as np
import pytest

from diagnostics_fakes import fake_imputations
from mitml_jax.diagnostics.density import bw_nrd0, kernel_density
from mitml_jax.diagnostics.plotting import moving_average
from mitml_jax.errors import MitmlError, MitmlWarning


def test_moving_average_matches_mitml_definition():
    x = np.arange(10.0) ** 2
    got = moving_average(x, 2)
    # interior: centred window of 5; ends: symmetric windows 1, 3
    assert got[0] == x[0] and got[1] == x[:3].mean() and got[5] == x[3:8].mean()
    assert got[-1] == x[-1] and got[-2] == x[-3:].mean()
    np.testing.assert_array_equal(moving_average(x, 0), x)  # B17: B = 0 is the series itself
    assert moving_average(x, 100).shape == x.shape


def test_density_matches_r_defaults():
    x = np.array([1.0, 2.0, 2.5, 4.0, 7.0])
    # bw.nrd0: 0.9 * min(sd, IQR/1.34) * n^-1/5
    sd, iqr = x.std(ddof=1), np.subtract(*np.quantile(x, [0.75, 0.25]))
    assert bw_nrd0(x) == pytest.approx(0.9 * min(sd, iqr / 1.34) * 5 ** -0.2)
    grid, dens = kernel_density(x)
    assert len(grid) == 512 and grid[0] == pytest.approx(1 - 3 * bw_nrd0(x))
    assert np.sum(dens) * (grid[1] - grid[0]) == pytest.approx(1, abs=2e-3)
    big = np.random.default_rng(0).standard_normal(20000)  # binned path
    g1, d1 = kernel_density(big)
    bw = bw_nrd0(big)
    exact = np.exp(-0.5 * ((g1[:, None] - big[None, :]) / bw) ** 2).sum(1) / (
        big.size * bw * np.sqrt(2 * np.pi))
    assert np.max(np.abs(d1 - exact)) < 1e-3


def test_one_figure_per_entry_and_layout():
    imp = fake_imputations(n_burn=30, n_iter=5, m=4)
    figs = imp.plot(print="beta")
    assert len(figs) == 3
    axes = figs[0].get_axes()
    assert len(axes) == 4
    assert axes[0].get_title() == "Beta [1,1]: ReadAchiev ON (Intercept)"
    assert axes[1].get_ylabel() == "ACF" and axes[1].get_ylim() == (-0.1, 1)
    text = axes[3].texts[0].get_text()
    for key in ("EAP:", "MAP:", "SD:", "2.5%:", "97.5%:", "Rhat:", "ACF-k:"):
        assert key in text
    chain = imp.imputation["beta"][0, :, 0, 0, 0]
    assert f"EAP:   {chain.mean():.3f}" in text
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # built without pyplot: nothing left open or shown


def test_trace_x_axis_uses_true_iterations_with_thin():
    # B17: with thin > 1 mitml's labels are thin*(tick + n_burn); here x = true iteration
    imp = fake_imputations(n_burn=30, n_iter=6, m=4)
    fig = imp.plot(print="beta", pos=(1, 2), thin=2)[0]
    x = fig.get_axes()[0].lines[0].get_xdata()
    np.testing.assert_array_equal(x, 30 + np.arange(2, 25, 2))
    fig = imp.plot(print="beta", pos=(1, 2), trace="all", thin=3)[0]
    ax = fig.get_axes()[0]
    assert any(list(line.get_xdata()) == [30, 30] for line in ax.lines)  # blue line


def test_multichain_overlay_and_rank_plot():
    imp = fake_imputations(chains=3, n_burn=20, n_iter=5, m=4)
    figs = imp.plot(print="beta")
    assert len(figs) == 3 + 1
    assert "(3 chains)" in figs[0].get_axes()[0].get_title()
    assert len(figs[0].get_axes()[0].lines) >= 3
    assert "rRhat:" in figs[0].get_axes()[3].texts[0].get_text()
    assert figs[-1]._suptitle.get_text().startswith("Rank plots")


def test_export_png_and_pdf_with_mitml_names(tmp_path):
    imp = fake_imputations(groups=2, n_burn=20, n_iter=5, m=4)
    folder = tmp_path / "plots"
    imp.plot(print="psi", pos=(2, 1), group=2, export="png", folder=str(folder))
    imp.plot(print="beta", pos=(1, 3), group=1, export="pdf", folder=str(folder))
    names = sorted(os.listdir(folder))
    assert names == [
        "BETA_Group-1_SchClimate_ON_Intercept.pdf",
        "PSI_Group-2_ReadDis_ON_Intercept_WITH_ReadAchiev_ON_Intercept.png",
    ]
    assert (folder / names[1]).read_bytes()[:4] == b"\x89PNG"
    assert (folder / names[0]).read_bytes()[:4] == b"%PDF"


def test_numeric_group_plots_that_groups_draws():
    # B6: mitml took the label of group 2 but the draws of group 1
    imp = fake_imputations(groups=2, n_burn=20, n_iter=5, m=4)
    fig = imp.plot(print="beta", pos=(1, 1), group=2)[0]
    y = fig.get_axes()[0].lines[0].get_ydata()
    np.testing.assert_array_equal(y, imp.imputation["beta"][0, :, 1, 0, 0])
    assert "Group:2" in fig.get_axes()[0].get_title()


def test_pos_checks():
    imp = fake_imputations(n_burn=20, n_iter=5, m=4)
    with pytest.raises(MitmlError, match=r"There is no entry \[2,1\] in 'beta'"):
        imp.plot(print="beta", pos=(2, 1))
    with pytest.warns(MitmlWarning, match=r"Used \[3,1\] instead"):
        figs = imp.plot(print="psi", pos=(1, 3))
    assert figs[0].get_axes()[0].get_title().startswith("Psi [3,1]")
    with pytest.warns(MitmlWarning, match="'pos'"):
        assert len(imp.plot(print=("beta", "sigma"), pos=(1, 1))) == 9
    with pytest.raises(MitmlError, match="trace"):
        imp.plot(trace="everything")
    with pytest.raises(MitmlError, match="group"):
        imp.plot(group=3)
