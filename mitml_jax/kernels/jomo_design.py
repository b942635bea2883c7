"""Host seam of ``jomo_impute``: a ``Design`` -> one jomo problem per group, and imputations back.

Per group (jomo's own bookkeeping, spec 2.5): continuous targets first (formula order), then the
``K_c - 1`` latent columns of each categorical target, where ``K_c`` is the number of categories
*observed in that group*. Category indices are mapped back to the codes of ``spec.categories``
through the observed levels of the group, so unobserved intermediate levels or group-specific
level sets keep the right labels (mitml's bug B8 fixed). A categorical target with a single
observed category in a group has no latent column; its missing values are that category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MitmlError
from .jomo_data import JomoArrays, JomoConfig, JomoLayout, build_jomo_arrays
from .latent import latent_to_category

__all__ = ["GroupProblem", "build_group_problems", "missing_index", "decode_saves",
           "fill_observed_level2", "imputed_values"]


@dataclass
class GroupProblem:
    """One group's jomo problem and how its reported values map back to the data."""

    rows: np.ndarray  # original row positions of the group's rows (ascending)
    arrays: JomoArrays
    config: JomoConfig
    layout: JomoLayout
    l1_columns: tuple  # level-1 column labels (continuous, then latent)
    l2_columns: tuple
    decoders: dict  # target name -> (kind, column/block, levels)
    n_report: int


def _split(values, names, categories, where):
    """Continuous and categorical parts of one level's targets for one group."""
    con, cat = [], []
    for j, name in enumerate(names):
        (cat if name in categories else con).append(j)
    y_con = values[:, con]
    codes, levels = [], []
    for j in cat:
        col = values[:, j]
        obs = ~np.isnan(col)
        seen = np.unique(col[obs]).astype(np.int64)
        if seen.size == 0:
            raise MitmlError(f"Categorical target '{names[j]}' has no observed values{where}; "
                             "it cannot be imputed there.")
        idx = np.full(col.shape, -1, dtype=np.int64)
        idx[obs] = np.searchsorted(seen, col[obs].astype(np.int64))
        codes.append(idx)
        levels.append(seen)
    return con, cat, y_con, codes, levels


def _columns(names, con, cat, levels):
    cols = [names[j] for j in con]
    for j, lev in zip(cat, levels):
        k = len(lev) - 1
        cols += [names[j]] if k == 1 else [f"{names[j]}{i + 1}" for i in range(k)]
    return tuple(cols)


def build_group_problems(spec, design, random_l1: str = "none") -> list:
    """One :class:`GroupProblem` per group of ``design`` (groups in code order)."""
    problems = []
    cats = spec.categories
    for g in range(len(design.group_labels)):
        rows = np.nonzero(design.group == g)[0]
        where = f" in group '{design.group_labels[g]}'" if spec.group else ""
        con, cat, y_con, codes, levels = _split(design.y[rows], spec.targets, cats, where)
        con2, cat2, y2_con, codes2, levels2 = _split(design.y_l2[rows], spec.targets_l2, cats,
                                                     where)
        keep = [i for i, lev in enumerate(levels) if len(lev) > 1]
        keep2 = [i for i, lev in enumerate(levels2) if len(lev) > 1]
        cluster = None
        if spec.is_multilevel:
            _, cluster = np.unique(design.cluster[rows], return_inverse=True)
        y_cat = np.column_stack([codes[i] for i in keep]) if keep else np.zeros((len(rows), 0))
        y2_cat = (np.column_stack([codes2[i] for i in keep2]) if keep2
                  else np.zeros((len(rows), 0)))
        arrays, config, layout = build_jomo_arrays(
            y_con, y_cat, [len(levels[i]) for i in keep], design.x[rows],
            design.z[rows] if spec.is_multilevel else None, cluster,
            y2_con=y2_con if spec.is_l2 else None, y2_cat=y2_cat if spec.is_l2 else None,
            n_cats2=[len(levels2[i]) for i in keep2],
            x2=design.x_l2[rows] if spec.is_l2 else None, random_l1=random_l1,
        )
        decoders = {}
        for pos, j in enumerate(con):
            decoders[spec.targets[j]] = ("l1", (pos, 1), None)
        for i, (p0, k) in zip(keep, config.cat_blocks):
            decoders[spec.targets[cat[i]]] = ("l1", (p0, k), levels[i])
        for i, lev in enumerate(levels):
            if len(lev) == 1:
                decoders[spec.targets[cat[i]]] = ("const", None, lev)
        for pos, j in enumerate(con2):
            decoders[spec.targets_l2[j]] = ("l2", (pos, 1), None)
        for i, (p0, k) in zip(keep2, config.cat2_blocks):
            decoders[spec.targets_l2[cat2[i]]] = ("l2", (p0, k), levels2[i])
        for i, lev in enumerate(levels2):
            if len(lev) == 1:
                decoders[spec.targets_l2[cat2[i]]] = ("const", None, lev)
        problems.append(GroupProblem(
            rows=rows, arrays=arrays, config=config, layout=layout,
            l1_columns=_columns(spec.targets, con, [cat[i] for i in keep],
                                [levels[i] for i in keep]),
            l2_columns=_columns(spec.targets_l2, con2, [cat2[i] for i in keep2],
                                [levels2[i] for i in keep2]),
            decoders=decoders,
            n_report=len(layout.report_l1) + len(layout.report_l2),
        ))
    return problems


def missing_index(data_columns, spec, design):
    """(n_miss, 2) (row, column position) of missing target cells, column-major over targets
    (level-1 targets, then level-2 targets, formula order), and each cell's target name."""
    names = list(spec.targets) + list(spec.targets_l2)
    values = np.concatenate([design.y, design.y_l2], axis=1)
    cols, rows = np.nonzero(np.isnan(values).T)
    positions = np.array([data_columns.get_loc(n) for n in names], dtype=np.int64)
    return np.column_stack([rows, positions[cols]]), np.array(names, dtype=object)[cols]


def decode_saves(saves: list, problems: list, index, target_of_cell) -> np.ndarray:
    """Imputed values of every missing cell from every save.

    Args:
        saves: per group, (C, S, n_report) reported values (level-1 block, then level-2 block).
        problems: the :class:`GroupProblem` list.
        index: (n_miss, 2) from :func:`missing_index`; target_of_cell: (n_miss,) names.

    Returns:
        (C, S, n_miss) values; categorical targets as codes into ``spec.categories``.
    """
    chains, n_saves = saves[0].shape[:2]
    out = np.full((chains, n_saves, len(index)), np.nan)
    row_group = {}
    for g, prob in enumerate(problems):
        for local, row in enumerate(prob.rows):
            row_group[int(row)] = (g, local)
    cell_group = np.array([row_group[int(r)][0] for r in index[:, 0]], dtype=np.int64)
    cell_local = np.array([row_group[int(r)][1] for r in index[:, 0]], dtype=np.int64)
    for g, prob in enumerate(problems):
        lay = prob.layout
        n1 = len(lay.report_l1)
        pos1 = np.full((len(prob.rows), max(prob.config.r, 1)), -1, dtype=np.int64)
        if n1:
            pos1[lay.report_l1[:, 0], lay.report_l1[:, 1]] = np.arange(n1)
        pos2 = np.full((lay.n_clusters, max(prob.config.r2, 1)), -1, dtype=np.int64)
        if len(lay.report_l2):
            pos2[lay.report_l2[:, 0], lay.report_l2[:, 1]] = n1 + np.arange(len(lay.report_l2))
        for name, (kind, block, levels) in prob.decoders.items():
            cells = np.nonzero((cell_group == g) & (target_of_cell == name))[0]
            if cells.size == 0:
                continue
            local = cell_local[cells]
            if kind == "const":
                out[:, :, cells] = levels[0]
                continue
            p0, k = block
            if kind == "l1":
                slots = pos1[local[:, None], p0 + np.arange(k)[None, :]]
            else:
                slots = pos2[lay.row_cluster[local][:, None], p0 + np.arange(k)[None, :]]
            vals = saves[g][:, :, slots]  # (C, S, n, k)
            if levels is None:
                out[:, :, cells] = vals[..., 0]
            else:
                out[:, :, cells] = levels[latent_to_category(vals)]
            # no saved slot (-1): a level-2 value observed in another row of the cluster, which
            # the sampler took as observed (see fill_observed_level2); never another cell's slot
            unsaved = (slots < 0).any(axis=1)
            if unsaved.any():
                out[:, :, cells[unsaved]] = np.nan
    return out


def imputed_values(saves: list, problems: list, index, target_of_cell, spec, design) -> np.ndarray:
    """(C, S, n_cells) imputed values of the missing cells from every group's saves:
    :func:`decode_saves`, then :func:`fill_observed_level2` for the cells it leaves NaN."""
    values = decode_saves([np.asarray(s) for s in saves], problems, index, target_of_cell)
    return fill_observed_level2(values, index, target_of_cell, spec, design)


def fill_observed_level2(values, index, target_of_cell, spec, design):
    """A level-2 target missing in some rows of a cluster but observed in another row of it has
    that observed value in every imputation: the sampler takes the cluster's value as observed,
    so it saves no imputation for these cells (:func:`decode_saves` leaves them NaN).
    R's jomo instead imputes the whole cluster whenever the cluster's first row is missing,
    ignoring the observed value."""
    if not spec.targets_l2:
        return values
    key = design.group.astype(np.int64) * (int(design.cluster.max()) + 1) + design.cluster
    rows = index[:, 0]
    for j, name in enumerate(spec.targets_l2):
        col = design.y_l2[:, j]
        seen = ~np.isnan(col)
        observed = dict(zip(key[seen].tolist(), col[seen].tolist()))
        cells = np.nonzero(target_of_cell == name)[0]
        known = [c for c in cells if int(key[rows[c]]) in observed]
        for c in known:
            values[:, :, c] = observed[int(key[rows[c]])]
    return values
