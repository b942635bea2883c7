"""Chains split over CPU threads: one compiled block per part of the chains, the parts run at once.

On a CPU, XLA runs one program mostly on one core: the Gibbs sweep of many chains is a long
sequence of small dependent kernels, and spreading each kernel over the cores costs more than it
saves. Two calls of a compiled program from two Python threads do run at the same time (JAX
releases the GIL while XLA runs), so :func:`~mitml_jax.sampling.run.run_chains` cuts the chains
into ``P`` equal parts and runs every block of iterations as ``P`` calls of the same compiled block
function, one per thread. Measured on the 2-core development machine (``benchmarks/pan_speed.py``,
Introduction model, 64 chains): 1.49-1.58 ms per iteration in one part, 0.84-0.88 ms in two; on a
16-core CPU 1.06 ms in one part and 0.24-0.27 ms in 16.

A chain's random numbers do not depend on the split (chain ``c`` keeps the key ``fold_in(key,
c)``); the compiled program does (``C / P`` chains instead of ``C``), so draws can differ from an
unsplit run in the last bits, as for chains sharded over devices. ``P`` depends on the cores this
process may use (``MITML_JAX_CHAIN_THREADS=n`` in the environment caps it; ``1`` turns the split
off) and is the largest number of parts at most that count that divides ``C``. GPUs, runs
sharded over several devices, keys other than threefry (``rbg``) and, with JAX 0.10 and older,
sweeps with batched LAPACK calls (:func:`splittable`; the parameter matrices' factorisations are
made one matrix at a time for this, see :mod:`~mitml_jax.kernels.param_linalg`, so only random
effects of more than 12 dimensions per cluster keep a sweep in one part) are not split.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import jax
import numpy as np

from ..errors import MitmlError
from ..kernels.kernel_call import any_equation, jax_version

__all__ = ["thread_limit", "chain_parts", "splittable", "split_chains", "join_chains", "PartRunner",
           "POOL_WAITING_PRIMITIVES", "SINGLE_MATRIX_SAFE", "POOL_SAFE_JAX"]


def thread_limit(variable: str, default: int | None, purpose: str) -> int:
    """The most threads for a task: the cores this process may run on, capped by the environment
    variable ``variable`` (a whole number >= 1) or, where it is unset, by ``default`` (None: no
    cap); a MitmlError naming the variable, with ``purpose`` (what the threads are for), otherwise.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    setting = os.environ.get(variable, "").strip()
    if not setting:
        return cores if default is None else min(default, cores)
    try:
        cap = int(setting)
    except ValueError:
        cap = 0
    if cap < 1:
        raise MitmlError(
            f"{variable}={setting!r} in the environment is not a whole number >= 1: set it to the "
            f"most threads {purpose}, or unset it (default: "
            f"{'the number of cores' if default is None else default})")
    return min(cap, cores)


def _on_one_cpu(state: Any) -> bool:
    """Whether the chains run on the CPU backend and are not placed over several devices."""
    for leaf in jax.tree_util.tree_leaves(state):
        if isinstance(leaf, jax.Array):
            devices = leaf.sharding.device_set
            return len(devices) == 1 and next(iter(devices)).platform == "cpu"
    return jax.default_backend() == "cpu"


def chain_parts(chains: int, state: Any, keys) -> int:
    """Number of equal parts the ``chains`` are run in (1: no split); see the module docstring.

    Keys of implementations other than threefry (``rbg``) are never split: their random bits
    under ``vmap`` depend on the batch, so a chain's draws would change with the split.
    """
    if chains < 2 or not _on_one_cpu(state) or str(jax.random.key_impl(keys)) != "threefry2x32":
        return 1
    cap = thread_limit("MITML_JAX_CHAIN_THREADS", None, "that run chains at once on a CPU (1: no split)")
    return max(p for p in range(1, min(cap, chains) + 1) if chains % p == 0)


#: Primitives that XLA's CPU backend runs as LAPACK calls (or other library calls) which split a
#: batch over XLA's intra-op thread pool and wait for it: with as many programs running at once as
#: the pool has threads, every thread can be waiting and none left to do the work (a hang, seen
#: with 256 chains of benchmark model (b) while its 5 x 5 and 10 x 10 factorisations were batched
#: LAPACK calls).
POOL_WAITING_PRIMITIVES = frozenset({
    "cholesky", "triangular_solve", "lu", "qr", "householder_product", "eigh", "eig", "svd", "schur",
    "hessenberg", "tridiagonal", "tridiagonal_solve", "custom_call", "ffi_call",
})

#: Of :data:`POOL_WAITING_PRIMITIVES`, the LAPACK primitives that do not wait when given ONE matrix
#: (operands of at most two dimensions: no batch to split). 256 chains of model (b) in two parts
#: with JAX 0.10.2 on 2 cores, factorisations one at a time: 5 of 5 runs finished.
SINGLE_MATRIX_SAFE = frozenset({"cholesky", "triangular_solve"})


#: JAX versions whose CPU LAPACK kernels do not wait on XLA's pool (jaxlib 0.11 builds them without
#: the parallel batch loop): 256 chains of model (b) in two parts on 2 cores ran 4 of 4 times with
#: JAX 0.11.2 (the GPU machine's CPU, ``taskset -c 0,1``), where JAX 0.10.2 hung on the first.
POOL_SAFE_JAX = frozenset({(0, 11)})


def _waits_on_pool(eqn) -> bool:
    """Whether an equation may wait on XLA's pool: a :data:`POOL_WAITING_PRIMITIVES` call, unless it
    is a :data:`SINGLE_MATRIX_SAFE` one on a single matrix."""
    name = eqn.primitive.name
    if name not in POOL_WAITING_PRIMITIVES:
        return False
    single = all(getattr(v.aval, "ndim", 0) <= 2 for v in eqn.invars)
    return not (name in SINGLE_MATRIX_SAFE and single)


def splittable(step_jaxpr) -> bool:
    """Whether a traced sweep may run in several parts at once: JAX is one of
    :data:`POOL_SAFE_JAX`, or no equation of the sweep (looking into every nested jaxpr) may wait
    on XLA's pool (:data:`POOL_WAITING_PRIMITIVES`, LAPACK calls on one matrix excepted)."""
    if jax_version() in POOL_SAFE_JAX:
        return True
    return not any_equation(step_jaxpr, _waits_on_pool, platform="cpu")


def split_chains(tree: Any, parts: int) -> list:
    """``parts`` pytrees, each holding an equal consecutive share of every leaf's leading axis."""
    if parts == 1:
        return [tree]
    size = jax.tree_util.tree_leaves(tree)[0].shape[0] // parts

    def part(leaf, i):  # sliced on the host: an eager slice of a device array compiles a program
        cut = slice(i * size, (i + 1) * size)
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            data = np.asarray(jax.random.key_data(leaf))[cut]
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        return np.asarray(leaf)[cut]

    return [jax.tree_util.tree_map(lambda a, i=i: part(a, i), tree) for i in range(parts)]


def join_chains(trees: Sequence, axis: int = 0) -> Any:
    """The parts of :func:`split_chains` (or of the block outputs, along ``axis``) back in one
    pytree of NumPy arrays, on the host."""
    if len(trees) == 1:
        return jax.device_get(trees[0])
    host = jax.device_get(list(trees))
    return jax.tree_util.tree_map(lambda *leaves: np.concatenate(leaves, axis=axis), *host)


class PartRunner:
    """Calls of one compiled block function, one per part of the chains, at the same time.

    ``submit(args_per_part)`` starts the calls (``block(*args)`` for every part) and returns at
    once; ``result()`` waits for them and gives the list of outputs. With one part the call is
    made directly (asynchronous dispatch does the rest), without a thread.
    """

    def __init__(self, block: Callable, parts: int):
        self._block = block
        self._pool = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="mitml-chains") if parts > 1 else None
        self._futures = None

    def _call(self, args):
        return jax.block_until_ready(self._block(*args))

    def submit(self, args_per_part: Sequence[tuple]) -> None:
        if self._pool is None:
            self._futures = [self._block(*args_per_part[0])]
        else:
            self._futures = [self._pool.submit(self._call, args) for args in args_per_part]

    def result(self) -> list:
        futures, self._futures = self._futures, None
        if self._pool is None:
            return futures
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stop accepting work; a call still running finishes in the background."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
