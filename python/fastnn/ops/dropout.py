"""Inverted dropout with a counter-based mask: the mask depends only on ``(seed, element
index)``, so it is the same for any thread count (:func:`fastnn.reference.dropout` computes
the identical mask in NumPy)."""

from __future__ import annotations

from fastnn._args import real
from fastnn._backend import Array, backend_for


def dropout(x: Array, p: float, seed: int) -> tuple[Array, Array]:
    """Zeroes each element with probability ``p`` and scales the rest by ``1 / (1 - p)``.

    Returns ``(y, mask)``: mask is uint8 (1 = kept) of x's shape, the input of
    :func:`dropout_backward`. ``p`` in [0, 1] (p = 1 gives zeros); ``seed`` an int in
    [0, 2**64) — :class:`fastnn.nn.Dropout` draws it from fastnn's global generator.
    """
    return backend_for("dropout", x).dropout_forward(x, real("dropout", "p", p), seed)


def dropout_backward(grad_out: Array, mask: Array, p: float) -> Array:
    """``grad_out * mask / (1 - p)`` with the mask :func:`dropout` returned."""
    return backend_for("dropout_backward", grad_out).dropout_backward(
        grad_out, mask, real("dropout_backward", "p", p)
    )
