"""Chains sharded over devices: a one-axis ``Mesh`` named ``"chains"`` and the placement helpers.

Chains are independent, so sharding them needs no communication: the chain axis of the starting
state is placed with ``NamedSharding(mesh, PartitionSpec("chains"))`` and the data and prior are
replicated on every device. :func:`~mitml_jax.sampling.run.run_chains` jits its block function
without explicit shardings, so XLA's sharding propagation keeps the chain axis split through
``vmap`` and ``lax.scan`` (the per-iteration keys are computed from the unsharded chain keys and
then follow the state): each device runs ``C / n_devices`` chains and only the small parameter
records and saves are gathered when a block is copied to the host.

Because chain ``c`` uses ``fold_in(key, c)`` whatever the placement, a sharded run draws the same
random numbers as an unsharded one. The draws agree to rounding: XLA compiles the vmapped kernel
for ``C / n`` chains per device and may associate reductions differently than for ``C`` chains on
one device, so the last bits can differ (about 1e-15 relative on CPU, see
``tests/test_scale_sharding.py``).

Several hosts (``jax.distributed``): every process runs its own chains on its local devices with
``chain_ids = process_index * C_local + arange(C_local)``, which reproduces chains of the single
host run exactly; see ``examples/multihost.py``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import MitmlError, MitmlTypeError
from .arguments import check_count

__all__ = [
    "CHAIN_AXIS",
    "chain_mesh",
    "usable_devices",
    "shard_chains",
    "replicate",
    "run_chains_sharded",
]

#: Name of the mesh axis that carries the chains.
CHAIN_AXIS = "chains"


def _local_devices(devices) -> list:
    """The devices named by ``devices``: None (all local devices), a count n (the first n local
    devices; a whole float such as ``2.0`` counts, as R's doubles) or a non-empty list of
    :class:`jax.Device`; a MitmlTypeError/MitmlError naming ``'devices'`` otherwise."""
    if devices is None:
        return list(jax.local_devices())
    accepted = "None, 'all', an integer n (the first n local devices) or a non-empty list of jax devices"
    if isinstance(devices, (bool, np.bool_, str, bytes)):
        raise MitmlTypeError(f"'devices' must be {accepted}, got {devices!r}.")
    if isinstance(devices, (int, float, np.number)) or (isinstance(devices, (np.ndarray, jax.Array))
                                                         and devices.ndim == 0):
        local = jax.local_devices()
        try:
            n = check_count("devices", devices, 1)
        except MitmlTypeError:
            raise MitmlTypeError(f"'devices' must be {accepted}, got {devices!r}.") from None
        except MitmlError:
            n = None
        if n is None or n > len(local):
            got = devices if n is None else n
            raise MitmlError(
                f"'devices' must be between 1 and the {len(local)} local device(s), got {got}; "
                "on CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N before importing jax."
            )
        return list(local[:n])
    try:
        listed = list(devices)
    except TypeError:
        raise MitmlTypeError(f"'devices' must be {accepted}, got {devices!r}.") from None
    if not listed or not all(isinstance(d, jax.Device) for d in listed):
        raise MitmlTypeError(f"'devices' must be {accepted}, got {devices!r}.")
    if len(set(listed)) < len(listed):
        raise MitmlError(f"'devices' lists a device more than once ({devices!r}); name every device once "
                         "(each runs its own share of the chains).")
    return listed


def usable_devices(chains: int, devices=None) -> list:
    """The largest prefix of ``devices`` whose length divides ``chains`` (every device gets
    the same number of chains; with 6 chains on 4 devices, 3 devices are used)."""
    devices = _local_devices(devices)
    n = max(k for k in range(1, min(len(devices), int(chains)) + 1) if int(chains) % k == 0)
    return devices[:n]


def chain_mesh(chains: int, devices=None) -> Mesh:
    """A one-axis :class:`jax.sharding.Mesh` (axis ``"chains"``) for ``chains`` chains.

    Args:
        chains: number of chains (>= 1).
        devices: None (all local devices), an integer (the first n local devices; a whole
            float such as ``2.0`` counts) or a list of devices. Only as many devices as divide
            ``chains`` are used.
    """
    if isinstance(chains, (bool, np.bool_)) or not isinstance(chains, (int, np.integer)) or chains < 1:
        raise MitmlError(f"'chains' must be an integer >= 1, got {chains!r}.")
    return Mesh(np.asarray(usable_devices(int(chains), devices)), (CHAIN_AXIS,))


def shard_chains(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf's leading (chain) axis on ``mesh`` (``PartitionSpec("chains")``)."""
    n = mesh.shape[CHAIN_AXIS]
    sharding = NamedSharding(mesh, PartitionSpec(CHAIN_AXIS))

    def place(leaf):
        if leaf.shape[0] % n:
            raise MitmlError(f"the chain axis ({leaf.shape[0]}) is not a multiple of the {n} devices of the mesh.")
        return jax.device_put(leaf, sharding)

    return jax.tree_util.tree_map(place, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """A copy of ``tree`` on every device of ``mesh`` (data and prior shared by all chains)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def run_chains_sharded(
    kernel,
    init_state: Any,
    arrays: Any,
    prior: Any,
    rng_key,
    *,
    devices: Sequence | int | None = None,
    **kwargs,
):
    """:func:`~mitml_jax.sampling.run.run_chains` with the chains split over ``devices``.

    The starting state's chain axis is sharded over a :func:`chain_mesh`, the data and prior are
    replicated; every other argument is passed on. Same draws as the unsharded run for the same
    key and chain ids.

    Returns:
        the :class:`~mitml_jax.sampling.run.ChainRun` (NumPy arrays on the host).
    """
    from .run import run_chains

    chains = jax.tree_util.tree_leaves(init_state)[0].shape[0]
    mesh = chain_mesh(chains, devices)
    state = shard_chains(init_state, mesh)
    return run_chains(kernel, state, replicate(arrays, mesh), replicate(prior, mesh), rng_key, **kwargs)

