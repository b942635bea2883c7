"""cluster_means (mitml's clusterMeans), including string cluster ids (bug B16 fixed)."""

import numpy as np
import pandas as pd
import pytest

from mitml_jax import cluster_means
from mitml_jax.errors import MitmlError, MitmlTypeError

X = np.array([1.0, 2.0, np.nan, 4.0, 10.0, 20.0, np.nan])
CLUSTER = np.array([1, 1, 1, 1, 2, 2, 3])


def test_means_ignore_missing_and_empty_cluster_is_nan():
    out = cluster_means(X, CLUSTER)
    expected = [7 / 3] * 4 + [15.0, 15.0, np.nan]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)
    assert isinstance(out, np.ndarray)


def test_string_and_categorical_ids_give_the_same_answer():
    numeric = cluster_means(X, CLUSTER)
    as_string = cluster_means(X, np.array(["a", "a", "a", "a", "b", "b", "c"], dtype=object))
    as_category = cluster_means(X, pd.Categorical(["z", "z", "z", "z", "y", "y", "x"]))
    np.testing.assert_array_equal(numeric, as_string)
    np.testing.assert_array_equal(numeric, as_category)


def test_leave_one_out():
    out = cluster_means(X, CLUSTER, adj=True)
    # cluster 1: observed 1, 2, 4 (n=3, sum 7)
    np.testing.assert_allclose(out[[0, 1, 3]], [(7 - 1) / 2, (7 - 2) / 2, (7 - 4) / 2])
    assert np.isnan(out[2])  # x missing
    np.testing.assert_allclose(out[[4, 5]], [20.0, 10.0])
    assert np.isnan(out[6])


def test_group_splits_cells():
    group = np.array(["m", "f", "m", "f", "m", "m", "f"])
    out = cluster_means(X, CLUSTER, group=group)
    np.testing.assert_allclose(out[:4], [1.0, 3.0, 1.0, 3.0])
    np.testing.assert_allclose(out[4:6], [15.0, 15.0])
    assert np.isnan(out[6])


def test_series_and_column_names():
    frame = pd.DataFrame({"x": X, "id": CLUSTER}, index=list("abcdefg"))
    by_series = cluster_means(frame.x, frame.id)
    assert isinstance(by_series, pd.Series) and by_series.index.equals(frame.index)
    by_name = cluster_means("x", "id", data=frame)
    pd.testing.assert_series_equal(by_series, by_name)
    np.testing.assert_array_equal(by_series.to_numpy(), cluster_means(X, CLUSTER))


def test_missing_cluster_id_gives_nan():
    ids = pd.Series([1, 1, None, 2], dtype="Int64")
    out = cluster_means(np.array([1.0, 3.0, 5.0, 7.0]), ids)
    np.testing.assert_allclose(out, [2.0, 2.0, np.nan, 7.0])


def test_errors():
    with pytest.raises(MitmlError, match="length"):
        cluster_means(X, CLUSTER[:3])
    with pytest.raises(MitmlTypeError, match="data="):
        cluster_means("x", CLUSTER)
    with pytest.raises(MitmlError, match="'nope'"):
        cluster_means("nope", "id", data=pd.DataFrame({"id": CLUSTER}))
    with pytest.raises(MitmlTypeError, match="numeric"):
        cluster_means(pd.Series(list("abcdefg")), CLUSTER)
