"""A SamplerFailure keeps the imputations completed before it (``.partial``), as Ctrl-C does.

A chain that turns non-finite at iteration 90,000 used to lose every imputation of the run. The
failure is simulated in the host step that detects it (``run._store``), so that it strikes after
a chosen number of blocks of the real samplers.
"""

from __future__ import annotations

import numpy as np
import pytest

import mitml_jax as mj
from mitml_jax.errors import SamplerFailure
from mitml_jax.sampling import run as run_module

from test_reliability_bad_input import FORMULA, tiny

KW = {"n_burn": 5, "n_iter": 2, "seed": 3, "progress": False}


@pytest.fixture
def fail_at_block(monkeypatch):
    """Blocks of 4 iterations; the k-th stored block (1-based) reports non-finite draws."""
    monkeypatch.setattr(run_module, "BLOCK_ITERATIONS", 4)
    real = run_module._store

    def arm(k):
        calls = {"n": 0}

        def store(pending, *args):
            calls["n"] += 1
            if calls["n"] == k:
                raise SamplerFailure(f"the sampler produced non-finite parameters in chain 1 at iteration "
                                     f"{pending[0] + 1} (1-based, burn-in included).")
            return real(pending, *args)

        monkeypatch.setattr(run_module, "_store", store)

    return arm


def test_pan_failure_keeps_the_completed_imputations(fail_at_block):
    whole = mj.pan_impute(tiny(), FORMULA, m=8, chains=2, **KW)
    fail_at_block(4)  # burn-in blocks of 4 + 1 iterations, then 2 saves per block: 2 blocks kept
    with pytest.raises(SamplerFailure, match=r"chain 1 .*\.partial") as info:
        mj.pan_impute(tiny(), FORMULA, m=8, chains=2, **KW)
    part = info.value.partial
    assert part.m == 4 and part.chains == 2
    # the same imputations as the uninterrupted run's first two saves of each chain
    keep = np.isin(whole.imputation_source[:, 1], [1, 3])  # (chain, draw) of every imputation
    assert np.array_equal(part.replacement, whole.replacement[:, keep])
    part.complete(1)  # a usable result


def test_pan_failure_in_burn_in_has_no_partial(fail_at_block):
    fail_at_block(1)
    with pytest.raises(SamplerFailure) as info:
        mj.pan_impute(tiny(), FORMULA, m=4, **KW)
    assert not hasattr(info.value, "partial") and ".partial" not in str(info.value)


def test_jomo_and_extend_failures_keep_the_completed_imputations(fail_at_block):
    data = tiny()
    whole = mj.jomo_impute(data, FORMULA, m=6, **KW)
    fail_at_block(5)  # one chain: burn-in blocks of 4 + 1, then two blocks of 2 saves kept
    with pytest.raises(SamplerFailure, match=r"\.partial") as info:
        mj.jomo_impute(data, FORMULA, m=6, **KW)
    assert info.value.partial.m == 4
    assert np.array_equal(info.value.partial.replacement, whole.replacement[:, :4])

    first = mj.pan_impute(data, FORMULA, m=2, **KW)
    fail_at_block(2)  # extend: saves of 2 iterations, 2 per block of 4: the first block is kept
    with pytest.raises(SamplerFailure, match=r"\.partial") as info:
        first.extend(m=6, progress=False)
    assert info.value.partial.m == 4
    longer = mj.pan_impute(data, FORMULA, m=4, **KW)
    assert np.array_equal(info.value.partial.replacement, longer.replacement)
