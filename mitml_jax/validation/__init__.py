"""Validation of the samplers: simulation-based calibration (not imported by ``import mitml_jax``)."""
