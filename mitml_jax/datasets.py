"""mitml's example data sets, shipped with the package.

``load_studentratings()``, ``load_leadership()`` and ``load_justice()`` return fresh pandas
DataFrames on every call. Factors become ``category`` columns with R's level order (R sorts
factor levels alphabetically unless told otherwise; mitml stores ``WLOAD`` as low/high and
``sex`` as male/female), integer ids stay integers and missing values are NaN.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_studentratings", "load_leadership", "load_justice", "load_dataset"]

# Level order of each factor as R's data sets define it.
_FACTORS = {
    "studentratings": {"FedState": ["B", "SH"], "Sex": ["Boy", "Girl"]},
    "leadership": {"WLOAD": ["low", "high"]},
    "justice": {"sex": ["male", "female"]},
}
_INTEGER_IDS = {"studentratings": "ID", "leadership": "GRPID", "justice": "id"}


def load_dataset(name: str) -> pd.DataFrame:
    """Load one of mitml's data sets by name (``studentratings``, ``leadership``, ``justice``)."""
    if name not in _FACTORS:
        raise ValueError(
            f"Unknown data set {name!r}: choose one of {sorted(_FACTORS)}."
        )
    with resources.files("mitml_jax").joinpath("data", f"{name}.csv").open("rb") as handle:
        frame = pd.read_csv(handle)
    for column, levels in _FACTORS[name].items():
        frame[column] = pd.Categorical(frame[column], categories=levels)
    id_column = _INTEGER_IDS[name]
    frame[id_column] = frame[id_column].astype("int64")
    return frame


def load_studentratings() -> pd.DataFrame:
    """750 students in 50 schools (mitml's ``studentratings``)."""
    return load_dataset("studentratings")


def load_leadership() -> pd.DataFrame:
    """750 employees in 50 work groups (mitml's ``leadership``); COHES is a level-2 variable."""
    return load_dataset("leadership")


def load_justice() -> pd.DataFrame:
    """1,400 employees in 200 organisations (mitml's ``justice``); jcl is a level-2 variable."""
    return load_dataset("justice")
