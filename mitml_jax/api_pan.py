"""``pan_impute``: mitml's ``panImpute`` as a many-chain JAX Gibbs sampler.

Pipeline: ``build_spec -> spec.design -> build_arrays -> pan.init / pan.build_kernel ->
run_chains -> collect_imputations``.
"""

from __future__ import annotations

import functools
import warnings

import jax
import numpy as np

from .arrays.build import build_arrays
from .errors import MitmlError, MitmlWarning, SamplerFailure
from .kernels import pan
from .priors import check_pan_prior, to_pan_prior
from .sampling.collect import collect_imputations, saves_needed
from .sampling.arguments import call_text, check_flag, check_run_arguments, formula_as_given
from .sampling.arguments import rng_key_and_seed as _rng_key
from .sampling.cache import enable_compilation_cache
from .sampling.sharding import run_chains_sharded
from .sampling.run import InterruptedChains, completed_part, failed_part, run_chains
from .spec.model_spec import build_spec

__all__ = ["pan_impute"]

_FAILURE_HINT = (
    "Remedies: check the data for extreme values or near-collinear predictors, rescale targets "
    "with very different variances, or use a more informative prior (larger 'a'/'c', scaled "
    "'Binv'/'Dinv')."
)


def _check_range(design, dt) -> None:
    """With float32, targets and predictors must fit its range, with room for their squares
    (cross-products): the sampler would otherwise fail with infinities."""
    if dt != np.float32:
        return
    limit = float(np.sqrt(np.finfo(np.float32).max)) / 1e3  # ~1.8e16
    for kind, values in (("target", design.y), ("predictor", design.x), ("predictor", design.z)):
        values = np.asarray(values, dtype=np.float64)
        if values.size and np.nanmax(np.abs(values)) > limit:
            raise MitmlError(
                f"A {kind} has values beyond {limit:.1e}, too large for dtype='float32' (its "
                "squares overflow); use the default float64, or rescale the variable.")


def _dtype(dtype):
    if dtype is None:
        return np.dtype(np.float64)
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise MitmlError(f"'dtype' must be float32 or float64 (or None for float64), got {dtype!r}.") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise MitmlError(f"'dtype' must be float32 or float64, got {dt}.")
    return dt


def _labels(spec):
    targets = tuple(spec.targets)
    psi = tuple(f"{t}:{z}" for t in targets for z in spec.random_names)
    return {"beta": (tuple(spec.fixed_names), targets), "psi": (psi, psi), "sigma": (targets, targets)}


def _with_predictors(data, spec, design):
    """The data copy with the derived predictor columns appended (mitml's ``save.pred``)."""
    out = data.copy()
    for name in spec.save_pred:
        if name in spec.fixed_names:
            out[name] = design.x[:, list(spec.fixed_names).index(name)]
        elif name in spec.random_names:
            out[name] = design.z[:, list(spec.random_names).index(name)]
    return out


def pan_impute(
    data,
    formula=None,
    type=None,  # noqa: A002 - mitml's argument name
    n_burn=5000,
    n_iter=100,
    m=10,
    group=None,
    prior=None,
    seed=None,
    chains=1,
    keep_chains="full",
    save_pred=False,
    progress=True,
    dtype=None,
    devices=None,
):
    """Impute two-level multivariate normal data with pan's Gibbs sampler (mitml's ``panImpute``).

    Every chain burns in ``n_burn`` iterations, then saves an imputation every ``n_iter``
    iterations. With ``chains = C > 1`` the chains run at once (vmapped), each from pan's starting
    values with its own random stream ``fold_in(key, c)``; the ``m`` imputations are split across
    them as evenly as possible and every chain's parameter draws are kept.

    Args:
        data: DataFrame with targets, predictors, the cluster column and anything else.
        formula: ``"y1 + y2 ~ 1 + x + (1 + x | cluster)"``. Exactly one of formula and type.
        type: mitml's integer vector (one code per column of ``data``).
        n_burn: burn-in iterations per chain (>= 0; whole floats such as 5000.0 count, as in R).
        n_iter: iterations between imputations (>= 1).
        m: number of imputations (>= 1).
        group: column name; separate beta, Psi and Sigma within each of its values.
        prior: dict with ``a``, ``Binv`` (r x r), ``c``, ``Dinv`` (rq x rq); default pan's
            least informative prior (``a = r``, ``Binv = I``, ``c = rq``, ``Dinv = I``).
        seed: int (a whole float such as 123.0 counts) or ``jax.random.key``, for reproducible
            results; None draws a fresh seed.
        chains: number of independent chains (>= 1).
        keep_chains: ``"full"`` or ``"diagonal"`` (keep only the diagonals of Psi and Sigma).
        save_pred: append derived predictor columns (e.g. ``SexGirl``) to the data.
        progress: show a progress bar.
        dtype: None (float64, the default), ``"float64"`` or ``"float32"`` (for GPUs).
        devices: None (one device), ``"all"`` (every local device), an integer n (the first n
            local devices) or a list of JAX devices: the chains are split over them (only as
            many devices as divide ``chains`` are used). Draws equal the unsharded run's up to
            floating-point rounding (XLA may order batched sums differently).

    Returns:
        :class:`~mitml_jax.Imputations` (``kind="pan"``).

    Notes:
        The sampler is compiled once per data shape and chain count; ``n_burn``, ``n_iter``,
        ``m``, the data values, the seed and ``keep_chains`` do not recompile. Compiled programs are kept
        in JAX's persistent cache (see :mod:`mitml_jax.sampling.cache`) so later sessions skip
        compilation.

    Raises:
        MitmlError / MitmlTypeError: bad arguments or data (naming the argument or column).
        SamplerFailure: the sampler produced non-finite parameters (names chain and iteration);
            its ``partial`` holds the imputations completed before them, if any.
    """
    n_burn, n_iter, m, chains = check_run_arguments(data, n_burn, n_iter, m, chains)
    check_flag("save_pred", save_pred)
    check_flag("progress", progress)
    if keep_chains not in ("full", "diagonal"):
        raise MitmlError(f"'keep_chains' must be 'full' or 'diagonal', got {keep_chains!r}.")
    dt = _dtype(dtype)
    key, seed_used = _rng_key(seed)
    if save_pred and type is not None:
        warnings.warn("The 'save_pred' argument is ignored when 'type' is used.", MitmlWarning, stacklevel=2)
        save_pred = False

    spec = build_spec(data, formula=formula, type=type, group=group, kind="pan")
    design = spec.design(data)
    _check_range(design, dt)
    arrays, layout = build_arrays(design, dtype=dt)
    dims = layout.dims
    if dims["n_miss"] == 0:
        raise MitmlError("Target variables do not contain any missing data.")
    prior_np = check_pan_prior(prior, dims["r"], dims["q"])
    pan_prior = to_pan_prior(prior_np, dims["G"], dt)
    pan_arrays = pan.prepare_pan_arrays(arrays, spec.fixed_names)
    state0 = pan.init(pan_arrays, pan_prior)
    # on the host: an eager jnp.broadcast_to compiles a program per leaf on a cold start
    state0 = jax.tree_util.tree_map(lambda a: np.repeat(np.asarray(a)[None], chains, axis=0), state0)

    n_saves = saves_needed(m, chains)
    enable_compilation_cache()
    if devices is None:
        runner = run_chains
    else:
        runner = functools.partial(run_chains_sharded, devices=None if devices == "all" else devices)

    def result(run, n_saves, m):
        """The Imputations of a run's first ``n_saves`` saves per chain (``m`` in all)."""
        saved = run.saves.reshape(chains, n_saves, -1)
        target_pos = np.array([data.columns.get_loc(t) for t in spec.targets])
        index = np.column_stack([layout.miss_row, target_pos[layout.miss_col]])
        out_data = _with_predictors(data, spec, design) if save_pred else data.copy()
        call = call_text(
            "pan_impute", **({"type": type} if type is not None
                             else {"formula": formula_as_given(formula, spec.formula)}),
            n_burn=n_burn, n_iter=n_iter, m=m, group=spec.group or None, prior=prior,
            chains=chains, seed=seed_used, keep_chains=None if keep_chains == "full" else keep_chains,
            save_pred=save_pred or None, dtype=None if dtype is None else str(np.dtype(dtype)),
        )
        failures = {name: np.asarray(v) for name, v in run.failures.items()}
        return collect_imputations(
            run,
            saved_values=saved,
            miss_slot=layout.miss_slot,
            index=index,
            m=m,
            n_iter=n_iter,
            data=out_data,
            spec=spec,
            kind="pan",
            call=call,
            n_burn=n_burn,
            chains=chains,
            seed=seed_used,
            prior=[dict(prior_np) for _ in range(dims["G"])],
            keep_chains=keep_chains,
            random_L1="none",
            labels=_labels(spec),
            failures=failures,
            state=run.state,
            extra={
                "dtype": str(dt),
                "group_labels": [str(v) for v in design.group_labels] if spec.group else [""],
                "cluster_labels": np.asarray(design.cluster_labels),
            },
        )

    try:
        run = runner(
            pan.build_kernel(),
            state0,
            pan_arrays,
            pan_prior,
            key,
            n_burn=n_burn,
            n_iter=n_iter,
            n_saves=n_saves,
            transform=pan.transform,
            save=pan.save_missing,
            progress=progress,
            failure_hint=_FAILURE_HINT,
            reduce_records=pan.diagonal_records if keep_chains == "diagonal" else None,
        )
    except InterruptedChains as stop:  # Ctrl-C: keep the imputations completed so far
        run, n_saves, m = completed_part(stop, chains)
    except SamplerFailure as failure:  # non-finite draws: keep those completed before them
        failed_part(failure, chains, result)
        raise
    return result(run, n_saves, m)


