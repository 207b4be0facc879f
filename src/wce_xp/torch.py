"""PyTorch loss modules: ``BCEWithLogitsLoss`` and ``SigmoidFocalLoss``.

``wce_xp.torch.BCEWithLogitsLoss`` is ``torch.nn.BCEWithLogitsLoss`` with wce_xp's
arithmetic: the same constructor, buffers (``weight`` and ``pos_weight`` follow
``.to()``), ``state_dict`` keys and ``repr`` — it *is* a subclass of PyTorch's module,
so a model saved with either loads into the other — and the loss of
:func:`wce_xp.binary_cross_entropy_with_logits`. ``SigmoidFocalLoss`` takes
torchvision's ``sigmoid_focal_loss`` arguments, plus ``pos_weight``.

Importing this module imports nothing from PyTorch; the classes are made on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BCEWithLogitsLoss", "SigmoidFocalLoss"]  # noqa: F822  (made on first use)

_CLASSES: dict[str, Any] = {}


def _make() -> dict[str, Any]:
    import torch

    from ._compat import require_supported
    from ._loss import binary_cross_entropy_with_logits, sigmoid_focal_loss

    require_supported("torch")

    class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):  # type: ignore[misc]
        r"""``torch.nn.BCEWithLogitsLoss`` computed by wce_xp.

        .. math::

            \ell = w\,\big[q\,z\,\log(1 + e^{-x}) + (1 - z)\,\log(1 + e^{x})\big]

        A subclass of :class:`torch.nn.BCEWithLogitsLoss`: the same constructor,
        ``state_dict`` keys and ``isinstance``; ``forward`` is
        :func:`wce_xp.binary_cross_entropy_with_logits`.

        Parameters
        ----------
        weight : Tensor, optional
            Rescaling weight broadcast to the input; a buffer that moves with the
            module and is saved in its ``state_dict``.
        size_average : bool, optional
            Deprecated in PyTorch; as there.
        reduce : bool, optional
            Deprecated in PyTorch; as there.
        reduction : {"mean", "sum", "none"}
            As in PyTorch. Default "mean".
        pos_weight : Tensor, optional
            Weight of positive examples (one per class along the last axis); a buffer.

        Examples
        --------
        >>> import torch, wce_xp.torch
        >>> criterion = wce_xp.torch.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0]))
        >>> x = torch.tensor([[0.5, -1.0], [2.0, 0.0]], requires_grad=True)
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> loss = criterion(x, z)
        >>> loss.backward()
        >>> round(float(loss), 5)
        1.02037
        """

        def forward(self, input: Any, target: Any) -> Any:
            return binary_cross_entropy_with_logits(
                input, target, self.weight, self.pos_weight, reduction=self.reduction)

    class SigmoidFocalLoss(torch.nn.Module):  # type: ignore[misc]
        r"""Focal loss on logits as a module, with torchvision's arguments and ``pos_weight``.

        .. math::

            FL = \alpha_t\,(1 - p_t)^{\gamma}\,L(x, z, q)

        (:func:`wce_xp.sigmoid_focal_loss`; ``forward(inputs, targets)`` in
        torchvision's order.)

        Parameters
        ----------
        alpha : float
            Weight of positives in [0, 1]; negatives get ``1 - alpha``. A negative
            value means no alpha term (torchvision's convention). Default 0.25.
        gamma : float
            Focusing parameter ``γ ≥ 0``. Default 2.
        reduction : {"none", "mean", "sum"}
            As in torchvision. Default "none".
        pos_weight : Tensor, optional
            Weight of the positive term (one per class along the last axis), a
            buffer that moves with the module.

        Examples
        --------
        >>> import torch, wce_xp.torch
        >>> fl = wce_xp.torch.SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="sum")
        >>> float(fl(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 0.0])))  # doctest: +ELLIPSIS
        1.2380...
        """

        def __init__(self, alpha: float = 0.25, gamma: float = 2.0,
                     reduction: str = "none", pos_weight: Any = None) -> None:
            super().__init__()
            if reduction not in ("none", "mean", "sum"):
                raise ValueError(f"reduction: expected 'none', 'mean' or 'sum' (torchvision's "
                                 f"choices), got {reduction!r}")
            self.alpha = float(alpha)
            self.gamma = float(gamma)
            self.reduction: Any = reduction  # (checked above)
            self.register_buffer("pos_weight", pos_weight)

        def forward(self, inputs: Any, targets: Any) -> Any:
            return sigmoid_focal_loss(
                targets, inputs, gamma=self.gamma,
                alpha=None if self.alpha < 0 else self.alpha,
                pos_weight=self.pos_weight, reduction=self.reduction)

        def extra_repr(self) -> str:
            return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"

    BCEWithLogitsLoss.__module__ = SigmoidFocalLoss.__module__ = __name__
    return {"BCEWithLogitsLoss": BCEWithLogitsLoss, "SigmoidFocalLoss": SigmoidFocalLoss}


def __getattr__(name: str) -> Any:
    if name in __all__:
        if not _CLASSES:
            _CLASSES.update(_make())
        globals().update(_CLASSES)  # later lookups skip this function (and pickling finds them)
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
