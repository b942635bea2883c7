"""Host -> device seam: sorted, padded (G, J, L, ...) arrays of the imputation model."""

from .build import Layout, ModelArrays, build_arrays

__all__ = ["Layout", "ModelArrays", "build_arrays"]
