"""Keras 3 losses on logits, computed by wce_xp on whichever backend Keras runs.

``WeightedBinaryCrossentropy`` is the weighted (``pos_weight``) binary cross-entropy
that Keras lacks; ``SigmoidFocalCrossentropy`` is the focal loss with the same options.
Both are ``keras.losses.Loss`` subclasses: Keras applies ``sample_weight``, masks and
the reduction exactly as for its own losses, to wce_xp's per-sample values (the mean
over the last axis, as ``keras.losses.BinaryCrossentropy`` computes them). They are
registered with Keras's serialization, so ``model.save("m.keras")`` and
``keras.models.load_model("m.keras")`` work without ``custom_objects`` once
``wce_xp.keras`` has been imported.
"""

from __future__ import annotations

from typing import Any

try:
    import keras
except ModuleNotFoundError as exc:  # (only Keras itself missing: its own errors pass)
    if exc.name != "keras":
        raise
    raise ModuleNotFoundError(
        "wce_xp.keras needs Keras 3: pip install 'wce_xp[keras]' (Keras runs on JAX, "
        "TensorFlow or PyTorch: install one of them too)", name="keras") from None

from ._docs import fill
from ._loss import sigmoid_focal_loss, weighted_cross_entropy_with_logits

__all__ = ["SigmoidFocalCrossentropy", "WeightedBinaryCrossentropy"]


def _plain(value: Any) -> Any:
    """A config-friendly ``pos_weight``: a float, or a list of floats (one per class)."""
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    if hasattr(value, "tolist"):
        value = value.tolist()
    elif hasattr(value, "numpy"):
        value = value.numpy().tolist()
    if isinstance(value, list | tuple):
        return [float(v) for v in value]
    return float(value)


@keras.saving.register_keras_serializable(package="wce_xp")
@fill
class WeightedBinaryCrossentropy(keras.losses.Loss):  # type: ignore[misc]
    r"""Weighted binary cross-entropy on logits, for any Keras backend.

    .. math::

        \ell_i = \frac{1}{C}\sum_c q_c\,z_{ic}\,\log(1 + e^{-x_{ic}})
                 + (1 - z_{ic})\,\log(1 + e^{x_{ic}})

    per sample (the mean over the last axis), then Keras's ``sample_weight`` and
    reduction. At ``pos_weight=1`` it is ``keras.losses.BinaryCrossentropy(
    from_logits=True)``, accurate to a few ulps on every backend.

    Parameters
    ----------
    pos_weight : float or list of float
        Weight of the positive term; one value per class (the last axis) or one for all.
    %(keras_loss)s

    Examples
    --------
    >>> import keras, numpy as np
    >>> from wce_xp.keras import WeightedBinaryCrossentropy
    >>> loss = WeightedBinaryCrossentropy(pos_weight=[1.0, 4.0])
    >>> y_true = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> y_pred = np.array([[2.0, -1.0], [0.5, 0.0]])
    >>> round(float(keras.ops.convert_to_numpy(loss(y_true, y_pred))), 5)
    1.04671
    """

    def __init__(
        self,
        pos_weight: Any = 1.0,
        *,
        label_smoothing: float = 0.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "weighted_binary_crossentropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.pos_weight = _plain(pos_weight)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return weighted_cross_entropy_with_logits(
            y_true, y_pred, self.pos_weight, label_smoothing=self.label_smoothing,
            reduction="mean", axis=-1)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(pos_weight=self.pos_weight, label_smoothing=self.label_smoothing)
        return config


@keras.saving.register_keras_serializable(package="wce_xp")
@fill
class SigmoidFocalCrossentropy(keras.losses.Loss):  # type: ignore[misc]
    r"""Focal loss on logits (Lin et al., 2017) with ``pos_weight``, for any Keras backend.

    .. math::

        \ell_i = \frac{1}{C}\sum_c \alpha_t\,(1 - p_t)^{\gamma}\,L(x_{ic}, z_{ic}, q_c)

    per sample, then Keras's ``sample_weight`` and reduction; ``L`` is the weighted
    cross-entropy of :class:`WeightedBinaryCrossentropy`. ``alpha=None`` (no alpha
    term) is Keras's ``BinaryFocalCrossentropy(apply_class_balancing=False)``.
    Values and gradients stay finite for every ``gamma ≥ 0``.

    Parameters
    ----------
    gamma : float
        Focusing parameter ``γ ≥ 0``.
    alpha : float in [0, 1], optional
        Weight of positives (negatives get ``1 - α``).
    pos_weight : float or list of float, optional
        As in :class:`WeightedBinaryCrossentropy` (default 1).
    %(keras_loss)s

    Examples
    --------
    >>> import keras, numpy as np
    >>> from wce_xp.keras import SigmoidFocalCrossentropy
    >>> loss = SigmoidFocalCrossentropy(gamma=2.0)
    >>> y_true = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> y_pred = np.array([[2.0, -1.0], [0.5, 0.0]])
    >>> round(float(keras.ops.convert_to_numpy(loss(y_true, y_pred))), 5)
    0.14379
    """

    def __init__(
        self,
        gamma: float = 2.0,
        *,
        alpha: float | None = None,
        pos_weight: Any = None,
        label_smoothing: float = 0.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "sigmoid_focal_crossentropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)
        self.pos_weight = _plain(pos_weight)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return sigmoid_focal_loss(
            y_true, y_pred, gamma=self.gamma, alpha=self.alpha, pos_weight=self.pos_weight,
            label_smoothing=self.label_smoothing, reduction="mean", axis=-1)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(gamma=self.gamma, alpha=self.alpha, pos_weight=self.pos_weight,
                      label_smoothing=self.label_smoothing)
        return config
