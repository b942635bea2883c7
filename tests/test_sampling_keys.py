"""Host-side key derivation equals jax.random bit for bit (sampling/keys.py)."""

import jax
import numpy as np
import pytest

import mitml_jax  # noqa: F401  (enables x64)
from mitml_jax.sampling.keys import chain_keys, seed_key


@pytest.mark.parametrize("seed", [0, 1, 123, 2**31, 2**40 + 5, -1, -123456789012, 2**63 - 1])
def test_seed_key_equals_jax_random_key(seed):
    ours = np.asarray(jax.random.key_data(seed_key(seed)))
    ref = np.asarray(jax.random.key_data(jax.random.key(seed)))
    np.testing.assert_array_equal(ours, ref)
    assert seed_key(seed).dtype == jax.random.key(seed).dtype


def test_seed_key_rejects_overflow():
    with pytest.raises(OverflowError):
        seed_key(2**64)


def test_chain_keys_equal_fold_in():
    key = jax.random.key(2024)
    ids = np.array([0, 1, 5, 63, 1000, 2**31 + 7])
    ours = np.asarray(jax.random.key_data(chain_keys(key, ids)))
    ref = np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(key, int(i)))) for i in ids])
    np.testing.assert_array_equal(ours, ref)


def test_chain_keys_other_implementation():
    key = jax.random.key(3, impl="rbg")
    ours = chain_keys(key, np.arange(3))
    ref = [jax.random.fold_in(key, i) for i in range(3)]
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(np.asarray(jax.random.key_data(a)), np.asarray(jax.random.key_data(b)))
