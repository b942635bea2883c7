"""examples/multihost.py runs as one process on 2 forced CPU devices and matches the unsharded run."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "multihost.py")


@pytest.mark.slow
def test_multihost_example_single_process(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    for name in ("MITML_NUM_PROCESSES", "MITML_PROCESS_ID", "MITML_COORDINATOR"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, EXAMPLE, "--chains", "4", "--n-burn", "10", "--n-iter", "5", "--saves", "2",
         "--out", str(tmp_path), "--check"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process 0 of 1: 2 local cpu device(s), chains 0..3" in proc.stdout
    diff = float(re.search(r"largest difference to the unsharded run (\S+)", proc.stdout).group(1))
    assert diff < 1e-9
    assert "merged 4 chains" in proc.stdout
    assert os.path.exists(tmp_path / "chains_0.npz")
