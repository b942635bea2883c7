"""imp.to_arviz(): dims, coords and values (skips without arviz)."""

import numpy as np
import pytest

from diagnostics_fakes import fake_imputations
from mitml_jax.diagnostics.arviz_export import arviz_coords


def test_coords_without_arviz():
    coords, dims = arviz_coords(fake_imputations(groups=2))
    assert dims["beta"] == ["group", "predictor", "target"]
    assert coords["target"] == ["ReadAchiev", "ReadDis", "SchClimate"]
    assert coords["psi_row"][1] == "ReadDis ON (Intercept)"
    assert coords["group"] == ["1", "2"]
    coords, dims = arviz_coords(fake_imputations(keep_chains="diagonal"))
    assert dims["sigma"] == ["sigma_row", "diagonal"] and coords["diagonal"] == ["diagonal"]


def test_to_arviz_values_and_rhat():
    az = pytest.importorskip("arviz")
    imp = fake_imputations(chains=3, n_burn=20, n_iter=5, m=4)
    idata = imp.to_arviz()
    post = idata.posterior if hasattr(idata, "posterior") else idata["posterior"]
    beta = post["beta"]
    assert beta.dims == ("chain", "draw", "predictor", "target")
    np.testing.assert_array_equal(beta.values, imp.imputation["beta"][:, :, 0])
    assert list(beta.coords["target"].values) == ["ReadAchiev", "ReadDis", "SchClimate"]
    warm = idata.warmup_posterior if hasattr(idata, "warmup_posterior") else idata[
        "warmup_posterior"]
    assert warm["psi"].shape == (3, 20, 3, 3)
    r = az.rhat(idata)["sigma"].values
    assert np.all(np.isfinite(r[np.tril_indices(3)]))
    grouped = fake_imputations(groups=2).to_arviz()
    gpost = grouped.posterior if hasattr(grouped, "posterior") else grouped["posterior"]
    assert gpost["sigma"].dims == ("chain", "draw", "group", "sigma_row", "sigma_col")


def test_jomo_coords_name_clusters_and_level2():
    from diagnostics_fakes import fake_jomo_imputations

    imp = fake_jomo_imputations(chains=1)
    coords, dims = arviz_coords(imp)
    assert dims["beta2"] == ["predictor_l2", "target_l2"] and coords["target_l2"] == ["COHES"]
    assert coords["psi_row"][-1] == "COHES"
    first = str(np.sort(imp.data.GRPID.unique())[0])
    assert coords["sigma_row"][0] == f"JOBSAT|GRPID:{first}" and len(coords["sigma_row"]) == 150
