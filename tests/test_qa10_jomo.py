"""QA pass 10 on jomo_impute (groups in which a categorical target has a single observed
category): regressions for the defects found. Each test failed before its fix.

R's behaviour, for the record (mitml 0.4-4, jomo 2.7-4, on data shaped as below):
``jomoImpute(d, formula = list(y + c3 ~ 1 + x + (1|id), z2 ~ 1 + w), group = "g", ...)`` with
``z2`` observed only as "yes" in group "odd" stops with "Error in l2.beta.start[i, j]: subscript
out of bounds"; ``jomoImpute(d, formula = c3 ~ 1 + x + (1|id), group = "g", ...)`` with ``c3``
observed only as "a" in group "odd" stops with "Error in beta.start[i, j]: subscript out of
bounds".
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
import mitml_jax.api_jomo as api_jomo
from mitml_jax.errors import MitmlError, MitmlWarning

FAST = {"n_burn": 4, "n_iter": 1, "m": 2, "seed": 1, "progress": False}


def data() -> pd.DataFrame:
    """60 rows, 12 clusters of 5, clusters alternating between groups "even" and "odd"; y
    continuous, c3 with three categories, z2 a binary level-2 target, x and w predictors."""
    rng = np.random.default_rng(11)
    n_cl, size = 12, 5
    cl = np.repeat(np.arange(1, n_cl + 1), size)
    u = rng.normal(size=n_cl)[cl - 1]
    x = rng.normal(size=n_cl * size)
    y = 1 + 0.5 * x + u + rng.normal(size=n_cl * size)
    lat = 0.6 * x + u + rng.normal(size=n_cl * size)
    c3 = np.where(lat < -0.5, "a", np.where(lat < 0.7, "b", "c")).astype(object)
    w = rng.normal(size=n_cl)
    z2 = np.where(w > 0, "yes", "no").astype(object)[cl - 1]
    d = pd.DataFrame({"id": cl, "x": x, "y": y, "c3": c3, "z2": z2, "w": w[cl - 1]})
    d["g"] = np.where(d["id"] % 2 == 0, "even", "odd")
    d.loc[rng.random(len(d)) < 0.2, "y"] = np.nan
    d.loc[rng.random(len(d)) < 0.2, "c3"] = np.nan
    d.loc[d["id"].isin([1, 2, 5, 8]), "z2"] = np.nan  # two clusters of each group
    return d


def test_groups_missing_a_parameter_block_are_nan_padded():
    """Stacking the groups' parameter blocks when one group has no beta2 (its only level-2
    target has a single observed category there): before the fix ``KeyError: 'beta2'``."""
    chains, draws = 2, 3
    full = {"beta": np.ones((chains, draws, 2, 3)), "beta2": np.full((chains, draws, 2, 1), 2.0),
            "psi": np.ones((chains, draws, 4, 4)), "sigma": np.ones((chains, draws, 3, 3))}
    lacking = {"beta": np.ones((chains, draws, 2, 3)), "psi": np.ones((chains, draws, 3, 3)),
               "sigma": np.ones((chains, draws, 3, 3))}
    out = api_jomo._stack_groups([lacking, full], chains, draws)
    assert out["beta2"].shape == (chains, draws, 2, 2, 1)
    assert np.isnan(out["beta2"][:, :, 0]).all() and (out["beta2"][:, :, 1] == 2.0).all()
    assert out["psi"].shape == (chains, draws, 2, 4, 4)
    assert np.isnan(out["psi"][:, :, 0, 3]).all() and (out["psi"][:, :, 0, :3, :3] == 1).all()


@pytest.mark.slow  # two groups of different shapes: about 20 s cold (compiles), 6 s warm
def test_group_with_single_category_level2_target_keeps_that_category():
    """The only level-2 target, categorical, has one observed category in group "odd": that
    group has no level-2 latent column and no beta2 block. Before the fix the run failed after
    sampling with ``KeyError: 'beta2'`` (stacking the groups' parameter blocks); now, as for
    level-1 targets, a warning, the category in every imputation, and beta2 NaN there."""
    d = data()
    d.loc[(d["g"] == "odd") & d["z2"].notna(), "z2"] = "yes"
    d["c3"] = d["c3"].astype("category")
    d["z2"] = pd.Categorical(d["z2"], categories=["no", "yes"])
    before = d.copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imp = mj.jomo_impute(d, formula=["y + c3 ~ 1 + x + (1|id)", "z2 ~ 1 + w"], group="g",
                             **FAST)
    msgs = [str(w.message) for w in caught if issubclass(w.category, MitmlWarning)]
    assert any("'z2' has a single observed category 'yes'" in m and "'odd'" in m for m in msgs)
    pd.testing.assert_frame_equal(d, before)
    groups = imp.extra["group_labels"]
    odd, even = groups.index("odd"), groups.index("even")
    beta2 = imp.imputation["beta2"]
    assert beta2.shape[2:] == (2, 2, 1)
    assert np.isnan(beta2[:, :, odd]).all() and np.isfinite(beta2[:, :, even]).all()
    psi = imp.imputation["psi"]  # odd: y, c31, c32 random effects only (3 x 3, NaN padded)
    assert np.isfinite(psi[:, :, odd, :3, :3]).all() and np.isnan(psi[:, :, odd, 3]).all()
    assert np.isfinite(psi[:, :, even]).all()
    missing = d["z2"].isna().to_numpy()
    for frame in imp.complete("all"):
        assert frame["z2"].notna().all()
        assert (frame.loc[missing & (d["g"] == "odd").to_numpy(), "z2"] == "yes").all()
        assert frame.groupby("id")["z2"].nunique().max() == 1
        observed = d["z2"].notna().to_numpy()
        assert (frame.loc[observed, "z2"] == d.loc[observed, "z2"]).all()


@pytest.mark.parametrize("formula", ["c3 ~ 1 + x + (1|id)", "c3 ~ 1 + x",
                                     ["c3 ~ 1 + x + (1|id)", "z2 ~ 1 + w"]])
def test_group_without_any_level1_latent_column_is_a_clear_error(formula):
    """Every level-1 target of group "odd" is categorical with a single observed category, so the
    group has no level-1 column to model (jomo's samplers need one). Before the fix: ``ValueError:
    zero-size array to reduction operation minimum`` from the prior check of a 0 x 0 Binv; now a
    MitmlError naming the group, the target and its category, raised before the sampler."""
    d = data()
    d.loc[(d["g"] == "odd") & d["c3"].notna(), "c3"] = "a"
    d["c3"] = d["c3"].astype("category")
    with pytest.raises(MitmlError, match=r"group 'odd' of 'g'.*'c3' \('a'\)"):
        mj.jomo_impute(d, formula=formula, group="g", **FAST)


@pytest.mark.parametrize("random_l1", ["none", pytest.param("full", marks=pytest.mark.slow)])
def test_groups_with_different_categories_are_labelled_by_their_own_columns(random_l1):
    """A group that observes fewer categories has fewer latent columns; its parameters were
    labelled with the widest group's names ('c31' where mitml's plot says 'c3'), and its stacked
    random_L1 = "full" Sigma rows were split by the widest group's column count (row 3 of group
    'odd' was labelled c32 of cluster 12; it is y of cluster 13)."""
    from mitml_jax.diagnostics.entries import parameter_entries

    rng = np.random.default_rng(5)
    n = 60
    group = np.repeat(["even", "odd"], n // 2)
    ids = np.repeat(np.arange(12), 5)
    c3 = np.where(group == "even", rng.choice(["a", "b", "c"], n), rng.choice(["a", "b"], n))
    d = pd.DataFrame({"id": ids, "g": group, "x": rng.standard_normal(n), "y": rng.standard_normal(n),
                      "c3": pd.Categorical(c3, categories=["a", "b", "c"])})
    d.loc[::6, "y"] = np.nan
    d.loc[3::7, "c3"] = np.nan
    imp = mj.jomo_impute(d, "y + c3 ~ 1 + (1|id)", group="g", random_L1=random_l1, n_burn=3,
                         n_iter=2, m=1, progress=False, seed=1)
    titles = {e.title for e in parameter_entries(imp, ["beta", "psi", "sigma"])}
    assert "Beta [1,2,Group:odd]: c3 ON (Intercept)" in titles
    assert "Beta [1,3,Group:even]: c32 ON (Intercept)" in titles
    assert "Psi [2,2,Group:odd]: (c3 ON (Intercept)) WITH (c3 ON (Intercept))" in titles
    if random_l1 == "full":  # stacked per cluster (14 s to compile: slow)
        assert "Sigma [3,1,Group:odd]: y WITH y [id:7]" in titles
        assert "Sigma [4,2,Group:odd]: c3 WITH c3 [id:7]" in titles
    else:
        assert "Sigma [2,1,Group:odd]: c3 WITH y" in titles
    assert not any("odd" in t and "c31" in t for t in titles)
