"""What the peers' ports share: the gradient a backend's users would take."""

from __future__ import annotations

import numpy as np
import pytest

from .._helpers import make, to_numpy


def gradient(backend, xp, device, loss_of_logits, x: np.ndarray, dtype="float64"):
    """d sum(loss(x)) / dx as users of ``backend`` get it: autograd on PyTorch, jax.grad
    on JAX, tf.GradientTape on TensorFlow; elsewhere the library's own analytic gradient
    is what they use, so the caller passes it (``loss_of_logits`` returns
    ``(loss, grad)`` there)."""
    xa = make(xp, device, x, dtype)
    if backend.value in ("torch", "torch_cuda"):
        xt = xa.detach().clone().requires_grad_(True)
        out = loss_of_logits(xt)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        return to_numpy(xt.grad)
    if backend.value == "jax":
        import jax

        def total(v):
            out = loss_of_logits(v)
            return (out[0] if isinstance(out, tuple) else out).sum()

        return to_numpy(jax.grad(total)(xa))
    if backend.value == "tensorflow":
        import tensorflow as tf

        xv = tf.Variable(xa)
        with tf.GradientTape() as tape:
            out = loss_of_logits(xv)
            total = tf.reduce_sum(out[0] if isinstance(out, tuple) else out)
        return to_numpy(tape.gradient(total, xv))
    out = loss_of_logits(xa)
    if not isinstance(out, tuple):
        pytest.fail("a backend without autodiff needs the analytic gradient")
    return to_numpy(out[1])


def with_grad(loss_fn, grad_fn):
    """A logits -> (loss, analytic grad) pair for backends without autodiff."""
    def both(x):
        return loss_fn(x), grad_fn(x)
    return both


__all__ = ["gradient", "make", "to_numpy", "with_grad"]
