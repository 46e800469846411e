"""Fully connected layer: ``y = x @ weight.T + bias``, weight shaped (out, in) as in PyTorch."""

from __future__ import annotations

from fastnn._backend import Array, backend_for


def linear(x: Array, weight: Array, bias: Array | None = None, *, relu: bool = False) -> Array:
    """``x @ weight.T + bias``; x: (N, in), weight: (out, in), bias: (out,) or None -> (N, out).

    With ``relu``, returns ``max(y, 0)``, applied by the GEMM while each tile is in registers (no
    second pass over y; a NaN stays NaN), on either backend.
    """
    return backend_for("linear", x).linear_forward(x, weight, bias, bool(relu))


def linear_backward(
    x: Array,
    weight: Array,
    grad_out: Array,
    *,
    grad_weight: Array | None = None,
    grad_bias: Array | None = None,
    bias: bool = True,
    input_grad: bool = True,
    accumulate: bool = True,
) -> tuple[Array | None, Array, Array | None]:
    """Gradients of :func:`linear` given ``grad_out`` = dL/dy (N, out).

    Returns ``(dx, dweight, dbias)``: ``dx = grad_out @ weight`` (None when ``input_grad`` is
    False), ``dweight = grad_out.T @ x``, ``dbias = grad_out.sum(0)`` (None when ``bias`` is
    False). When ``grad_weight`` / ``grad_bias`` arrays are given, the gradients are *added*
    into them in place (written over them with ``accumulate=False``) and those arrays are
    returned.
    """
    return backend_for("linear_backward", x).linear_backward(
        x, weight, grad_out, grad_weight, grad_bias, input_grad, bias, bool(accumulate)
    )
