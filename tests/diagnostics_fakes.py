"""Synthetic Imputations objects (AR(1) parameter chains) for the diagnostics tests."""

from __future__ import annotations

import numpy as np

from mitml_jax import build_spec, load_studentratings
from mitml_jax.results.imputations import Imputations

INTRO_FORMULA = "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)"


def ar1(rng, shape, phi, n_draw, axis_draw=1):
    """AR(1) draws of shape (chain, n_draw, *shape[1:]) with unit innovation sd."""
    e = rng.standard_normal(shape[:1] + (n_draw,) + shape[1:])
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n_draw):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def fake_imputations(chains=1, n_burn=40, n_iter=10, m=5, phi=0.5, seed=1, groups=1,
                     keep_chains="full", formula=INTRO_FORMULA):
    """An Imputations of the Introduction model with AR(1) parameter draws (no real sampler)."""
    rng = np.random.default_rng(seed)
    data = load_studentratings()
    spec = build_spec(data, formula)
    r, p, q = len(spec.targets), len(spec.fixed_names), len(spec.random_names)
    total = n_burn + n_iter * m

    def block(rows, cols, scale, loc, sym):
        x = ar1(rng, (chains, groups, rows, cols), phi, total) * scale + loc
        if sym:
            x = (x + np.swapaxes(x, -1, -2)) / 2
        if keep_chains == "diagonal" and sym:
            x = np.diagonal(x, axis1=-2, axis2=-1)[..., None].copy()
        return x

    draws = {
        "beta": block(p, r, 0.1, 1.0, False),
        "psi": block(r * q, r * q, 0.05, 2.0, True),
        "sigma": block(r, r, 0.05, 3.0, True),
    }
    # a slow drift in the burn-in so trace plots show convergence
    for v in draws.values():
        v[:, :n_burn] += np.linspace(2, 0, n_burn)[None, :, None, None, None] * v.std()
    burnin = {k: v[:, :n_burn] for k, v in draws.items()}
    imputation = {k: v[:, n_burn:] for k, v in draws.items()}
    labels = {
        "beta": (spec.fixed_names, spec.targets),
        "psi": (None, None),
        "sigma": (spec.targets, spec.targets),
    }
    miss = data[list(spec.targets)].isna().to_numpy()
    rows, cols = np.nonzero(miss.T)[::-1]
    col_pos = np.array([data.columns.get_loc(spec.targets[c]) for c in cols])
    index = np.column_stack([rows, col_pos])
    source = np.column_stack([np.arange(m) % chains, (np.arange(m) // chains + 1) * n_iter - 1])
    return Imputations(
        data=data.copy(), spec=spec, kind="pan",
        call=f"pan_impute(data, formula=\"{formula}\", n_burn={n_burn}, n_iter={n_iter}, m={m})",
        n_burn=n_burn, n_iter=n_iter, m=m, chains=chains, seed=seed, prior=[{}] * groups,
        keep_chains=keep_chains, random_L1="none",
        replacement=rng.standard_normal((len(index), m)), index=index,
        burnin=burnin, imputation=imputation, labels=labels, imputation_source=source,
    )


LEVEL2_FORMULA = ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"]


def fake_jomo_imputations(chains=2, n_burn=20, n_iter=5, m=4, random_L1="full", seed=3):
    """A jomo-shaped Imputations of the Level-2 vignette model (beta2, stacked Sigma)."""
    from mitml_jax import load_leadership

    rng = np.random.default_rng(seed)
    data = load_leadership()
    spec = build_spec(data, LEVEL2_FORMULA, kind="jomo")
    n_clusters = data["GRPID"].nunique()
    rows_sigma = 3 * n_clusters if random_L1 == "full" else 3
    total = n_burn + n_iter * m
    shapes = {"beta": (1, 3), "beta2": (1, 1), "psi": (4, 4), "sigma": (rows_sigma, 3)}
    draws = {k: ar1(rng, (chains, 1) + s, 0.3, total) for k, s in shapes.items()}
    return Imputations(
        data=data.copy(), spec=spec, kind="jomo", call="jomo_impute(data, formula=...)",
        n_burn=n_burn, n_iter=n_iter, m=m, chains=chains, seed=seed, prior=[{}],
        keep_chains="full", random_L1=random_L1, replacement=np.zeros((0, m)),
        index=np.zeros((0, 2), int), burnin={k: v[:, :n_burn] for k, v in draws.items()},
        imputation={k: v[:, n_burn:] for k, v in draws.items()}, labels={},
        imputation_source=np.column_stack([np.arange(m) % chains, np.arange(m)]),
    )
