"""Copies of DataFrames handed to the user that never write through to the data they came from.

pandas 3 (and pandas 2 with ``pd.options.mode.copy_on_write = True``) copies a column when a
shallow copy is changed, so a shallow copy is as safe as a deep one and costs nothing. pandas 2
without Copy-on-Write, which ``pandas>=2.0`` allows, shares the column arrays of a shallow copy:
``completed.loc[0, "SES"] = 0`` would then also change ``imp.data`` and every other completed
data set. :func:`detached_copy` is shallow only where Copy-on-Write protects it.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["copy_on_write", "detached_copy"]

_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def copy_on_write() -> bool:
    """Whether pandas copies shared columns on write (always from pandas 3 on)."""
    if _PANDAS_MAJOR >= 3:
        return True
    return pd.get_option("mode.copy_on_write") is True


def detached_copy(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose in-place changes never reach ``frame``: shallow under
    Copy-on-Write, deep otherwise."""
    return frame.copy(deep=not copy_on_write())
