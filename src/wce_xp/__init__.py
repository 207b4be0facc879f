"""wce_xp: weighted sigmoid cross-entropy for every array library.

One implementation written against the Python array API standard; it runs on
NumPy, CuPy, PyTorch, JAX, Dask and array-api-strict and returns results in the
inputs' library, dtype and device.
"""

from . import boosting
from ._grad import pos_weight_from_labels, weighted_cross_entropy_grad_hess
from ._loss import (
    binary_cross_entropy_with_logits,
    sigmoid_cross_entropy_with_logits,
    sigmoid_focal_loss,
    weighted_cross_entropy_with_logits,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "binary_cross_entropy_with_logits",
    "boosting",
    "pos_weight_from_labels",
    "sigmoid_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "weighted_cross_entropy_grad_hess",
    "weighted_cross_entropy_with_logits",
]
