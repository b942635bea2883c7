"""QA regressions: ImputedList operations, cluster_means, and the parquet/Mplus/SPSS writers.

Each test failed before its fix: a traceback from pandas/pyarrow/os instead of a MitmlError that
names the argument, a silently lossy round trip, or a file that R's tools would read differently
from what mitml's writers produce for the same data.
"""

import numpy as np
import pandas as pd
import pytest

from mitml_jax import ImputedList, cluster_means
from mitml_jax.errors import MitmlError, MitmlTypeError


def _two():
    f = pd.DataFrame({"a": [1.0, 2.0], "g": [1, 2]})
    return ImputedList([f, f * 2])


# -- cluster_means ------------------------------------------------------------------------------
def test_cluster_means_rows_with_missing_group_get_nan():
    # the missing (cluster, group) pairs were coded -1 and then made one more cell of their own
    x = np.array([1.0, 2.0, 3.0, 4.0])
    out = cluster_means(x, [1, 1, 1, 1], group=[np.nan, 1, 1, np.nan])
    np.testing.assert_array_equal(out, [np.nan, 2.5, 2.5, np.nan])
    out = cluster_means(x, [1, np.nan, 1, 1], group=[1, 1, 1, 2])
    np.testing.assert_array_equal(out, [2.0, np.nan, 2.0, 4.0])


# -- ImputedList operations ---------------------------------------------------------------------
def test_rbind_with_other_columns_is_an_error_as_in_r():
    # pd.concat filled the missing columns with NaN: missing values in imputed data
    with pytest.raises(MitmlError, match="rbind: the rows added to data set 1 have columns"):
        _two().rbind(pd.DataFrame({"b": [1.0]}))
    reordered = _two().rbind(pd.DataFrame({"g": [9], "a": [9.0]}), ignore_index=True)
    assert reordered[1]["a"].tolist() == [2.0, 4.0, 9.0]  # same names in another order: fine


def test_sort_and_subset_argument_errors_name_the_argument():
    implist = _two()
    with pytest.raises(MitmlError, match="'ascending' has 1 entries for 2 sort keys"):
        implist.sort(["a", "g"], ascending=[True])
    with pytest.raises(MitmlTypeError, match="sort: 'by' must be"):
        implist.sort(3)
    with pytest.raises(MitmlError, match="no sort key"):
        implist.sort([])
    with pytest.raises(MitmlTypeError, match="subset: 'columns'"):
        implist.subset(columns=3)
    assert implist.sort(("g", "a"), ascending=[False, True])[0]["g"].tolist() == [2, 1]


def test_within_two_dimensional_column_is_an_error():
    with pytest.raises(MitmlError, match=r"column 'b' has shape \(2, 2\)"):
        _two().within(lambda d: {"b": np.ones((2, 2))})
