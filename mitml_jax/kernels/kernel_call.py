"""One jomo sweep (or one step of pan's) as one compiled CPU kernel: :func:`single_kernel`.

XLA's CPU runtime executes a compiled loop body as a graph of "thunks" (one per fusion, copy or
library call: about 200 per sweep of the Level-2 vignette model). Whenever more than eight of them
are ready at once it hands half of them to its thread pool, so one chain's sweep hops between
threads and cores for pieces of work of a microsecond or two; pinned to one core the same sweep
ran about 1.5 times faster. XLA also compiles whole computations into one function (the older
whole-program emitter, which its CPU backend still uses for small while loops): a ``call`` whose
frontend attributes say ``xla_cpu_small_call="true"`` (and ``inlineable="false"``, so that the
call survives inlining) is emitted as a single kernel. :func:`single_kernel` wraps a sweep in such
a call. Same operations, same fusions: the draws agree with the thunk build bit for bit in most
models tried and to rounding in the others (within 1e-11 after 30 sweeps).

That emitter does not compile every operation: dots, convolutions, scatters and custom calls
(LAPACK) are left out (XLA's own small-loop pass excludes the same list; a scatter fails to
compile), and so are sorts, callbacks and collectives. The sweep's jaxpr is checked for them
(:func:`fits_single_kernel`); a sweep that uses any of them runs as before. The emitter also
requires every argument of the call to be read (an unread one aborts the process), and XLA drops
reads freely (an index into a table of one row, an empty array); so the call takes the inputs the
sweep's jaxpr reads after dead-code elimination, empty ones as constants, packed into a few
float64 vectors (groups of arguments, see :func:`single_kernel`) that are always read. And the
call must return a tuple: a loop that XLA splits over two threads (a few hundred rows of
transcendental functions are enough) fails to compile as the call's single result, while inside a
tuple it is emitted as one loop; so a function with fewer than two results is not wrapped.

pan wraps one step this way, the random effects' factorisation and solves
(:func:`.conditionals.draw_random_effects`), up to 2^20 input values (``max_elements``) and only
outside ``vmap`` (``batched=False``: one or many chains-innermost chains of one group; the
calibration check's 300 or more replications ``vmap``ped over two groups made XLA emit invalid
LLVM IR for the call, "Incorrect number of arguments passed to called function"; under ``vmap``
the draw calls it once per mapped index in a loop, :func:`.conditionals._posterior_draw_mapped`): for the
simulated model of ``benchmarks/pan_speed.py`` (5 targets, a random slope) its 82 fused loops
took 1.3-1.6 s less to compile as one kernel than as thunks, and the sweep ran as fast. The
row-level missing-value solve of the same model (20,000 rows) was tried too and reverted: on
one thread, with its inputs copied in, the sweep ran about 15% slower for 0.4-0.6 s less compile.

The wrapping relies on XLA's small-call attribute and on a few private JAX functions, and a
misfit makes XLA abort the process rather than raise. It is therefore on by default only for the
JAX versions it was tested with (:data:`TESTED_JAX`, where ``tests/test_kernel_call.py`` and
the jomo reference tests pass); ``MITML_JAX_SINGLE_KERNEL=0`` in the environment turns it off,
``MITML_JAX_SINGLE_KERNEL=1`` on for other versions (run ``tests/test_kernel_call.py`` first).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from .lean_vmap import is_batched

try:  # newer JAX only; without them sweeps are never wrapped
    import jax.extend.core
    from jax._src.interpreters import partial_eval as pe  # no public equivalent
    from jax.experimental.xla_metadata import set_xla_metadata

    _AVAILABLE = hasattr(pe, "dce_jaxpr") and hasattr(pe, "convert_constvars_jaxpr")
except ImportError:  # pragma: no cover - depends on the installed JAX
    _AVAILABLE = False

#: (major, minor) versions of JAX with which the single kernel was tested (on by default there).
TESTED_JAX = frozenset({(0, 10)})

__all__ = ["EXCLUDED_PRIMITIVES", "MAX_ELEMENTS", "SMALL_CALL_ATTRIBUTES", "TESTED_JAX", "enabled",
           "fits_single_kernel", "single_kernel", "any_equation", "jax_version"]

#: Primitives the single-kernel emitter cannot compile, or that would be library calls there.
EXCLUDED_PRIMITIVES = frozenset({
    "dot_general", "conv_general_dilated", "ragged_dot", "ragged_dot_general",
    "cholesky", "triangular_solve", "lu", "lu_pivots_to_permutation", "qr", "householder_product",
    "eigh", "eig", "svd", "schur", "hessenberg", "tridiagonal", "tridiagonal_solve",
    "custom_call", "ffi_call", "pure_callback", "io_callback", "debug_callback", "callback",
    "sort", "top_k", "fft", "psum", "all_gather", "all_to_all", "ppermute", "reduce_scatter",
    "rng_bit_generator", "rng_uniform", "infeed", "outfeed",
})

#: Most input elements (all chains of a ``vmap`` counted) compiled as one kernel. Larger sweeps keep
#: XLA's thunks, which run big loops on two threads and suit the whole-computation emitter's
#: loops better: with 64 chains the Level-2 vignette model's sweep took 0.056 against 0.045 ms of
#: wall time per chain (170,000 input elements), the simulated model (c) (J = 1,000 clusters of
#: 20, 5 targets) 5.7 against 4.4 ms, while one chain of (c) (about 400,000 elements) ran
#: about as fast both ways and small sweeps 1.7 to 2.5 times faster as one kernel (same
#: process, alternating, load ~4, 2026-11-26).
MAX_ELEMENTS = 2**17

#: Frontend attributes that make XLA's CPU backend emit a call as one kernel.
SMALL_CALL_ATTRIBUTES = {"xla_cpu_small_call": "true", "inlineable": "false"}


def jax_version() -> tuple:
    """(major, minor) of the installed JAX."""
    return tuple(int(part) for part in jax.__version__.split(".")[:2] if part.isdigit())


def enabled() -> bool:
    """Whether sweeps are wrapped: on the CPU backend with one CPU device, when JAX has what the
    wrapping needs, and either ``MITML_JAX_SINGLE_KERNEL=1`` or (unset) JAX is a version in
    :data:`TESTED_JAX`; ``MITML_JAX_SINGLE_KERNEL=0`` turns it off. With several CPU devices
    (``--xla_force_host_platform_device_count``) a program sharded over them failed to link the
    call (``__xla_cpu_runtime_PartitionId`` not found), so nothing is wrapped there."""
    setting = os.environ.get("MITML_JAX_SINGLE_KERNEL", "")
    if (setting == "0" or not _AVAILABLE or jax.default_backend() != "cpu"
            or jax.local_device_count() > 1):
        return False
    return setting == "1" or jax_version() in TESTED_JAX


def _sub_jaxprs(value):
    """Jaxprs held by an equation parameter (closed or open, possibly in tuples)."""
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jax.extend.core.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _sub_jaxprs(item)


def any_equation(jaxpr, predicate, platform: str | None = None) -> bool:
    """Whether ``predicate(eqn)`` holds for an equation of ``jaxpr`` (a Jaxpr or ClosedJaxpr) or of
    any jaxpr nested in it (loops, conditionals, calls). With ``platform`` (e.g. ``"cpu"``), only
    the branch that platform runs of each ``lax.platform_dependent`` is looked into."""
    if isinstance(jaxpr, jax.extend.core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    for eqn in jaxpr.eqns:
        if predicate(eqn):
            return True
        params = dict(eqn.params)
        if platform is not None and params.get("branches_platforms") is not None:
            params["branches"] = _platform_branch(params["branches"], params["branches_platforms"], platform)
        for value in params.values():
            if any(any_equation(sub, predicate, platform) for sub in _sub_jaxprs(value)):
                return True
    return False


def _platform_branch(branches, platforms, platform: str):
    """The branch of a ``platform_dependent`` conditional that ``platform`` runs (its own, else the
    default one), as a one-element tuple; all branches where neither is found."""
    for wanted in ((lambda p: p is not None and platform in p), (lambda p: p is None)):
        for branch, names in zip(branches, platforms):
            if wanted(names):
                return (branch,)
    return tuple(branches)


def _excluded(eqn) -> bool:
    name = eqn.primitive.name
    return name in EXCLUDED_PRIMITIVES or "scatter" in name or bool(eqn.effects)


def fits_single_kernel(closed_jaxpr) -> bool:
    """Whether a traced computation uses none of :data:`EXCLUDED_PRIMITIVES` (nor any scatter or
    side effect), looking into every nested jaxpr (loops, conditionals, calls)."""
    return not any_equation(closed_jaxpr, _excluded)


def _dead_code_eliminated(closed):
    """``(jaxpr, used)``: ``closed`` without the equations and inputs its outputs do not need."""
    jaxpr, used = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
    return jax.extend.core.ClosedJaxpr(jaxpr, closed.consts), used


def _packable(leaf) -> bool:
    """Whether a leaf's values survive a round trip through float64 (and back)."""
    dtype = leaf.dtype
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return jax.random.key_data(leaf).dtype == jnp.uint32
    if dtype == jnp.int64 and not isinstance(leaf, jax.core.Tracer):  # a constant: check it
        return bool(np.all(np.abs(np.asarray(leaf)) < 2**53))
    return dtype in (jnp.float64, jnp.int32, jnp.uint32, jnp.bool_)


def _layout(leaf):
    """Static ``(size, shape, dtype, key_impl)`` of a leaf: ``size`` float64 values (two words per
    threefry key), ``key_impl`` None for plain arrays. Nothing of the leaf itself is kept: a traced
    leaf touched inside the kernel would become an extra, unread argument of the call."""
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        words = jax.random.key_data(leaf).shape
        return int(np.prod(words)), words, None, jax.random.key_impl(leaf)
    return int(np.size(leaf)), tuple(np.shape(leaf)), np.dtype(leaf.dtype), None


def _to_float(leaf):
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return jnp.ravel(jnp.asarray(leaf)).astype(jnp.float64)


def _from_float(flat, layout):
    """The inverse of :func:`_to_float` for a leaf of the given :func:`_layout`."""
    _, shape, dtype, key_impl = layout
    if key_impl is not None:
        return jax.random.wrap_key_data(flat.astype(jnp.uint32).reshape(shape), impl=key_impl)
    if dtype == np.bool_:
        return (flat != 0.0).reshape(shape)
    return flat.astype(dtype).reshape(shape)


def _batched_size(leaf) -> int:
    """Elements of a leaf including the axes ``vmap`` has mapped away (chains)."""
    while is_batched(leaf):
        leaf = leaf.val
    return int(np.size(leaf))


def single_kernel(fn, groups, max_elements=MAX_ELEMENTS, batched=True):
    """``fn`` (a pure function of pytrees of arrays) compiled as one CPU kernel where it can be.

    Args:
        fn: the function; its positional arguments are pytrees of arrays.
        groups: tuple of tuples of argument positions covering every argument: the leaves of
            each group travel to the kernel as ONE float64 vector (integers, booleans and the
            words of threefry keys are exact in float64). Group arguments that change together
            (loop-invariant data apart from the state) and make sure every group holds a value
            the computation always reads: the emitter aborts the process on an argument it
            never reads, and XLA may drop a read that does not matter (an index into a table of
            one row). Packing costs one copy of each group per call, none for loop-invariant
            groups (XLA hoists it out of the loop).

    ``max_elements``: the most input values (chains included) wrapped; None for no limit.
    ``batched``: False leaves ``fn`` unwrapped when any argument is batched by an outer ``vmap``.

    Returns a function with ``fn``'s signature and results. Each call traces ``fn`` once (through
    ``jax.jit``). If :func:`enabled`, :func:`fits_single_kernel`, every used leaf is of a
    packable type and they hold at most ``max_elements`` values (chains included), the dead-code-eliminated jaxpr is called on the packed groups as a ``call``
    carrying :data:`SMALL_CALL_ATTRIBUTES`; otherwise ``fn``'s jitted trace is called as it is.
    """
    jitted = jax.jit(fn)

    def call(*args):
        traced = jitted.trace(*args)
        if not (enabled() and fits_single_kernel(traced.jaxpr)):
            return jitted(*args)
        closed, used = _dead_code_eliminated(traced.jaxpr)
        per_arg = [jax.tree_util.tree_leaves(a) for a in args]
        group_of = {pos: g for g, members in enumerate(groups) for pos in members}
        # the jaxpr's constants travel with the last group (loop-invariant data)
        keep = [(group_of[pos], leaf) for pos, leaves in enumerate(per_arg) for leaf in leaves]
        keep = [(len(groups) - 1, c) for c in closed.consts] + [
            k for k, u in zip(keep, used) if u]
        if (not all(_packable(leaf) for _, leaf in keep) or len(closed.jaxpr.outvars) < 2
                or (not batched and any(is_batched(leaf) for _, leaf in keep))
                or (max_elements is not None
                    and sum(_batched_size(leaf) for _, leaf in keep) > max_elements)):
            return jitted(*args)
        layouts = [(g, _layout(leaf)) for g, leaf in keep]
        packed = []
        for g in range(len(groups)):
            parts = [_to_float(leaf) for (h, leaf), (_, lay) in zip(keep, layouts)
                     if h == g and lay[0] > 0]
            packed.append(jnp.concatenate(parts) if parts else None)
        passed = [p for p in packed if p is not None]

        body_jaxpr = jax.extend.core.ClosedJaxpr(pe.convert_constvars_jaxpr(closed.jaxpr), ())

        def single_kernel_body(*buffers):
            buffers = iter(buffers)
            current = {g: next(buffers) for g in range(len(groups)) if packed[g] is not None}
            offsets = dict.fromkeys(current, 0)
            inputs = []
            for g, layout in layouts:
                n = layout[0]
                if n == 0:  # made here: a constant array would become an argument
                    inputs.append(jnp.zeros(layout[1], layout[2]))
                    continue
                inputs.append(_from_float(current[g][offsets[g] : offsets[g] + n], layout))
                offsets[g] += n
            return jax.extend.core.jaxpr_as_fun(body_jaxpr)(*inputs)

        inner = jax.jit(single_kernel_body)
        if inner.trace(*passed).jaxpr.consts:  # anything captured would be an extra argument
            return jitted(*args)
        out = set_xla_metadata(inner(*passed), **SMALL_CALL_ATTRIBUTES)
        return jax.tree_util.tree_unflatten(traced.out_tree, out)

    return call
