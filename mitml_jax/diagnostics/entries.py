"""The non-redundant parameter entries of an :class:`~mitml_jax.Imputations` and their names.

mitml reports and plots one entry per (group, block, row, column), skipping redundant entries of
the symmetric blocks: Psi's upper triangle and, for Sigma, ``j > ((i - 1) mod ncol) + 1`` (which
also handles jomo's stacked cluster-specific Sigma). Titles and file names follow plot.mitml
(spec 3.5): ``Beta [i,j]: y ON x``, ``Psi [i,j]: (y ON z) WITH (y' ON z')``, ``Sigma [i,j]: y WITH y'``,
file names ``BETA_<Group-g_>y_ON_x`` etc. with ``(),`` removed and whitespace replaced by ``-``.
Entry order is mitml's plotting order: group, block, then column outer and row inner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .printing import r_character

__all__ = [
    "Entry", "parameter_entries", "entry_draws", "entry_draws_by_entry", "entry_chunks",
    "file_stem", "gather_draws", "group_labels", "latent_names", "sigma_names",
]

BLOCK_TITLES = {"beta": "Beta", "beta2": "Beta2", "psi": "Psi", "sigma": "Sigma"}


@dataclass(frozen=True)
class Entry:
    """One parameter entry; ``group``, ``row``, ``col`` are 0-based array positions."""

    block: str
    group: int
    row: int
    col: int
    group_label: str
    row_label: str
    col_label: str
    title: str
    file_stem: str

    @property
    def position(self) -> str:
        """mitml's 1-based ``[i,j]``."""
        return f"[{self.row + 1},{self.col + 1}]"


def group_labels(imp) -> list:
    """Group labels in group-code order (order of first appearance), or ``[""]`` without groups."""
    labels = _raw_group_labels(imp)
    if len(labels) > 1 and _float_group(imp):
        return [r_character(v) for v in labels]
    return labels


def _raw_group_labels(imp) -> list:
    """Group labels as the sampler stored them (``str`` of each group value)."""
    spec = imp.spec
    labels = imp.extra.get("group_labels") if isinstance(imp.extra, dict) else None
    if labels is None and getattr(spec, "group", None) and spec.group in imp.data.columns:
        labels = pd.unique(imp.data[spec.group].dropna())
    if labels is None or len(labels) != imp.n_groups:
        labels = [str(g + 1) for g in range(imp.n_groups)] if imp.n_groups > 1 else [""]
    return [str(v) for v in labels]


def _float_group(imp) -> bool:
    """Whether the run's group column holds floats (their labels are printed as R's numbers)."""
    name = getattr(imp.spec, "group", None)
    data = getattr(imp, "data", None)
    if not name or data is None or name not in data.columns:
        return False
    return pd.api.types.is_float_dtype(data[name].dtype)


def _names(imp, block: str, axis: int, size: int, default) -> list:
    """Labels from ``imp.labels`` when they fit, else ``default`` when it fits, else numbers."""
    given = (imp.labels or {}).get(block)
    if given is not None and len(given) > axis and given[axis] is not None:
        if len(given[axis]) == size:
            return [str(v) for v in given[axis]]
    if default is not None and len(default) == size:
        return [str(v) for v in default]
    return [str(i + 1) for i in range(size)]


def latent_names(imp, level: int = 1, group: int | None = None) -> list:
    """Names of the level-1 (or level-2) target columns of the parameter blocks.

    A categorical target with K > 2 categories has K - 1 latent columns, named as mitml names
    them (``y1``, ``y2``, ...); the sampler stores these names as beta's (beta2's) column
    labels. Without them, the spec's target names. With ``group``, that group's own names come
    first (jomo's groups can observe different categories, and mitml names each group's columns
    by its own categories; the widest group's names remain for the padded columns).
    """
    block, field = ("beta", "targets") if level == 1 else ("beta2", "targets_l2")
    default = list(getattr(imp.spec, field, ()))
    arr = (imp.imputation or {}).get(block)
    if arr is None or arr.shape[4] == 0:
        return default
    names = _names(imp, block, 1, arr.shape[4], default)
    own = _own_latent(imp, group, level)
    return names if own is None or len(own) > len(names) else own + names[len(own):]


def _own_latent(imp, group: int | None, level: int):
    """Group ``group``'s own latent column names (jomo with groups keeps them), or None."""
    if group is None:
        return None
    per = (getattr(imp, "extra", None) or {}).get("latent_columns" if level == 1 else "latent_columns_l2")
    if per is None or group >= len(per):
        return None
    return [str(v) for v in per[group]]


def _psi_components(imp, size: int, group: int | None = None) -> list:
    """Psi row i -> (target, random effect or None for L2 targets), index (j-1)q + k; with
    ``group``, that group's own rows first (see :func:`latent_names`)."""
    random = list(getattr(imp.spec, "random_names", ()))

    def components(l1, l2):
        return [(y, z) for y in l1 for z in random] + [(y, None) for y in l2]

    l2 = latent_names(imp, 2)
    comps = components(latent_names(imp, 1), l2)
    if len(comps) != size:
        return [(n, None) for n in _names(imp, "psi", 0, size, None)]
    own1, own2 = _own_latent(imp, group, 1), _own_latent(imp, group, 2)
    if own2 is None and not l2:
        own2 = []
    if own1 is not None and own2 is not None:
        mine = components(own1, own2)
        if len(mine) <= size:
            return mine + comps[len(mine):]
    return comps


def sigma_names(imp, nrow: int, ncol: int) -> list:
    """Names of Sigma's variables (its columns; stacked cluster blocks repeat them row-wise).

    With ``keep_chains="diagonal"`` Sigma has one column, and its variables are the level-1
    latent columns (beta's columns), not the targets: a categorical target with K > 2
    categories has K - 1 of them.
    """
    if imp.keep_chains != "diagonal":
        return _names(imp, "sigma", 1, ncol, latent_names(imp, 1))
    names = latent_names(imp, 1)
    if names and nrow % len(names) == 0:
        return names
    return [str(i + 1) for i in range(nrow)]


def _group_sigma_names(imp, names: list, group: int) -> list:
    """Sigma's variables in group ``group``: its own latent columns where jomo kept them (their
    number is also the row step of its stacked cluster blocks), else ``names``."""
    own = _own_latent(imp, group, 1)
    return own if own and len(own) <= len(names) and names == latent_names(imp, 1) else names


def file_stem(stem: str) -> str:
    """mitml's file name of a plot: ``(``, ``)`` and ``,`` removed, whitespace as ``-``.

    Unlike mitml, path separators (``/``, ``\\``) and NUL in names, group labels or cluster ids
    (e.g. a group ``"Berlin/Brandenburg"``) are also written as ``-``, so that the name stays
    one file in the export folder (R tries to write into a subfolder that does not exist).
    """
    return re.sub(r"[\s/\\\x00]", "-", re.sub(r"[(),]", "", stem))


def _cluster_ids(imp, g: int, count: int) -> list:
    """Cluster values of group ``g`` in sorted order (jomo's stacked Sigma rows), else 1..count."""
    spec = imp.spec
    cluster = getattr(spec, "cluster", None)
    if cluster and cluster in imp.data.columns:
        rows = imp.data
        if getattr(spec, "group", None) and spec.group in rows.columns:
            rows = rows[rows[spec.group].astype(str) == _raw_group_labels(imp)[g]]
        values = np.sort(pd.unique(rows[cluster].dropna()))
        if len(values) <= count:  # fewer: a group with fewer clusters (rows after them are padding)
            as_r = pd.api.types.is_float_dtype(rows[cluster].dtype)  # 2.0 as R writes it: 2
            labels = [r_character(v) if as_r else str(v) for v in values]
            return labels + [str(c + 1) for c in range(len(values), count)]
    return [str(c + 1) for c in range(count)]


def _finite_entries(arr: np.ndarray) -> np.ndarray:
    """Which (row, col) entries of (chain, draw, row, col) draws have any finite value.

    The first draw of every chain decides for almost all entries; only entries without a finite
    first draw are scanned in full.
    """
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        return np.zeros(arr.shape[2:], dtype=bool)
    finite = np.isfinite(arr[:, 0]).any(axis=0)
    rows, cols = np.nonzero(~finite)
    if len(rows):
        finite[rows, cols] = np.isfinite(arr[:, :, rows, cols]).any(axis=(0, 1))
    return finite


def parameter_entries(imp, blocks=None, groups=None) -> list:
    """Non-redundant entries of ``blocks`` (default None: all present; an empty list: none) for
    ``groups`` (0-based)."""
    blocks = [b for b in (imp.blocks if blocks is None else blocks) if b in imp.imputation]
    glabels = group_labels(imp)
    groups = range(imp.n_groups) if groups is None else groups
    spec = imp.spec
    diagonal = imp.keep_chains == "diagonal"
    out = []
    for g in groups:
        glab = f",Group:{glabels[g]}" if imp.n_groups > 1 else ""
        gfile = f"Group-{glabels[g]}_" if imp.n_groups > 1 else ""
        for block in blocks:
            arr = imp.imputation[block]
            nrow, ncol = arr.shape[3], arr.shape[4]
            finite = _finite_entries(arr[:, :, g])
            name = BLOCK_TITLES[block]
            if block in ("beta", "beta2"):
                l2 = block == "beta2"
                rows = _names(imp, block, 0, nrow,
                              getattr(spec, "fixed_names_l2" if l2 else "fixed_names", None))
                cols = latent_names(imp, 2 if l2 else 1, g)
                for j in range(ncol):
                    for i in range(nrow):
                        if not finite[i, j]:
                            continue
                        title = f"{name} [{i + 1},{j + 1}{glab}]: {cols[j]} ON {rows[i]}"
                        stem = f"{block.upper()}_{gfile}{cols[j]}_ON_{rows[i]}"
                        out.append(Entry(block, g, i, j, glabels[g], rows[i], cols[j],
                                         title, file_stem(stem)))
            elif block == "psi":
                comps = _psi_components(imp, nrow, g)
                for j in range(ncol):
                    for i in range(j if not diagonal else 0, nrow):
                        if not finite[i, j]:
                            continue
                        yc, zc = comps[i if diagonal else j]
                        yr, zr = comps[i]

                        def text(y, z):
                            return y if z is None else f"({y} ON {z})"

                        def ftext(y, z):
                            return y if z is None else f"{y}_ON_{z}"

                        title = f"Psi [{i + 1},{j + 1}{glab}]: {text(yr, zr)} WITH {text(yc, zc)}"
                        stem = f"PSI_{gfile}{ftext(yr, zr)}_WITH_{ftext(yc, zc)}"
                        out.append(Entry(block, g, i, j, glabels[g], text(yr, zr),
                                         text(yc, zc), title, file_stem(stem)))
            elif block == "sigma":
                widest = sigma_names(imp, nrow, ncol)
                stacked = nrow > len(widest)
                names = _group_sigma_names(imp, widest, g)
                nvar = len(names)
                clus = getattr(spec, "cluster", None) or "Cluster"
                ids = _cluster_ids(imp, g, nrow // max(nvar, 1)) if stacked else []
                for j in range(ncol):
                    for i in range(nrow):
                        v = i % nvar
                        if not diagonal and (j > v):
                            continue
                        if not finite[i, j]:
                            continue
                        vc = v if diagonal else j
                        suffix, fsuffix = "", ""
                        if stacked:
                            c = ids[i // nvar]
                            suffix, fsuffix = f" [{clus}:{c}]", f"_{clus}{c}"
                        title = f"Sigma [{i + 1},{j + 1}{glab}]: {names[v]} WITH {names[vc]}{suffix}"
                        stem = f"SIGMA_{gfile}{names[v]}_WITH_{names[vc]}{fsuffix}"
                        out.append(Entry(block, g, i, j, glabels[g], names[v], names[vc],
                                         title, file_stem(stem)))
    return out


def entry_draws(imp, entries, phase: str = "imputation") -> np.ndarray:
    """Draws of ``entries`` stacked on the last axis: (chain, draw, entry).

    ``phase`` is ``"imputation"``, ``"burnin"`` or ``"all"`` (burn-in followed by imputation).
    """
    def pick(source):
        if not entries:
            first = next(iter(source.values()))
            return np.zeros(first.shape[:2] + (0,))
        cols = [source[e.block][:, :, e.group, e.row, e.col] for e in entries]
        return np.stack(cols, axis=-1).astype(float, copy=False)

    if phase == "imputation":
        return pick(imp.imputation)
    if phase == "burnin":
        return pick(imp.burnin)
    return np.concatenate([pick(imp.burnin), pick(imp.imputation)], axis=1)


def entry_chunks(imp, entries, size: int = 8, phase: str = "imputation") -> list:
    """Entries cut into chunks of at most ``size`` that sit next to each other in memory.

    Returns a list of ``(rows, source, flat)``: positions in ``entries``, the source draws
    ``(chain, draw, F)`` of one block and group, and the entries' positions among its ``F``
    columns (ascending, so that a chunk's draws share cache lines).
    """
    source = imp.imputation if phase == "imputation" else imp.burnin
    by_source = {}
    for k, e in enumerate(entries):
        ncol = source[e.block].shape[4]
        by_source.setdefault((e.block, e.group), []).append((e.row * ncol + e.col, k))
    chunks = []
    for (block, group), items in by_source.items():
        arr = source[block][:, :, group]
        arr = arr.reshape(arr.shape[:2] + (-1,))
        items.sort()
        for lo in range(0, len(items), size):
            part = items[lo : lo + size]
            chunks.append((np.array([k for _, k in part]), arr, np.array([f for f, _ in part])))
    return chunks


def gather_draws(source: np.ndarray, flat: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy columns ``flat`` of (chain, draw, F) draws into ``out`` (len(flat), chain, draw).

    A few chains at a time, so that reads and writes stay in cache.
    """
    chains, draws = source.shape[:2]
    step = max(1, 2**15 // max(1, draws * len(flat)))
    cols = slice(flat[0], flat[-1] + 1) if np.all(np.diff(flat) == 1) else flat
    for c0 in range(0, chains, step):
        out[:, c0 : c0 + step] = source[c0 : c0 + step][:, :, cols].transpose(2, 0, 1)
    return out


def entry_draws_by_entry(imp, entries, phase: str = "imputation") -> np.ndarray:
    """Imputation-phase (or burn-in) draws as a contiguous (entry, chain, draw) float array."""
    source = imp.imputation if phase == "imputation" else imp.burnin
    if not entries:
        first = next(iter(source.values()))
        return np.zeros((0,) + first.shape[:2])
    out = np.empty((len(entries),) + source[entries[0].block].shape[:2])
    for rows, arr, flat in entry_chunks(imp, entries, size=64, phase=phase):
        out[rows] = gather_draws(arr, flat, np.empty((len(flat),) + arr.shape[:2]))
    return out
