"""The shipped data sets against mitml 0.4-4's (tests/reference/crosscheck_implist/datasets.json).

Every column is compared by its missing positions and full-precision checksums (sum, sum of
squares, position-weighted sum), factors by their level order and codes. Documented
differences: id columns are int64 here (R: double for ID and GRPID), and studentratings' Sex,
a character column in R, is a category with the levels R's model.matrix would use (Boy, Girl).
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from mitml_jax import load_justice, load_leadership, load_studentratings

HERE = os.path.join(os.path.dirname(__file__), "reference", "crosscheck_implist")
LOADERS = {"studentratings": load_studentratings, "leadership": load_leadership,
           "justice": load_justice}


@pytest.fixture(scope="module")
def ref():
    with open(os.path.join(HERE, "datasets.json")) as handle:
        return json.load(handle)


@pytest.mark.parametrize("name", list(LOADERS))
def test_data_set_equals_r(name, ref):
    r = ref[name]
    d = LOADERS[name]()
    assert list(d.shape) == r["dim"] and list(d.columns) == r["names"]
    for column, entry in r["columns"].items():
        v = d[column]
        missing = np.flatnonzero(v.isna().to_numpy()) + 1
        assert missing.tolist() == list(np.atleast_1d(entry["na"])), column
        if entry["class"] == "character":
            assert isinstance(v.dtype, pd.CategoricalDtype)
            assert list(v.cat.categories) == sorted(set(entry["values"]))
            assert v.astype(str).tolist() == entry["values"]
            continue
        if entry["class"] == "factor":
            assert list(v.cat.categories) == entry["levels"], column
            num = (v.cat.codes + 1).to_numpy(dtype=float)
        else:
            assert pd.api.types.is_numeric_dtype(v.dtype), column
            num = v.to_numpy(dtype=float, na_value=np.nan)
        ok = ~np.isnan(num) if entry["class"] != "factor" else (v.cat.codes >= 0).to_numpy()
        pos = np.arange(1, len(v) + 1)
        for key, value in (("sum", num[ok].sum()), ("sumsq", (num[ok] ** 2).sum()),
                           ("wsum", (pos[ok] * num[ok]).sum())):
            assert value == pytest.approx(entry[key], rel=1e-13, abs=1e-9), (column, key)
