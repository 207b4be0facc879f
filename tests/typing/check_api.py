"""Type-checked, not run: ``mypy --strict`` in ``nox -s lint`` (as NumPy's typing tests).

Each loss returns the type of its logits; options are literals, so a misspelt
``reduction`` or ``validate`` and an attribute the result lacks are errors. A line that
must fail carries ``# type: ignore[code]``: under ``--strict`` an ignore that silences
nothing is itself an error, so each such line fails the check if the error goes away.
"""

from __future__ import annotations

from typing import assert_type

import numpy as np
import numpy.typing as npt

import wce_xp
from wce_xp import optax as wox

F32 = npt.NDArray[np.float32]
x: F32 = np.zeros(3, np.float32)
z: F32 = np.zeros(3, np.float32)

assert_type(wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0), F32)
assert_type(wce_xp.weighted_cross_entropy_with_logits(labels=z, logits=x, pos_weight=2.0), F32)
assert_type(wce_xp.sigmoid_cross_entropy_with_logits(z, x, reduction="mean"), F32)
assert_type(wce_xp.binary_cross_entropy_with_logits(x, z, reduction="sum"), F32)
assert_type(wce_xp.sigmoid_focal_loss(z, x, gamma=2.0, validate="always"), F32)
assert_type(wce_xp.weighted_cross_entropy_grad_hess(z, x, 2.0), tuple[F32, F32])
assert_type(wce_xp.pos_weight_from_labels(z), F32)
assert_type(wox.sigmoid_binary_cross_entropy(x, z), F32)
assert_type(wox.sigmoid_focal_loss(x, z, alpha=0.25), F32)

wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, reduction="meen")  # type: ignore[arg-type]
wce_xp.sigmoid_focal_loss(z, x, validate="sometimes")  # type: ignore[arg-type]
wce_xp.binary_cross_entropy_with_logits(x, z, reduction="weighted_mean")  # type: ignore[arg-type]
wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0).this_does_not_exist()  # type: ignore[attr-defined]

# the boosting objectives' return type is public
from wce_xp.boosting import Objective, lightgbm_objective, xgboost_objective  # noqa: E402

assert_type(xgboost_objective(3.0), Objective)
assert_type(lightgbm_objective(3.0, label_smoothing=0.1), Objective)
