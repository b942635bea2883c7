"""``imp.to_arviz()``: parameter draws as ArviZ data (``arviz`` is an optional extra).

Groups: ``posterior`` (imputation phase) and ``warmup_posterior`` (burn-in) with variables
``beta``, [``beta2``], ``psi``, ``sigma`` of dims ``(chain, draw, [group], row, col)``:

* ``beta``: ``(predictor, target)``; ``beta2``: ``(predictor_l2, target_l2)``;
* ``psi``: ``(psi_row, psi_col)`` named ``"<target> ON <random effect>"`` (L2 targets by name);
* ``sigma``: ``(sigma_row, sigma_col)`` named by target (stacked cluster rows as
  ``"<target>|<cluster>:<c>"``; with several groups, whose clusters differ, as
  ``"<target>|<cluster>#<k>"``, the k-th cluster of each group in sorted order); with
  ``keep_chains="diagonal"`` the column dim is ``diagonal``;
* ``group`` (only with several groups) labelled by the group values.

Works with arviz 0.x (``InferenceData``, ``from_dict(posterior=..., warmup_posterior=...)``) and
1.x (``DataTree``, ``from_dict({"posterior": ..., "warmup_posterior": ...})``).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import MitmlError
from .entries import _cluster_ids, _names, _psi_components, group_labels, sigma_names

__all__ = ["to_arviz", "arviz_coords"]


def _unique(names) -> list:
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        out.append(n if k == 0 else f"{n}.{k}")
        seen[n] = k + 1
    return out


def arviz_coords(imp) -> tuple[dict, dict]:
    """(coords, dims) for the parameter blocks of ``imp``."""
    spec = imp.spec
    coords, dims = {}, {}
    grouped = imp.n_groups > 1
    if grouped:
        coords["group"] = _unique(group_labels(imp))
    diagonal = imp.keep_chains == "diagonal"
    for block, arr in imp.imputation.items():
        nrow, ncol = arr.shape[3], arr.shape[4]
        if block in ("beta", "beta2"):
            l2 = block == "beta2"
            rdim, cdim = ("predictor_l2", "target_l2") if l2 else ("predictor", "target")
            rows = _names(imp, block, 0, nrow,
                          getattr(spec, "fixed_names_l2" if l2 else "fixed_names", None))
            cols = _names(imp, block, 1, ncol, getattr(spec, "targets_l2" if l2 else "targets",
                                                       None))
        elif block == "psi":
            comps = [y if z is None else f"{y} ON {z}" for y, z in _psi_components(imp, nrow)]
            rdim, cdim = "psi_row", ("diagonal" if diagonal else "psi_col")
            rows, cols = comps, (["diagonal"] if diagonal else comps)
        elif block == "sigma":
            names = sigma_names(imp, nrow, ncol)
            nvar = len(names)
            clus = getattr(spec, "cluster", None) or "cluster"
            # one group: the cluster values; several groups hold different clusters at the same
            # position, so the rows are named by position (k-th cluster of each group) instead
            ids = ([f":{c}" for c in _cluster_ids(imp, 0, nrow // nvar)] if imp.n_groups == 1
                   else [f"#{c + 1}" for c in range(nrow // nvar)])
            rows = [names[i % nvar] if nrow == nvar else f"{names[i % nvar]}|{clus}{ids[i // nvar]}"
                    for i in range(nrow)]
            rdim, cdim = "sigma_row", ("diagonal" if diagonal else "sigma_col")
            cols = ["diagonal"] if diagonal else names[:ncol]
        else:
            continue
        coords[rdim], coords[cdim] = _unique(rows), _unique(cols)
        dims[block] = (["group"] if grouped else []) + [rdim, cdim]
    return coords, dims


def _squeeze(draws: dict, grouped: bool) -> dict:
    out = {}
    for name, arr in draws.items():
        arr = np.asarray(arr)
        out[name] = arr if grouped else arr[:, :, 0]
    return out


def to_arviz(imp):
    """ArviZ data of the parameter draws (posterior = imputation phase, warmup = burn-in).

    Returns:
        ``arviz.InferenceData`` (arviz 0.x) or ``xarray.DataTree`` (arviz 1.x).
    """
    try:
        import arviz as az
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MitmlError(
            "to_arviz() needs the optional dependency arviz: pip install 'mitml-jax[arviz]'."
        ) from exc
    coords, dims = arviz_coords(imp)
    grouped = imp.n_groups > 1
    posterior = _squeeze({b: imp.imputation[b] for b in dims}, grouped)
    warmup = _squeeze({b: imp.burnin[b] for b in dims if b in imp.burnin}, grouped)
    if any(np.shape(v)[1] == 0 for v in warmup.values()):
        warmup = {}
    attrs = {"mitml_kind": imp.kind, "n_burn": int(imp.n_burn), "n_iter": int(imp.n_iter),
             "m": int(imp.m), "call": str(imp.call)}
    major = int(str(az.__version__).split(".")[0])
    with warnings.catch_warnings():
        # ArviZ guesses that arrays with more chains than draws were passed transposed; here the
        # axes are (chain, draw) by construction, and many chains with few draws each is the
        # normal many-chain run (e.g. 200 chains x 100 draws): the warning would be wrong
        warnings.filterwarnings("ignore", message=r"More chains \(\d+\) than draws", category=UserWarning)
        if major >= 1:
            groups = {"posterior": posterior}
            if warmup:
                groups["warmup_posterior"] = warmup
            return az.from_dict(groups, coords=coords, dims=dims, attrs=attrs)
        kwargs = {"warmup_posterior": warmup, "save_warmup": True} if warmup else {}
        return az.from_dict(posterior=posterior, coords=coords, dims=dims, attrs=attrs, **kwargs)
