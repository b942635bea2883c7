"""Host-side model specification (no JAX): formulas or type codes -> ModelSpec -> Design."""
