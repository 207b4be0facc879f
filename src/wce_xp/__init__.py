"""wce_xp: weighted sigmoid cross-entropy for every array library.

One implementation written against the Python array API standard; it runs on
NumPy, CuPy, PyTorch, JAX, Dask, array-api-strict and TensorFlow and returns
results in the inputs' library, dtype and device.

The public names are loaded on first use (PEP 562), so that ``import wce_xp`` and
the ``wce-xp`` command's start-up cost almost nothing until a function is needed.
"""

from __future__ import annotations

import importlib

from . import _fork  # noqa: F401  (registers the fork handler before any fork)
from ._version import __version__

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)

# public name -> the submodule that defines it ("" for a submodule itself)
_LAZY = {
    "binary_cross_entropy_with_logits": "._loss",
    "sigmoid_cross_entropy_with_logits": "._loss",
    "sigmoid_focal_loss": "._loss",
    "weighted_cross_entropy_with_logits": "._loss",
    "pos_weight_from_labels": "._grad",
    "weighted_cross_entropy_grad_hess": "._grad",
    "boosting": "",
    "show_config": "._config",
    "get_num_threads": "._native._numpy",
    "set_num_threads": "._native._numpy",
}

__all__ = [
    "__version__",
    "binary_cross_entropy_with_logits",
    "boosting",
    "get_num_threads",
    "pos_weight_from_labels",
    "set_num_threads",
    "show_config",
    "sigmoid_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "weighted_cross_entropy_grad_hess",
    "weighted_cross_entropy_with_logits",
]

if TYPE_CHECKING:
    from typing import Any

    from . import boosting
    from ._config import show_config
    from ._grad import pos_weight_from_labels, weighted_cross_entropy_grad_hess
    from ._loss import (
        binary_cross_entropy_with_logits,
        sigmoid_cross_entropy_with_logits,
        sigmoid_focal_loss,
        weighted_cross_entropy_with_logits,
    )
    from ._native._numpy import get_num_threads, set_num_threads


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        try:  # a submodule (wce_xp.keras, wce_xp.cli, ...), as `import wce_xp.keras` gives
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module 'wce_xp' has no attribute {name!r}")
    module = importlib.import_module(where or f".{name}", __name__)
    value = module if not where else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
