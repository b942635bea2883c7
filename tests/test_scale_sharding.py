"""Chains sharded over 4 forced CPU devices give the same draws as the unsharded run.

XLA_FLAGS must be set before jax is imported, so the check runs in a fresh subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mitml_jax.errors import MitmlError

CHILD = textwrap.dedent(
    """
    import json, os
    import jax, jax.numpy as jnp, numpy as np
    import mitml_jax
    from mitml_jax.datasets import load_studentratings
    from mitml_jax.spec.model_spec import build_spec
    from mitml_jax.arrays.build import build_arrays
    from mitml_jax.kernels import pan
    from mitml_jax.kernels.state import PanInfo
    from mitml_jax.priors import check_pan_prior, to_pan_prior
    from mitml_jax.sampling.run import run_chains, chain_keys, _block_function, _block_sizes
    from mitml_jax.sampling import sharding as sh

    df = load_studentratings()
    spec = build_spec(df, formula="ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)", kind="pan")
    arrays, layout = build_arrays(spec.design(df))
    dims = layout.dims
    prior = to_pan_prior(check_pan_prior(None, dims["r"], dims["q"]), dims["G"], np.float64)
    pa = pan.prepare_pan_arrays(arrays)
    C = 8
    s0 = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (C,) + a.shape), pan.init(pa, prior))
    kw = dict(n_burn=6, n_iter=3, n_saves=2, transform=pan.build_transform("full"),
              save=pan.save_missing, progress=False)
    key = jax.random.key(20261125)
    plain = run_chains(pan.build_kernel(), s0, pa, prior, key, **kw)
    shard = sh.run_chains_sharded(pan.build_kernel(), s0, pa, prior, key, devices=None, **kw)
    from mitml_jax.kernels import pan_chains
    out = {"n_devices": len(jax.devices()), "chains_innermost": bool(pan_chains.applies(C, pa))}
    diff = {}
    for phase in ("burnin", "imputation"):
        for name in plain.burnin:
            a, b = getattr(plain, phase)[name], getattr(shard, phase)[name]
            diff[f"{phase}.{name}"] = [bool(np.array_equal(a, b)), float(np.max(np.abs(a - b)) / np.max(np.abs(a)))]
    for name, a, b in (("saves", plain.saves, shard.saves), ("state.y", plain.state.y, shard.state.y)):
        diff[name] = [bool(np.array_equal(a, b)), float(np.max(np.abs(a - b)) / np.max(np.abs(a)))]
    out["diff"] = diff
    out["spread"] = float(np.std(plain.imputation["beta"][:, -1]))

    # jit keeps the chain axis split through vmap and scan, with no collectives
    mesh = sh.chain_mesh(C)
    args = (chain_keys(key, np.arange(C)), sh.shard_chains(s0, mesh), sh.replicate(pa, mesh),
            sh.replicate(prior, mesh), jnp.int32(0), jnp.int32(6), jnp.int32(3),
            PanInfo(jnp.zeros(C, jnp.int32), jnp.zeros(C, jnp.int32)), jnp.full((C,), -1, jnp.int32))
    sizes = _block_sizes(jax.eval_shape(jax.vmap(pan.build_transform("full")), s0),
                         jax.eval_shape(jax.vmap(pan.save_missing, in_axes=(0, None)), s0, pa), 3)
    block = _block_function(pan.build_kernel(), pan.build_transform("full"), pan.save_missing, *sizes)
    res = block(*args)
    out["state_spec"] = [str(tuple(x.sharding.spec)) for x in res[0]]
    out["n_shards"] = len(res[0].y.addressable_shards)
    out["shard_rows"] = res[0].y.addressable_shards[0].data.shape[0]
    out["records_spec"] = str(tuple(res[3]["beta"].sharding.spec))
    hlo = block.lower(*args).compile().as_text()
    out["collectives"] = sum(hlo.count(k) for k in ("all-gather", "all-reduce", "all-to-all", "collective-permute"))
    print("RESULT" + json.dumps(out))
    """
)


def _run_child(chains=8):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    code = CHILD.replace("C = 8\n", f"C = {chains}\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


@pytest.fixture(scope="module")
def child():
    # two compilations of the pan block (about 30 s each on the shared 2-core machine)
    return _run_child()


@pytest.mark.slow
def test_sharded_draws_equal_unsharded(child):
    """Introduction model, 8 chains on 4 devices equal the unsharded run to 1e-12 (relative).

    Both runs draw the same random numbers (chain c's key is fold_in(key, c) wherever it runs),
    but XLA:CPU compiles the sweep for 2 chains per device differently from 8 chains on
    one device (vectorised reductions and small dots associate sums differently), so the last
    bits may differ: about 1e-15 relative on this machine, 0 with some kernel versions. The
    maximum relative difference per block is printed with -rA.
    """
    assert child["n_devices"] == 4
    assert child["chains_innermost"]  # 8 chains (2 per device): pan's chains-innermost sweep
    assert child["spread"] > 0  # the chains differ from each other, so equality is informative
    for name, (equal, maxdiff) in child["diff"].items():
        assert equal or maxdiff <= 1e-12, (name, maxdiff)
    print("bit-identical, max relative difference:", child["diff"])


@pytest.mark.slow
def test_jit_keeps_chain_sharding(child):
    assert set(child["state_spec"]) == {"('chains',)"}
    assert child["n_shards"] == 4 and child["shard_rows"] == 2
    assert "chains" in child["records_spec"]
    assert child["collectives"] == 0


@pytest.mark.slow
def test_sharded_chains_innermost_sweep():
    """32 chains (pan's chains-innermost sweep, 8 per device) on 4 devices: same draws as
    unsharded to 1e-12, the state sharded over chains, no collectives."""
    from mitml_jax.kernels import pan_chains

    assert 32 >= pan_chains.MIN_CHAINS
    res = _run_child(chains=32)
    assert res["chains_innermost"]
    assert res["spread"] > 0
    for name, (equal, maxdiff) in res["diff"].items():
        assert equal or maxdiff <= 1e-12, (name, maxdiff)
    assert set(res["state_spec"]) == {"('chains',)"}
    assert res["n_shards"] == 4 and res["shard_rows"] == 8
    assert res["collectives"] == 0


def test_usable_devices_divides_chains():
    import jax

    from mitml_jax.sampling.sharding import chain_mesh, shard_chains, usable_devices

    assert len(usable_devices(6, [jax.devices()[0]] * 1)) == 1
    mesh = chain_mesh(3)
    assert 3 % mesh.shape["chains"] == 0
    with pytest.raises(MitmlError, match="chains"):
        chain_mesh(0)
    with pytest.raises(MitmlError, match="devices"):
        chain_mesh(2, devices=10_000)
    import jax.numpy as jnp

    placed = shard_chains({"a": jnp.zeros((3, 2))}, mesh)
    assert placed["a"].shape == (3, 2)


API_CHILD = textwrap.dedent(
    """
    import numpy as np
    import mitml_jax as mj
    df = mj.load_studentratings()
    kw = dict(formula="ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID)", n_burn=6, n_iter=3, m=8,
              chains=8, seed=7, progress=False)
    plain = mj.pan_impute(df, **kw)
    sharded = mj.pan_impute(df, devices="all", **kw)
    assert np.allclose(plain.replacement, sharded.replacement, rtol=1e-12, atol=1e-9)
    for block in plain.imputation:
        assert np.allclose(plain.imputation[block], sharded.imputation[block], rtol=1e-12, atol=1e-9)
    print("OK")
    """
)


@pytest.mark.slow
def test_pan_impute_devices_all_equals_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", API_CHILD], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


def test_pan_impute_devices_on_one_device():
    import numpy as np

    import mitml_jax as mj

    df = mj.load_studentratings()[["ID", "ReadDis", "SES"]]
    kw = dict(formula="ReadDis + SES ~ 1 + (1|ID)", n_burn=4, n_iter=2, m=2, chains=2, seed=3,
              progress=False)
    np.testing.assert_allclose(mj.pan_impute(df, devices=1, **kw).replacement,
                               mj.pan_impute(df, **kw).replacement, rtol=1e-12)
