"""``jomo_impute``: mitml's ``jomoImpute`` as a many-chain JAX Gibbs sampler.

Pipeline: ``build_spec(kind="jomo") -> spec.design -> build_group_problems (one jomo problem per
group) -> jomo.init / jomo.build_kernel -> run_chains (shared with pan) -> collect_imputations``.

Fixes of mitml/jomo quirks (spec 6.3): B1 (single-level + group: imputations are mapped back by
row position, never by stacking order), B4 (``save_pred`` also saves derived level-2 predictors),
B8 (categories mapped back through each group's observed levels), B20 (the prior is returned
unchanged; the last sampled df of the cluster covariances is in ``extra["a"]``).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from .errors import MitmlError, MitmlTypeError, MitmlWarning, SamplerFailure
from .kernels import jomo
from .kernels.jomo_chains import record_parameters
from .kernels.jomo_design import build_group_problems, imputed_values, missing_index
from .priors import as_real_array
from .sampling.arguments import call_text, check_flag, check_run_arguments, formula_as_given
from .sampling.arguments import rng_key_and_seed as _rng_key
from .sampling.cache import enable_compilation_cache
from .sampling.collect import collect_imputations, saves_needed
from .sampling.keys import chain_keys
from .sampling.run import InterruptedChains, completed_part, failed_part, run_chains
from .spec.model_spec import build_spec

__all__ = ["jomo_impute", "group_key"]

_FAILURE_HINT = (
    "Remedies: check the data for extreme values or near-collinear predictors, rescale targets "
    "with very different variances, or give a more informative prior ('Binv'/'Dinv')."
)
_BLOCKS = ("beta", "beta2", "psi", "sigma")


def group_key(key, g: int):
    """Group ``g``'s key ``jax.random.fold_in(key, g)`` (the same bits), derived on the host by
    :func:`~mitml_jax.sampling.keys.chain_keys`: no eager JAX operation, so nothing is compiled
    for it on a cold start."""
    data = np.asarray(jax.random.key_data(chain_keys(key, [g])))[0]
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))


def configure_problems(problems, exact_beta2):
    """Set the beta2 update of every group's sweep (jomo's marginal step, or the full conditional)."""
    for problem in problems:
        problem.config = dataclasses.replace(problem.config, exact_beta2=bool(exact_beta2))
    return problems


@functools.lru_cache(maxsize=64)
def _kernel(config):
    return jomo.build_kernel(config)


@functools.lru_cache(maxsize=64)
def _transform(config, keep_chains):
    return functools.partial(record_parameters, config=config, keep_chains=keep_chains)


def _save(state, arrays):
    """The reported values: all missing level-1 cells (latents included), then level-2 cells."""
    return jnp.concatenate([state.y.reshape(-1)[arrays.report_l1],
                            state.y2.reshape(-1)[arrays.report_l2]])


def _matrix(name, value, dim, group, hint=""):
    where = f" (group {group})" if group is not None else ""
    m = as_real_array(name, value, f"a {dim} x {dim} matrix of real numbers", where)
    if m.ndim == 0 and dim == 1:
        m = m.reshape(1, 1)
    if m.shape != (dim, dim):
        raise MitmlError(f"prior['{name}']{where} must be a {dim} x {dim} matrix, got shape "
                         f"{m.shape}.{hint}")
    if not np.all(np.isfinite(m)) or not np.allclose(m, m.T):
        raise MitmlError(f"prior['{name}']{where} must be a finite symmetric matrix.")
    if np.linalg.eigvalsh(0.5 * (m + m.T)).min() <= 0:
        raise MitmlError(f"prior['{name}']{where} must be positive definite.")
    return 0.5 * (m + m.T)


def _shared_prior_hint(problems):
    """For one prior dict shared by groups whose dimensions differ: how to give one per group."""
    dims = [(p.config.r, p.config.dim_psi) for p in problems]
    if len(set(dims)) <= 1:
        return ""
    sizes = ", ".join(f"group {g + 1}: Binv {r} x {r}" + (f", Dinv {q} x {q}" if q else "")
                      for g, (r, q) in enumerate(dims))
    return (" One prior dict cannot fit every group: a categorical target has K - 1 latent "
            f"columns for the K categories observed in each group ({sizes}); give 'prior' as a "
            "list of dicts, one per group.")


def _warn_unused_scales(prior, problems, random_l1):
    """jomo updates a covariance matrix with fixed latent blocks (categorical targets) by a
    Metropolis step with a flat prior, so a 'Binv' (level-1 categorical targets, random_L1 =
    'none') or 'Dinv' (level-2 categorical targets) given by the user has no effect there, in R
    as here (R says nothing). Called by ``jomo_impute`` on the caller's (checked) prior only:
    ``extend`` passes the stored prior, which always holds both matrices."""
    if prior is None:
        return
    given = [prior] * len(problems) if isinstance(prior, Mapping) else list(prior)
    pairs = list(zip(problems, given))
    if random_l1 == "none" and any(p is not None and "Binv" in p and prob.config.cat_blocks
                                   for prob, p in pairs):
        warnings.warn("prior['Binv'] has no effect with categorical level-1 targets and "
                      "random_L1 = 'none': jomo updates the level-1 covariance matrix by a "
                      "Metropolis step with a flat prior (as R's jomo does).", MitmlWarning,
                      stacklevel=3)
    if any(p is not None and "Dinv" in p and prob.config.cat2_blocks for prob, p in pairs):
        warnings.warn("prior['Dinv'] has no effect with categorical level-2 targets: jomo updates "
                      "the covariance matrix Psi by a Metropolis step with a flat prior (as R's "
                      "jomo does).", MitmlWarning, stacklevel=3)


def _priors(prior, problems, random_l1):
    """Per group: dict(Binv, Dinv[, a]) as NumPy (reported) and the device JomoPrior."""
    n_groups = len(problems)
    if prior is None:
        given = [None] * n_groups
    elif isinstance(prior, Mapping):
        given = [prior] * n_groups
    elif isinstance(prior, Sequence) and all(isinstance(p, Mapping) for p in prior):
        if len(prior) != n_groups:
            raise MitmlError(f"'prior' is a list of {len(prior)} priors but there are {n_groups} "
                             "groups; give one dict, or one per group.")
        given = list(prior)
    else:
        raise MitmlTypeError("'prior' must be a dict with 'Binv', 'Dinv' (and 'a' with random_L1),"
                             " or a list of such dicts, one per group.")
    if random_l1 == "none" and any(p is not None and "a" in p for p in given):
        # R's jomo stops with "unused argument (a = ...)"; the df 'a' has no role here
        warnings.warn("prior['a'] is used only with random_L1 = 'mean' or 'full' (the degrees of "
                      "freedom of the cluster-specific covariance matrices); it is ignored with "
                      "random_L1 = 'none'.", MitmlWarning, stacklevel=3)
    if not problems[0].config.multilevel and any(p is not None and "Dinv" in p for p in given):
        # R's jomo stops with "unused argument (l2cov.prior = ...)": a single-level model has no Psi
        warnings.warn("prior['Dinv'] is used only in a multilevel model (the prior of the "
                      "covariance matrix Psi of the random effects); it is ignored in this "
                      "single-level model (no cluster variable).", MitmlWarning, stacklevel=3)
    reported, device = [], []
    for g, (prob, p) in enumerate(zip(problems, given)):
        cfg = prob.config
        label = g + 1 if n_groups > 1 else None
        if p is not None:
            unknown = sorted(set(p) - {"Binv", "Dinv", "a"})
            if unknown:
                raise MitmlError(f"'prior' has unknown component(s) {unknown}; jomo uses Binv, "
                                 "Dinv and a.")
        p = dict(p or {})
        hint = _shared_prior_hint(problems) if isinstance(prior, Mapping) else ""
        binv = _matrix("Binv", p.get("Binv", np.eye(cfg.r)), cfg.r, label, hint)
        out = {"Binv": binv}
        dim = max(cfg.dim_psi, 1)
        dinv = np.eye(dim)
        if cfg.multilevel:
            dinv = _matrix("Dinv", p.get("Dinv", np.eye(cfg.dim_psi)), cfg.dim_psi, label, hint)
            out["Dinv"] = dinv
        a = float(cfg.r)
        if random_l1 != "none":
            where = f" (group {label})" if label is not None else ""
            given_a = p.get("a", cfg.r)
            a = as_real_array("a", given_a, "a single positive number", where)
            if a.size != 1:
                raise MitmlError(f"prior['a']{where} must be a single positive number, got "
                                 f"{given_a!r}.")
            a = float(a.reshape(()))
            if not np.isfinite(a) or a <= 0:
                raise MitmlError(f"prior['a']{where} must be a positive number, got {a}.")
            out["a"] = a
        reported.append(out)
        device.append(jax.device_put(jomo.JomoPrior(np.asarray(binv, float), np.asarray(dinv, float),
                                                    np.asarray(a, float), np.asarray(float(cfg.r)))))
    return reported, device


def _stack_groups(blocks: list, chains: int, n_draws: int) -> dict:
    """Per-group dicts of (C, D, rows, cols) -> (C, D, G, max rows, max cols), NaN padded.

    A group may lack a block the others have: e.g. ``beta2`` when the group's only level-2
    target is categorical with a single observed category there (no latent column, nothing
    to estimate); its entries stay NaN, as the padding of smaller blocks does."""
    out = {}
    for name in _BLOCKS:
        present = [b[name] for b in blocks if name in b]
        if not present:
            continue
        rows = max(a.shape[2] for a in present)
        cols = max(a.shape[3] for a in present)
        arr = np.full((chains, n_draws, len(blocks), rows, cols), np.nan)
        for g, b in enumerate(blocks):
            if name not in b:
                continue
            a = b[name]
            arr[:, :, g, : a.shape[2], : a.shape[3]] = a
        out[name] = arr
    return out


def _labels(spec, problems, random_l1, keep_chains, design):
    widest = max(problems, key=lambda p: p.config.r)
    cols = list(widest.l1_columns)
    cols2 = list(max(problems, key=lambda p: p.config.r2).l2_columns)
    psi = [f"{c}:{z}" for c in cols for z in spec.random_names] + cols2
    labels = {"beta": (tuple(spec.fixed_names), tuple(cols))}
    if spec.is_l2:
        labels["beta2"] = (tuple(spec.fixed_names_l2), tuple(cols2))
    if spec.is_multilevel:
        labels["psi"] = (tuple(psi), tuple(psi) if keep_chains == "full" else ("",))
    sigma_rows = cols
    if random_l1 == "full":
        n_cl = max(p.layout.n_clusters for p in problems)
        sigma_rows = [f"{k + 1}:{c}" for k in range(n_cl) for c in cols]
    labels["sigma"] = (tuple(sigma_rows), tuple(cols) if keep_chains == "full" else ("",))
    return labels


def _in_group(spec, design, g: int) -> str:
    """`` in group 'label' of 'column'`` for messages about group ``g``; empty without groups."""
    return f" in group {design.group_labels[g]!r} of '{spec.group}'" if spec.group else ""


def _warn_single_category(problems, spec, design, index, target_of_cell):
    """A categorical target with one observed category in a group has no latent column there, so
    its missing values in that group are that category in every imputation (R's jomo stops with
    'subscript out of bounds'): said with a warning, as nothing is imputed from a model."""
    for g, prob in enumerate(problems):
        in_group = np.isin(index[:, 0], prob.rows)
        for name, (kind, _, levels) in prob.decoders.items():
            n_miss = int(np.sum(in_group & (target_of_cell == name)))
            if kind != "const" or n_miss == 0:
                continue
            category = spec.categories[name][int(levels[0])]
            where = _in_group(spec, design, g)
            warnings.warn(f"Target '{name}' has a single observed category {category!r}{where}: "
                          f"its {n_miss} missing value(s) there are set to {category!r} in every "
                          "imputation, not drawn from a model (R's jomo stops with an error). "
                          "Recode the target or impute that group without it if this is not "
                          "meant.", MitmlWarning, stacklevel=3)


def _check_level1_columns(problems, spec, design):
    """Every group needs at least one level-1 (latent) column: a group in which each level-1
    target is categorical with a single observed category has nothing to model at level 1,
    which jomo's samplers cannot run (R's jomo stops with 'subscript out of bounds')."""
    for g, prob in enumerate(problems):
        if prob.config.r > 0:
            continue
        only = ", ".join(f"'{name}' ({spec.categories[name][int(levels[0])]!r})"
                         for name, (kind, _, levels) in prob.decoders.items()
                         if kind == "const" and name in spec.targets)
        # only with groups: without them such a target is refused earlier as constant
        raise MitmlError(
            f"Every level-1 target{_in_group(spec, design, g)} has a single observed category "
            f"({only}), so there is no level-1 variable to impute from a model. Recode these "
            "targets, add a target that varies in that group, or impute that group separately "
            "without them.")


def _with_predictors(data, spec, design):
    """The data copy with derived predictor columns appended (``save_pred``; L2 ones too: B4)."""
    out = data.copy()
    for name in spec.save_pred:
        for names, mat in ((spec.fixed_names, design.x), (spec.random_names, design.z),
                           (spec.fixed_names_l2, design.x_l2)):
            if name in names:
                out[name] = mat[:, list(names).index(name)]
                break
    return out


def jomo_impute(data, formula=None, type=None, random_L1="none", n_burn=5000,  # noqa: A002,N803
                n_iter=100, m=10, group=None, prior=None, seed=None, chains=1,
                keep_chains="full", save_pred=False, progress=True, exact_beta2=False):
    """Impute multilevel (or single-level) data with jomo's joint model (mitml's ``jomoImpute``).

    Targets may be continuous or categorical (pandas ``category``/strings; each with ``K``
    observed categories becomes ``K - 1`` latent normals with jomo's fixed covariance block);
    a second formula adds level-2 targets with their own fixed effects (``beta2``) whose
    residuals join the random effects in one ``Psi``. ``random_L1 = "mean"`` or ``"full"`` gives
    every cluster its own level-1 covariance matrix (jomo's ``hr`` samplers; ``sigma`` then holds
    their mean, or all of them stacked by cluster). Every chain burns in ``n_burn`` iterations,
    then saves an imputation every ``n_iter`` iterations; the ``m`` imputations are split across
    the ``chains`` (vmapped, chain ``c`` with key ``fold_in(key, c)``).

    The sweep is jomo's (cran/jomo 2.7-6, see :mod:`mitml_jax.kernels.jomo`); where jomo uses a
    rejection or Metropolis step the same posterior is targeted (latent normals: exact inversion
    for binary targets, parallel proposals with a Gibbs fallback otherwise; covariance Metropolis
    steps exactly as jomo's, with parallel positive-definiteness retries).

    Args:
        data: DataFrame with targets, predictors, cluster column and anything else.
        formula: ``"y1 + y2 ~ 1 + x + (1 | id)"`` or ``[level-1 formula, level-2 formula]``.
        type: mitml's integer type vector, or a list of two (level 1, level 2).
        random_L1: ``"none"``, ``"mean"`` or ``"full"`` (needs a cluster variable).
        n_burn, n_iter: burn-in iterations (``>= 0``) and iterations between imputations (``>= 1``).
        m, chains: numbers of imputations and of chains (``>= 1``).
        group: column name; separate model, parameters and prior within each of its values.
        prior: dict with ``Binv`` (r x r), ``Dinv`` (dim x dim), and ``a`` (random_L1), or a
            list of such dicts (one per group). Default: identity matrices and ``a = r``.
        seed: int (a whole float such as 123.0 counts) or ``jax.random.key``; None draws a fresh
            seed.
        keep_chains: ``"full"`` or ``"diagonal"``.
        save_pred: append derived predictor columns (level-1 and level-2) to the data.
        progress: show a progress bar.
        exact_beta2: False (default) keeps jomo's update of the level-2 fixed effects, which draws
            ``beta2`` from its marginal given ``Psi`` and ignores the level-1 random effects; it
            reproduces R's jomo but is not the full conditional when level-1 random effects and
            level-2 residuals are correlated, and simulation-based calibration detects the
            difference (tests/test_calibration_jomo.py). True draws ``beta2`` from its full
            conditional given the level-1 random effects, which samples the model's posterior
            exactly. Kept by ``Imputations.extend``.

    Returns:
        :class:`~mitml_jax.Imputations` (``kind="jomo"``).
    """
    n_burn, n_iter, m, chains = check_run_arguments(data, n_burn, n_iter, m, chains)
    check_flag("save_pred", save_pred)
    check_flag("progress", progress)
    if keep_chains not in ("full", "diagonal"):
        raise MitmlError(f"'keep_chains' must be 'full' or 'diagonal', got {keep_chains!r}.")
    if random_L1 not in ("none", "mean", "full"):
        raise MitmlError(f"'random_L1' must be 'none', 'mean' or 'full', got {random_L1!r}.")
    key, seed_used = _rng_key(seed)
    if save_pred and type is not None:
        warnings.warn("The 'save_pred' argument is ignored when 'type' is used.", MitmlWarning,
                      stacklevel=2)
        save_pred = False
    spec = build_spec(data, formula=formula, type=type, group=group, kind="jomo")
    if random_L1 != "none" and not spec.is_multilevel:
        raise MitmlError("No cluster variable found. Random covariance matrices (random_L1) are "
                         "not supported for single-level MI and require the specification of a "
                         "cluster variable: add a '(1 | cluster)' term to the formula or use "
                         "random_L1 = 'none'.")
    design = spec.design(data)
    index, target_of_cell = missing_index(data.columns, spec, design)
    if len(index) == 0:
        raise MitmlError("Target variables do not contain any missing data.")
    if not isinstance(exact_beta2, bool):
        raise MitmlTypeError(f"'exact_beta2' must be True or False, got {exact_beta2!r}.")
    problems = configure_problems(build_group_problems(spec, design, random_L1), exact_beta2)
    _check_level1_columns(problems, spec, design)
    _warn_single_category(problems, spec, design, index, target_of_cell)
    prior_np, prior_dev = _priors(prior, problems, random_L1)
    _warn_unused_scales(prior, problems, random_L1)

    n_saves = saves_needed(m, chains)
    enable_compilation_cache()  # as pan_impute: later processes reuse the compiled sweep

    def result(runs, n_saves, m):
        """The Imputations of the groups' runs (``n_saves`` saves per chain, ``m`` in all)."""
        finals = [run.state for run in runs]
        values = imputed_values([run.saves for run in runs], problems, index, target_of_cell, spec, design)
        out_data = _with_predictors(data, spec, design) if save_pred else data.copy()
        formulas = [spec.formula, spec.formula_l2] if spec.is_l2 else spec.formula
        call = call_text(
            "jomo_impute", **({"type": type} if type is not None
                              else {"formula": formula_as_given(formula, formulas)}),
            random_L1=random_L1, n_burn=n_burn, n_iter=n_iter, m=m, group=spec.group or None,
            prior=prior, chains=chains, seed=seed_used,
            keep_chains=None if keep_chains == "full" else keep_chains,
            save_pred=save_pred or None, exact_beta2=exact_beta2 or None,
        )
        extra = {
            "group_labels": [str(v) for v in design.group_labels],
            "cluster_labels": np.asarray(design.cluster_labels),
            "acceptance": [{k: np.asarray(v) for k, v in run.failures.items()} for run in runs],
            "latent_columns": [p.l1_columns for p in problems],
            "latent_columns_l2": [p.l2_columns for p in problems],
            "exact_beta2": exact_beta2,
        }
        if random_L1 != "none":
            extra["a"] = np.stack([np.asarray(s.a) for s in finals], axis=1)  # (C, G)
        return collect_imputations(
            SimpleNamespace(burnin=_stack_groups([run.burnin for run in runs], chains, n_burn),
                            imputation=_stack_groups([run.imputation for run in runs], chains, n_saves * n_iter)),
            saved_values=values, miss_slot=np.arange(len(index)), index=index, m=m, n_iter=n_iter,
            data=out_data, spec=spec, kind="jomo", call=call, n_burn=n_burn, chains=chains,
            seed=seed_used, prior=prior_np, keep_chains=keep_chains, random_L1=random_L1,
            labels=_labels(spec, problems, random_L1, keep_chains, design), failures={},
            state=finals if len(finals) > 1 else finals[0], extra=extra,
        )

    runs = []
    for g, prob in enumerate(problems):
        state0 = jomo.init(prob.arrays, prob.config, prior_dev[g])
        state0 = jax.tree_util.tree_map(lambda a: np.repeat(np.asarray(a)[None], chains, axis=0), state0)
        try:
            run = run_chains(
                _kernel(prob.config), state0, prob.arrays, prior_dev[g],
                key if len(problems) == 1 else group_key(key, g),
                n_burn=n_burn, n_iter=n_iter, n_saves=n_saves,
                transform=_transform(prob.config, keep_chains), save=_save, progress=progress,
                failure_hint=_FAILURE_HINT,
            )
        # groups run one after another: only a run of one group has a consistent part
        except InterruptedChains as stop:  # Ctrl-C: keep the imputations completed so far
            if len(problems) > 1:  # no imputation covers every group yet: say so, and why
                raise InterruptedChains(stop.run, stop.iterations_done, message=(
                    f"jomo_impute interrupted in group {g + 1} of {len(problems)} after "
                    f"{stop.iterations_done} iteration(s) per chain; the groups are sampled one "
                    "after another, so no imputation covers every group yet and nothing is kept. "
                    "A run with fewer imputations (m) can be extended later with .extend()."
                )) from None
            run, n_saves, m = completed_part(stop, chains)
        except SamplerFailure as failure:  # non-finite draws: keep those completed before them
            if len(problems) == 1:
                failed_part(failure, chains, lambda run, n_saves, m: result([run], n_saves, m))
            raise
        runs.append(run)
    return result(runs, n_saves, m)


