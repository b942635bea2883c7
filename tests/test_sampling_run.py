"""Host-side pieces of the generic driver: block sizing and the split of m over chains."""

import jax
import numpy as np

from mitml_jax.sampling import run as run_module
from mitml_jax.sampling.collect import saves_needed, split_imputations


def test_blocks_bound_device_memory_not_iterations():
    small = {"beta": jax.ShapeDtypeStruct((1, 1, 1, 3), np.float64)}
    assert run_module._segments_per_block(small, 1, 100) * 100 <= run_module.BLOCK_ITERATIONS
    big = {"psi": jax.ShapeDtypeStruct((256, 1, 10, 10), np.float64)}  # 256 chains
    k = run_module._segments_per_block(big, 1, 10)
    assert k * 10 * 256 * 100 * 8 <= run_module.BLOCK_BYTES
    assert run_module._segments_per_block(big, 1, 10**6) == 1  # at least one segment


def test_imputations_split_evenly_chain_by_chain():
    np.testing.assert_array_equal(split_imputations(5, 2), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]])
    np.testing.assert_array_equal(split_imputations(2, 4), [[0, 0], [1, 0]])
    assert saves_needed(5, 2) == 3 and saves_needed(2, 4) == 1 and saves_needed(8, 4) == 2
