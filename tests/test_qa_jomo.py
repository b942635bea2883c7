"""QA pass on jomo_impute's model range against R's jomo (through mitml): regressions for the
defects found.

Each test failed before its fix. The prior checks run before the sampler, so these tests stop
there: ``run_chains`` is replaced by a stub that raises, and nothing is compiled.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
import mitml_jax.api_jomo as api_jomo
from mitml_jax.errors import MitmlError, MitmlWarning

FAST = {"n_burn": 5, "n_iter": 1, "m": 1, "seed": 1, "progress": False}


class _Stopped(Exception):
    """Raised by the stub sampler: everything before the sampler was accepted."""


@pytest.fixture
def no_sampler(monkeypatch):
    def stop(*args, **kwargs):
        raise _Stopped
    monkeypatch.setattr(api_jomo, "run_chains", stop)


def data() -> pd.DataFrame:
    """40 rows, 8 clusters of 5 in two groups; y1 continuous, y3 with three categories in group
    "g1" but only two observed in group "g2" (as R's jomo sees them: K - 1 latent columns per
    group)."""
    rng = np.random.default_rng(7)
    n = 40
    cl = np.repeat(np.arange(8), 5)
    y1 = rng.normal(size=n)
    y1[::7] = np.nan
    grp = np.where(cl < 4, "g1", "g2")
    y3 = np.array(["low one", "mid two", "high three"])[np.arange(n) % 3]
    y3 = np.where((grp == "g2") & (y3 == "high three"), "mid two", y3)
    y3 = pd.Categorical(y3, categories=["low one", "mid two", "high three"])
    d = pd.DataFrame({"id": cl, "grp": grp, "x1": rng.normal(size=n), "y1": y1, "y3": y3})
    d.loc[[3, 11, 24, 33], "y3"] = np.nan
    return d


@pytest.mark.filterwarnings(r"ignore:prior\['Binv'\] has no effect")
def test_single_level_dinv_is_ignored_with_a_warning(no_sampler):
    """R's jomo stops with 'unused argument (l2cov.prior = ...)' for a Dinv in a single-level
    model; it was ignored here silently (an 'a' without random_L1 warns already)."""
    with pytest.warns(MitmlWarning, match=r"prior\['Dinv'\] is used only in a multilevel model"):
        with pytest.raises(_Stopped):
            mj.jomo_impute(data(), "y1 + y3 ~ 1 + x1", prior={"Binv": np.eye(3), "Dinv": np.eye(3)},
                           **FAST)


def test_multilevel_dinv_does_not_warn(no_sampler):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MitmlWarning)
        with pytest.raises(_Stopped):
            mj.jomo_impute(data(), "y1 ~ 1 + x1 + (1|id)",
                           prior={"Binv": np.eye(1), "Dinv": np.eye(1)}, **FAST)


@pytest.mark.filterwarnings(r"ignore:prior\['Binv'\] has no effect")
@pytest.mark.parametrize("size, bad_group, need", [(3, 2, 2), (2, 1, 3)])
def test_one_prior_for_groups_of_different_sizes_says_to_give_one_per_group(no_sampler, size,
                                                                           bad_group, need):
    """Group g1 has 1 + 2 latent columns, g2 1 + 1 (R: 'nrow(l1cov.prior) == nrow(l1cov.start) is
    not TRUE' either way); the message named only the failing group's size, so a user could not
    tell that no single dict fits."""
    prior = {"Binv": np.eye(size), "Dinv": np.eye(size)}
    with pytest.raises(MitmlError, match=(
            rf"prior\['Binv'\] \(group {bad_group}\) must be a {need} x {need} matrix, got shape "
            r".*group 1: Binv 3 x 3, Dinv 3 x 3, group 2: Binv 2 x 2, Dinv 2 x 2\); give 'prior' "
            r"as a list of dicts, one per group")):
        mj.jomo_impute(data(), "y1 + y3 ~ 1 + x1 + (1|id)", group="grp", prior=prior, **FAST)


@pytest.mark.filterwarnings(r"ignore:prior\['Binv'\] has no effect")
def test_one_prior_per_group_of_the_right_sizes_is_accepted(no_sampler):
    prior = [{"Binv": np.eye(3), "Dinv": np.eye(3)}, {"Binv": np.eye(2), "Dinv": np.eye(2)}]
    with pytest.raises(_Stopped):
        mj.jomo_impute(data(), "y1 + y3 ~ 1 + x1 + (1|id)", group="grp", prior=prior, **FAST)


def test_wrong_prior_for_groups_of_equal_sizes_has_no_group_hint(no_sampler):
    with pytest.raises(MitmlError, match=r"must be a 1 x 1 matrix, got shape \(3, 3\)\.$"):
        mj.jomo_impute(data(), "y1 ~ 1 + x1 + (1|id)", group="grp",
                       prior={"Binv": np.eye(3), "Dinv": np.eye(1)}, **FAST)


def test_level2_target_missing_in_some_rows_of_a_cluster_gets_its_observed_value():
    """Cluster 1's w (continuous) and cluster 2's wc (categorical) are observed in some rows and
    missing in others; cluster 3 misses both in every row. The sampler takes clusters 1 and 2 as
    observed, so their missing rows were filled from another cell's saved slot (w = 1.99, 1.95,
    3.2 where the cluster's value is -1.51). They now hold the cluster's observed value in every
    imputation, and cluster 3 is imputed as one value per imputation (constant in the cluster)."""
    rng = np.random.default_rng(3)
    cl = np.repeat(np.arange(8), 5)
    w = rng.normal(size=8)[cl]
    wc = np.array(["p", "q", "r"])[np.arange(8) % 3][cl]
    d = pd.DataFrame({"id": cl, "y1": rng.normal(size=40) + w, "w": w,
                      "wc": pd.Categorical(wc, categories=["p", "q", "r"])})
    d.loc[[0, 2], "y1"] = np.nan
    d.loc[[5, 6], "w"] = np.nan          # cluster 1: rows 7, 8, 9 observed
    d.loc[[10, 13], "wc"] = np.nan       # cluster 2: rows 11, 12, 14 observed
    d.loc[d["id"] == 3, ["w", "wc"]] = np.nan
    imp = mj.jomo_impute(d, ["y1 ~ 1 + (1|id)", "w + wc ~ 1"], n_burn=20, n_iter=2, m=3, seed=2,
                         progress=False)
    imp = imp.extend(2, progress=False)  # extend decoded these cells from another slot as well
    for frame in imp.complete("all"):
        assert np.all(frame.loc[[5, 6], "w"] == d.loc[7, "w"])
        assert list(frame.loc[[10, 13], "wc"]) == [d.loc[11, "wc"]] * 2
        assert frame.loc[d["id"] == 3, "w"].nunique() == 1
        assert frame.loc[d["id"] == 3, "wc"].nunique() == 1
        assert frame["w"].notna().all() and frame["wc"].notna().all()
    # the stored prior holds Dinv (the identity), which extend passes on: no warning that a
    # user's Dinv has no effect with the categorical level-2 target wc
    with warnings.catch_warnings():
        warnings.simplefilter("error", MitmlWarning)
        imp.extend(m=1, progress=False)


def _level2_data() -> pd.DataFrame:
    d = data()
    wc = np.array(["p", "q", "r"])[np.arange(8) % 3][d["id"]]
    return d.assign(wc=pd.Categorical(wc, categories=["p", "q", "r"]))


@pytest.mark.parametrize("formula, random_l1, prior, pattern", [
    ("y1 + y3 ~ 1 + x1 + (1|id)", "none", {"Binv": 2 * np.eye(3)},
     r"prior\['Binv'\] has no effect with categorical level-1 targets"),
    ("y1 + y3 ~ 1 + x1", "none", {"Binv": 2 * np.eye(3)},
     r"prior\['Binv'\] has no effect with categorical level-1 targets"),
    (["y1 ~ 1 + x1 + (1|id)", "wc ~ 1"], "none", {"Binv": np.eye(1), "Dinv": 2 * np.eye(3)},
     r"prior\['Dinv'\] has no effect with categorical level-2 targets"),
])
def test_a_scale_jomo_never_uses_warns(no_sampler, formula, random_l1, prior, pattern):
    """R's jomo updates a covariance matrix with categorical (latent) blocks by a flat-prior
    Metropolis step, so Binv/Dinv change nothing there (R: identical draws with Binv = I and
    100 I, same seed); the prior was accepted and reported without a word."""
    with pytest.warns(MitmlWarning, match=pattern):
        with pytest.raises(_Stopped):
            mj.jomo_impute(_level2_data(), formula, random_L1=random_l1, prior=prior, **FAST)


@pytest.mark.parametrize("formula, random_l1, prior", [
    ("y1 ~ 1 + x1 + (1|id)", "none", {"Binv": 2 * np.eye(1), "Dinv": 2 * np.eye(1)}),
    ("y1 + y3 ~ 1 + x1 + (1|id)", "mean", {"Binv": 2 * np.eye(3), "Dinv": 2 * np.eye(3)}),
    (["y1 + y3 ~ 1 + x1 + (1|id)", "w ~ 1"], "full", {"Binv": 2 * np.eye(3), "Dinv": 2 * np.eye(4)}),
])
def test_scales_jomo_uses_do_not_warn(no_sampler, formula, random_l1, prior):
    d = _level2_data().assign(w=lambda f: f["id"] * 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MitmlWarning)
        with pytest.raises(_Stopped):
            mj.jomo_impute(d, formula, random_L1=random_l1, prior=prior, **FAST)


def test_single_observed_category_in_a_group_warns(no_sampler):
    """y3 is only 'mid two' where observed in group g2: its missing values there become 'mid two'
    in every imputation (R's jomo: 'subscript out of bounds'); this happened without a word."""
    d = data()
    d.loc[(d["grp"] == "g2") & d["y3"].notna(), "y3"] = "mid two"
    with pytest.warns(MitmlWarning, match=r"Target 'y3' has a single observed category 'mid two' "
                                          r"in group 'g2' of 'grp': its 2 missing value\(s\)"):
        with pytest.raises(_Stopped):
            mj.jomo_impute(d, "y1 + y3 ~ 1 + x1 + (1|id)", group="grp", **FAST)


def test_single_category_without_missing_values_in_that_group_does_not_warn(no_sampler):
    d = data()
    d.loc[(d["grp"] == "g2"), "y3"] = "mid two"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MitmlWarning)
        with pytest.raises(_Stopped):
            mj.jomo_impute(d, "y1 + y3 ~ 1 + x1 + (1|id)", group="grp", **FAST)
