"""Many chains over many devices and hosts: chains sharded over local devices, hosts via jax.distributed.

One host, one process (runs anywhere; add XLA_FLAGS to pretend to have 4 CPU devices):

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/multihost.py --chains 8

Several hosts (one process per host, every host runs the same command):

    MITML_COORDINATOR=host0.example.org:12355 \\
    MITML_NUM_PROCESSES=4 \\
    MITML_PROCESS_ID=<0..3> \\
    python examples/multihost.py --chains 64 --out /shared/run1

* ``MITML_COORDINATOR``: ``address:port`` of process 0 (any free TCP port reachable from every
  host); passed to ``jax.distributed.initialize(coordinator_address=...)``.
* ``MITML_NUM_PROCESSES``: number of processes (hosts); ``MITML_PROCESS_ID``: this process, 0-based.
* On a cluster JAX detects itself (SLURM, Open MPI, Cloud TPU), ``--auto`` calls
  ``jax.distributed.initialize()`` without arguments and JAX reads its environment
  (``SLURM_PROCID``, ``OMPI_COMM_WORLD_RANK``, ...).
* ``CUDA_VISIBLE_DEVICES`` chooses the GPUs of each process as usual; ``--out`` must be a folder
  every host can write (a shared file system).

How it works: chain ``c`` of a run draws from ``fold_in(key, c)`` wherever it runs, so chains need
no communication. Process ``i`` runs chains ``i * C_local ... (i + 1) * C_local - 1`` (``chain_ids``),
sharded over its local devices (``run_chains_sharded``: the chain axis of the state on a
``Mesh`` of the local devices, ``PartitionSpec("chains")``); it writes its draws to
``<out>/chains_<i>.npz`` and process 0 merges them. Every chain is the chain of a single-host run
of all chains with the same seed: bit for bit when every device holds as many chains (2 processes
x 2 CPU devices x 2 chains reproduced 1 process x 4 devices x 2 chains exactly), otherwise up to
rounding (XLA may vectorise 2 chains per device differently from 8 on one). ``--check`` reruns
this process's chains on one device without sharding and prints the largest difference.
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import numpy as np

FORMULA = "ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)"


def initialize(auto: bool) -> None:
    """Join the multi-host run when the environment asks for one (before any JAX computation)."""
    import jax

    if auto:
        jax.distributed.initialize()
    elif int(os.environ.get("MITML_NUM_PROCESSES", "1")) > 1:
        jax.distributed.initialize(
            coordinator_address=os.environ["MITML_COORDINATOR"],
            num_processes=int(os.environ["MITML_NUM_PROCESSES"]),
            process_id=int(os.environ["MITML_PROCESS_ID"]),
        )


def pan_setup(data, formula):
    """The pieces of pan_impute before the sampler: kernel, state of one chain, data, prior."""
    from mitml_jax.arrays.build import build_arrays
    from mitml_jax.kernels import pan
    from mitml_jax.priors import check_pan_prior, to_pan_prior
    from mitml_jax.spec.model_spec import build_spec

    spec = build_spec(data, formula=formula, kind="pan")
    arrays, layout = build_arrays(spec.design(data))
    dims = layout.dims
    prior = to_pan_prior(check_pan_prior(None, dims["r"], dims["q"]), dims["G"], np.float64)
    pan_arrays = pan.prepare_pan_arrays(arrays, spec.fixed_names)
    return spec, pan_arrays, prior, pan.init(pan_arrays, prior)


def run_local_chains(chain_ids, seed, n_burn, n_iter, n_saves, devices=None):
    """This process's chains, sharded over its local devices; returns the ChainRun."""
    import jax
    import jax.numpy as jnp

    from mitml_jax import load_studentratings
    from mitml_jax.kernels import pan
    from mitml_jax.sampling.run import run_chains
    from mitml_jax.sampling.sharding import run_chains_sharded

    _, pan_arrays, prior, state1 = pan_setup(load_studentratings(), FORMULA)
    state0 = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (len(chain_ids),) + a.shape), state1)
    kwargs = dict(n_burn=n_burn, n_iter=n_iter, n_saves=n_saves, transform=pan.build_transform("full"),
                  save=pan.save_missing, chain_ids=np.asarray(chain_ids), progress=False)
    if devices == 0:  # reference: one device, no sharding
        return run_chains(pan.build_kernel(), state0, pan_arrays, prior, jax.random.key(seed), **kwargs)
    return run_chains_sharded(pan.build_kernel(), state0, pan_arrays, prior, jax.random.key(seed),
                              devices=devices, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=8, help="chains per process (a multiple of its devices)")
    parser.add_argument("--n-burn", type=int, default=200)
    parser.add_argument("--n-iter", type=int, default=50)
    parser.add_argument("--saves", type=int, default=2, help="imputations per chain")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", default="multihost_out", help="folder shared by all processes")
    parser.add_argument("--auto", action="store_true", help="jax.distributed.initialize() from the cluster environment")
    parser.add_argument("--check", action="store_true", help="compare with an unsharded run of the same chains")
    args = parser.parse_args(argv)

    initialize(args.auto)
    import jax

    pid, nproc = jax.process_index(), jax.process_count()
    chain_ids = pid * args.chains + np.arange(args.chains)
    print(f"process {pid} of {nproc}: {len(jax.local_devices())} local {jax.default_backend()} device(s), "
          f"chains {chain_ids[0]}..{chain_ids[-1]}", flush=True)
    start = time.perf_counter()
    run = run_local_chains(chain_ids, args.seed, args.n_burn, args.n_iter, args.saves)
    print(f"process {pid}: {args.n_burn + args.saves * args.n_iter} iterations of {args.chains} chains in "
          f"{time.perf_counter() - start:.1f} s", flush=True)

    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, f"chains_{pid}.npz"), chain_ids=chain_ids, saves=run.saves,
             **{f"imputation_{k}": v for k, v in run.imputation.items()})
    if args.check:
        ref = run_local_chains(chain_ids, args.seed, args.n_burn, args.n_iter, args.saves, devices=0)
        diff = max(float(np.max(np.abs(ref.imputation[k] - run.imputation[k]))) for k in ref.imputation)
        print(f"process {pid}: largest difference to the unsharded run {diff:.3g}", flush=True)

    if pid == 0:  # merge every process's chains (waits for the files of the other hosts)
        deadline = time.time() + 3600
        while len(glob.glob(os.path.join(args.out, "chains_*.npz"))) < nproc and time.time() < deadline:
            time.sleep(2)
        parts = [np.load(os.path.join(args.out, f"chains_{i}.npz")) for i in range(nproc)]
        beta = np.concatenate([p["imputation_beta"] for p in parts])  # (C, D, G, p, r)
        ids = np.concatenate([p["chain_ids"] for p in parts])
        print(f"merged {len(ids)} chains; posterior mean of beta (group 1): "
              f"{np.round(beta[:, :, 0].mean(axis=(0, 1)).ravel(), 3).tolist()}")
        return beta
    return None


if __name__ == "__main__":
    main()
