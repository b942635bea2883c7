"""mitml-style text tables and footers for the pooling results (R's ``.formatTable``).

Rules (spec 1.5): every column is printed with ``%.<digits>f``; a column switches to
``%.<digits>e`` if any of its values is >= 10**sci_limit; all cells share one width (the longest
header or cell); headers and cells are right-justified, row names left-justified; cells are
separated by single spaces and every line ends with a space (R's ``cat(cells, "\\n")``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..diagnostics.printing import r_character

__all__ = ["format_number", "format_table", "table_lines", "df_footer", "format_call"]


def format_number(value, spec: str) -> str:
    """``sprintf(spec, value + 0)`` as R prints it (``NaN``, ``NA``, ``Inf``, no ``-0``)."""
    if value is None:
        return "NA"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return spec % (value + 0.0)


def format_table(values, row_names: Sequence[str] | None, col_names: Sequence[str],
                 digits=3, sci_limit: int = 5) -> list[list[str]]:
    """Cells of a table formatted like mitml's ``.formatTable``.

    Args:
        values: (rows, cols) numbers.
        row_names: row labels, or None for none (an empty first column, as R prints it).
        col_names: column labels.
        digits: decimals, one number or one per column.
        sci_limit: a column with any value >= 10**sci_limit is printed in ``e`` notation.

    Returns:
        list of rows (header first), each a list of cells with the row-name cell first.
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(col_names))
    n_rows, n_cols = values.shape
    digits = list(np.broadcast_to(np.asarray(digits), (n_cols,)))
    cells = []
    for j in range(n_cols):
        col = values[:, j]
        large = bool(np.any(np.nan_to_num(col, nan=-np.inf) >= 10.0**sci_limit))
        spec = f"%.{int(digits[j])}{'e' if large else 'f'}"
        cells.append([format_number(v, spec) for v in col])
    width = max([len(c) for c in col_names] + [len(c) for col in cells for c in col] + [0])
    names = [""] + (list(row_names) if row_names is not None else [""] * 0)
    name_width = max(len(n) for n in names)
    if row_names is None:
        names = [""] * (n_rows + 1)
    out = [[names[0].ljust(name_width)] + [c.rjust(width) for c in col_names]]
    for i in range(n_rows):
        out.append([names[i + 1].ljust(name_width)] + [cells[j][i].rjust(width) for j in range(n_cols)])
    return out


def table_lines(cells: list[list[str]], indent: bool = False) -> str:
    """Lines as R's ``cat(out[i, ], "\\n")`` (or ``cat("  ", out[i, ], "\\n")`` with ``indent``)."""
    prefix = "   " if indent else ""
    return "".join(prefix + " ".join(row) + " \n" for row in cells)


def df_footer(df_com) -> str:
    """The degrees-of-freedom footer of test_estimates / D1 (without the final newline)."""
    if df_com is None:
        return "Unadjusted hypothesis test as appropriate in larger samples."
    values = np.atleast_1d(np.asarray(df_com, dtype=float))
    text = ",".join(r_character(v) for v in values)  # as R pastes them: 1234567, 1e+05, Inf
    return (f"Hypothesis test adjusted for small samples with df=[{text}]\n"
            "complete-data degrees of freedom.")


def format_call(name: str, args: Sequence[str] = (), **kwargs) -> str:
    """Text for the ``Call:`` header, e.g. ``test_models(model, null_model, method='D2')``.

    ``args`` are printed as given (argument names); keyword values that are None are left out.
    """
    def text(value):  # NumPy arrays and scalars as plain Python values
        if isinstance(value, (np.ndarray, np.generic)):
            value = value.tolist()
        return repr(value)

    parts = list(args) + [f"{key}={text(value)}" for key, value in kwargs.items() if value is not None]
    return f"{name}({', '.join(parts)})"
