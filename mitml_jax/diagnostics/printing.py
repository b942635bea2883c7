"""Text of ``print(imp)``: mitml's ``print.mitml`` layout (spec 1.2), plus the number of chains.

Layout (verified against R): a blank line, ``Call:``, a blank line, the call, a blank line, the
model block with labels left-justified to 25 characters followed by space-separated values and a
trailing space (cluster and random-effect lines only for multilevel models; ``Level 1:`` /
``Level 2:`` blocks for two-level jomo models), then the iteration sentence and, with groups,
``Imputations were carried out seperately within <G> groups.`` (sic, as mitml). With more than
one chain a line ``Chains: <C> (run in parallel; ...)`` follows; mitml always runs one. An object
loaded from a file saved with ``save(path, drop=True)`` ends with a line ``Parameter draws:
dropped ...`` (mitml's ``write.mitml(drop = TRUE)`` loses the class, so R prints a plain list).

The small table formatters here reproduce R's ``print.table`` for numeric and character matrices
and are shared by the summary.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "format_imputations", "format_header", "format_numeric_table", "format_text_table", "r_format",
    "r_character",
]


def _label(text: str) -> str:
    return f"{text:<25}"


def _line(label: str, values) -> str:
    return " ".join([_label(label), *[str(v) for v in values]]) + " \n"


def _model_lines(spec) -> str:
    multilevel = getattr(spec, "cluster", None) is not None
    two_level = bool(getattr(spec, "targets_l2", ()))
    out = ""
    if two_level:
        out += "Level 1:\n \n"
    if multilevel:
        out += _line("Cluster variable:", [spec.cluster])
    out += _line("Target variables:", spec.targets)
    out += _line("Fixed effect predictors:", spec.fixed_terms or spec.fixed_names)
    if multilevel:
        out += _line("Random effect predictors:", spec.random_terms or spec.random_names)
    if two_level:
        # R: cat(formatC("Level 2:\n", width = -25), ...); formatC pads to 24 characters here
        # (15 spaces after the newline), then cat adds its separator: 16 spaces in all.
        out += "\nLevel 2:\n" + " " * 15 + " \n"
        out += _line("Target variables:", spec.targets_l2)
        out += _line("Fixed effect predictors:", spec.fixed_terms_l2 or spec.fixed_names_l2)
    return out


def _spacing(imp) -> str:
    """``n_iter`` as text; after ``extend(n_iter=...)`` with another spacing, each spacing with
    the imputations it applies to (``extra["n_iter_history"]``: (count, n_iter) pairs)."""
    history = (imp.extra or {}).get("n_iter_history") if isinstance(imp.extra, dict) else None
    runs = []
    for count, n_iter in history or ():
        if runs and runs[-1][1] == n_iter:
            runs[-1][0] += int(count)
        else:
            runs.append([int(count), int(n_iter)])
    if len(runs) < 2:
        return f"{imp.n_iter:.0f}"
    parts, start = [], 1
    for count, n_iter in runs:
        span = f"{start}" if count == 1 else f"{start}-{start + count - 1}"
        parts.append(f"{n_iter} (imputation{'s' if count > 1 else ''} {span})")
        start += count
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def format_header(imp, for_summary: bool = False) -> str:
    """Call, model block and iteration sentence, exactly as mitml prints them."""
    call = str(imp.call).rstrip("\n")
    out = "\nCall:\n\n" + call + "\n\n"
    out += _model_lines(imp.spec)
    out += (
        f"\nPerformed {imp.n_burn:.0f} burn-in iterations, and generated {imp.m:.0f} "
        f"imputed data sets,\neach {_spacing(imp)} iterations apart. "
    )
    groups = imp.n_groups
    if groups > 1:
        out += f"\nImputations were carried out seperately within {groups:.0f} groups."
        out += " \n" if for_summary else "\n \n"
    else:
        out += "\n"
    if imp.chains > 1:
        source = np.asarray(imp.imputation_source)
        used = len(np.unique(source[:, 0])) if source.size else imp.chains
        out += (
            f"Chains: {imp.chains} (run in parallel; the {imp.m} imputations come from "
            f"{used} of them).\n"
        )
    return out


def format_imputations(imp) -> str:
    """``repr(imp)`` / ``print(imp)``: mitml's print layout; an object saved with
    ``save(path, drop=True)`` gets one more line saying that its parameter draws were dropped."""
    out = format_header(imp, for_summary=False)
    if getattr(imp, "draws_dropped", False):
        out += ("Parameter draws: dropped when saved with save(path, drop=True) "
                "(summary, plot and extend need them).\n")
    return out


# -- R's print.table -------------------------------------------------------------------------
def r_format(values, digits: int = 7) -> list:
    """R's ``format()`` of a numeric vector: one common layout for all values.

    Fixed notation with the largest number of decimals any value needs at ``digits`` significant
    digits (trailing zeros dropped), unless scientific notation is narrower; every string padded
    on the left to the common width; missing values as ``"NA"``, infinities ``"Inf"``/``"-Inf"``.
    """
    vals = np.asarray(values, dtype=float).ravel()
    finite = vals[np.isfinite(vals)]
    left, right, sig, exp_width = 1, 0, 1, 2
    for v in np.abs(finite):
        if v == 0:
            continue
        mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
        e = int(exponent)
        n_sig = len(mantissa.replace(".", "").rstrip("0")) or 1
        sig, left = max(sig, n_sig), max(left, e + 1)
        right, exp_width = max(right, n_sig - 1 - e), max(exp_width, len(str(abs(e))))
    neg = int(bool((finite < 0).any()))
    fixed = neg + left + (right + 1 if right > 0 else 0)
    scientific = neg + sig + (1 if sig > 1 else 0) + 2 + exp_width
    out = []
    for v in vals:
        if np.isnan(v):
            out.append("NA")
        elif np.isinf(v):
            out.append("Inf" if v > 0 else "-Inf")
        elif fixed <= scientific:
            out.append(f"{v:.{right}f}")
        else:
            mantissa, exponent = f"{v:.{sig - 1}e}".split("e")
            out.append(f"{mantissa}e{exponent[0]}{abs(int(exponent)):0{exp_width}d}")
    width = max((len(t) for t in out), default=0)
    return [t.rjust(width) for t in out]


def r_character(value) -> str:
    """One number as R's ``as.character`` (or ``paste``) writes it: up to 15 significant digits,
    fixed notation unless the scientific one is shorter (``2`` for 2.0, ``1234567``, ``1e+05``,
    ``0.1``, ``Inf``); a value that is not a number is kept as its text."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return r_format([number], 15)[0]


def _format_column(values) -> list:
    """Per-column layout (R's ``format`` of one column rounded to 3 decimals)."""
    return [t.strip() for t in r_format(values)]


def _wrap(rw: int, widths: list, width: int = 80) -> list:
    """Column chunks that fit ``width`` characters, as R wraps wide tables."""
    chunks, current, used = [], [], rw
    for j, w in enumerate(widths):
        if current and used + 1 + w > width:
            chunks.append(current)
            current, used = [], rw
        current.append(j)
        used += 1 + w
    if current:
        chunks.append(current)
    return chunks


def _table(rows, cols, cells, widths, right: bool) -> str:
    rw = max(len(r) for r in rows)
    out = []
    for chunk in _wrap(rw, widths):
        def cell(text, w):
            return f"{text:>{w}}" if right else f"{text:<{w}}"

        out.append(" ".join([" " * rw] + [cell(cols[j], widths[j]) for j in chunk]))
        for i, r in enumerate(rows):
            out.append(" ".join([f"{r:<{rw}}"] + [cell(cells[i][j], widths[j]) for j in chunk]))
    return "\n".join(out) + "\n"


def format_numeric_table(rows, cols, values, per_column: bool = False) -> str:
    """R's ``print.table(round(x, 3))`` of a numeric matrix (right-justified columns).

    As in R, the matrix is formatted as a whole (``format(unclass(x))``): the same number of
    decimals and the same width for every cell, and missing values print as empty cells
    (``na.print = ""``). ``per_column=True`` lays out each column on its own instead (a table
    mixing counts and ratios then keeps its counts whole); mitml's tables never use it.
    """
    values = np.round(np.asarray(values, dtype=float), 3)
    if per_column:
        columns = [_format_column(values[:, j]) for j in range(values.shape[1])]
    else:
        flat = r_format(values.ravel(order="F"))
        columns = [flat[j * len(rows) : (j + 1) * len(rows)] for j in range(len(cols))]
        columns = [["" if np.isnan(v) else t for v, t in zip(values[:, j], columns[j])]
                   for j in range(len(cols))]
    cells = [[columns[j][i] for j in range(len(cols))] for i in range(len(rows))]
    widths = [max(len(c), *(len(s) for s in columns[j])) for j, c in enumerate(cols)]
    return _table(rows, cols, cells, widths, right=True)


def format_text_table(rows, cols, cells) -> str:
    """R's ``print.table`` of a character matrix (left-justified, headers too)."""
    ncol = len(cols)
    widths = [max(len(cols[j]), *(len(cells[i][j]) for i in range(len(rows)))) for j in range(ncol)]
    return _table(rows, cols, cells, widths, right=False)
