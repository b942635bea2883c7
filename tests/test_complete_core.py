"""mitml_complete on hand-made Imputations objects: every value lands in its cell."""

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError
from mitml_jax.results.imputations import Imputations
from mitml_jax.results.implist import ImputedList


def make_imputations(data, cells, replacement, categories=None, targets=(), cluster=None):
    """An Imputations object built directly (no sampler)."""
    m = replacement.shape[1]
    spec = SimpleNamespace(categories=categories or {}, targets=list(targets), cluster=cluster)
    return Imputations(
        data=data.copy(), spec=spec, kind="jomo", call="test", n_burn=0, n_iter=1, m=m, chains=1,
        seed=0, prior=[], keep_chains="full", random_L1="none", replacement=replacement,
        index=np.asarray(cells, dtype=np.int64).reshape(-1, 2), burnin={}, imputation={},
        labels={}, imputation_source=np.zeros((m, 2), dtype=np.int64),
    )


@pytest.fixture
def toy():
    data = pd.DataFrame(
        {
            "id": np.array([10, 10, 20, 20, 30], dtype="int64"),
            "y": [1.0, np.nan, 3.0, np.nan, np.nan],
            "f": pd.Categorical(["b", None, "a", "c", None], categories=["c", "b", "a"]),
            "s": pd.array(["u", "v", None, "u", "v"], dtype=object),
            "w": np.array([np.nan, 2.0, 2.0, 5.0, 5.0], dtype=np.float32),
            "note": ["x1", "x2", "x3", "x4", "x5"],
        },
        index=pd.Index([105, 101, 103, 102, 104], name="row"),
    )
    col = {c: i for i, c in enumerate(data.columns)}
    cells, values = [], []
    m = 3
    # y: rows 1, 3, 4; values encode (row, imputation)
    for r in (1, 3, 4):
        cells.append((r, col["y"]))
        values.append([100 * r + i + 0.5 for i in range(m)])
    # f: rows 1 and 4, codes into ("a", "b", "c") (a different order from the dtype's)
    cells += [(1, col["f"]), (4, col["f"])]
    values += [[0, 1, 2], [2, 2, 0]]
    # s (object): row 2, codes into ("u", "v")
    cells.append((2, col["s"]))
    values.append([1, 0, 1])
    # w (float32): row 0
    cells.append((0, col["w"]))
    values.append([7.25, 8.5, 9.75])
    imp = make_imputations(
        data, cells, np.array(values, dtype=float),
        categories={"f": ("a", "b", "c"), "s": ("u", "v")}, targets=["y", "f", "s", "w"],
        cluster="id",
    )
    return data, imp


def test_every_value_in_its_cell(toy):
    data, imp = toy
    before = data.copy()
    implist = imp.complete("all")
    assert isinstance(implist, ImputedList) and len(implist) == 3
    for i, frame in enumerate(implist):
        assert list(frame.columns) == list(data.columns)
        assert frame.index.equals(data.index) and frame.index.name == "row"
        assert frame.dtypes.equals(data.dtypes)
        assert frame["f"].dtype == data["f"].dtype  # same categories, same order
        np.testing.assert_array_equal(frame["y"].to_numpy(), [1.0, 100 + i + 0.5, 3.0, 300 + i + 0.5, 400 + i + 0.5])
        assert frame["f"].tolist() == ["b", "abc"[[0, 1, 2][i]], "a", "c", "abc"[[2, 2, 0][i]]]
        assert frame["s"].tolist() == ["u", "v", "uv"[[1, 0, 1][i]], "u", "v"]
        assert frame["w"].dtype == np.float32 and frame["w"].iloc[0] == [7.25, 8.5, 9.75][i]
        assert frame["note"].tolist() == data["note"].tolist()
        assert frame["id"].dtype == np.int64
    pd.testing.assert_frame_equal(imp.data, before)  # never modified
    pd.testing.assert_frame_equal(data, before)


def test_print_variants(toy):
    data, imp = toy
    one = mj.mitml_complete(imp, 2)
    assert isinstance(one, pd.DataFrame)
    pd.testing.assert_frame_equal(one, imp.complete("list")[1])
    original = imp.complete(0)
    pd.testing.assert_frame_equal(original, data)
    wrapped = imp.complete(3, force_list=True)
    assert isinstance(wrapped, ImputedList) and len(wrapped) == 1
    pd.testing.assert_frame_equal(wrapped[0], imp.complete(3))
    several = imp.complete([3, 0, 1])
    assert isinstance(several, ImputedList) and len(several) == 3
    pd.testing.assert_frame_equal(several[1], data)
    pd.testing.assert_frame_equal(several[2], imp.complete(1))
    pd.testing.assert_frame_equal(several[0], imp.complete(3))
    assert isinstance(imp.complete(np.int64(1)), pd.DataFrame)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("some", "Invalid 'print' argument."),
        ([0, -1], "Only one negative or zero value is allowed in 'print'."),
        (4, "only m = 3"),
        ([1.5], "Invalid 'print' argument"),
        (True, "Invalid 'print' argument"),
        (None, "Invalid 'print' argument"),
    ],
)
def test_print_errors(toy, bad, message):
    _, imp = toy
    with pytest.raises(MitmlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        imp.complete(bad)


def test_bad_codes_and_index(toy):
    data, _ = toy
    col = data.columns.get_loc("f")
    imp = make_imputations(data, [(1, col)], np.array([[5.0]]), categories={"f": ("a", "b", "c")})
    with pytest.raises(MitmlError, match="outside"):
        imp.complete()
    imp = make_imputations(data, [(9, 1)], np.array([[5.0]]))
    with pytest.raises(MitmlError, match="outside 'data'"):
        imp.complete()


def test_level2_constant_within_cluster_and_speed():
    data = mj.load_studentratings()
    rng = np.random.default_rng(3)
    targets = ["ReadDis", "SES", "SchClimate"]
    cells = []
    for name in targets:
        rows = np.flatnonzero(data[name].isna().to_numpy())
        cells += [(r, data.columns.get_loc(name)) for r in rows]
    cells = np.array(cells)
    m = 100
    replacement = rng.normal(size=(len(cells), m))
    # SchClimate treated as level 2 here: the same draw for every row of a cluster
    sch = cells[:, 1] == data.columns.get_loc("SchClimate")
    cluster_draw = {cid: rng.normal(size=m) for cid in data["ID"].unique()}
    replacement[sch] = np.array([cluster_draw[data["ID"].iloc[r]] for r in cells[sch, 0]])
    imp = make_imputations(data, cells, replacement, targets=targets, cluster="ID")
    start = time.perf_counter()
    implist = imp.complete()
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0  # about 1 ms per data set measured (noisy shared machine)
    n_missing = int(data[targets].isna().sum().sum())
    assert len(cells) == n_missing
    for i in (0, 57, 99):
        frame = implist[i]
        assert not frame[targets].isna().any().any()
        observed = data.notna().to_numpy()
        for name in data.columns:
            mask = data[name].notna().to_numpy()
            np.testing.assert_array_equal(frame[name].to_numpy()[mask], data[name].to_numpy()[mask])
        imputed = frame.loc[data["SchClimate"].isna(), ["ID", "SchClimate"]]
        for cid, values in imputed.groupby("ID")["SchClimate"]:
            assert np.all(values.to_numpy() == cluster_draw[cid][i])
        assert frame.notna().to_numpy().sum() == observed.sum() + n_missing


def test_nullable_and_string_targets():
    data = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "f": pd.array([None, 2.5, 3.5], dtype="Float64"),
            "s": pd.array(["x", "y", None], dtype="str"),
        }
    )
    imp = make_imputations(
        data, [(1, 0), (0, 1), (2, 2)], np.array([[1.5, 2.0], [0.25, 0.5], [1, 0]]),
        categories={"s": ("x", "y")},
    )
    first, second = imp.complete()
    assert first["i"].dtype == np.float64 and first["i"].tolist() == [1.0, 1.5, 3.0]
    assert second["i"].tolist() == [1.0, 2.0, 3.0]
    assert first["f"].dtype == data["f"].dtype and first["f"].tolist() == [0.25, 2.5, 3.5]
    assert first["s"].dtype == data["s"].dtype and first["s"].tolist() == ["x", "y", "y"]
    assert second["s"].tolist() == ["x", "y", "x"]
    assert imp.complete(0)["i"].dtype == data["i"].dtype
    bad = make_imputations(
        pd.DataFrame({"k": np.array([1, 2], dtype=np.int64)}), [(0, 0)], np.array([[1.0]])
    )
    with pytest.raises(MitmlError, match="cannot hold missing values"):
        bad.complete()
