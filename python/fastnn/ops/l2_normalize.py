"""L2 normalisation of the rows of an (N, D) array (PyTorch's ``F.normalize(x, dim=1)``)."""

from __future__ import annotations

from fastnn import _cpu
from fastnn._args import real
from fastnn._backend import Array, backend_for


def checked_l2_eps(owner: str, eps: float) -> float:
    """``eps`` as a float, checked now by the kernels' own rule (finite, > 0): lets a layer
    reject it when built, with the message its op would give. ``owner`` names the layer."""
    value = real(owner, "eps", eps)
    _cpu.l2_normalize_check_params(owner, value)
    return value


def l2_normalize(x: Array, eps: float = 1e-12) -> Array:
    """``x / max(||x||, eps)`` row by row; x: (N, D) float, D >= 1 -> y (N, D).

    A row shorter than ``eps`` (a zero row) is divided by ``eps`` instead, so it stays small and
    finite rather than becoming 0 / 0. Norms are summed in double.
    """
    return backend_for("l2_normalize", x).l2_normalize(x, real("l2_normalize", "eps", eps))


def l2_normalize_backward(grad_y: Array, x: Array, eps: float = 1e-12) -> Array:
    """Gradient of :func:`l2_normalize` at ``x`` given ``grad_y`` = dL/dy (N, D).

    ``dx = (grad_y - y * sum(grad_y * y, axis=1)) / ||x||`` for rows with ``||x|| > eps``, and
    ``grad_y / eps`` for the others (where ``y = x / eps`` is linear in x).
    """
    return backend_for("l2_normalize_backward", x).l2_normalize_backward(
        grad_y, x, real("l2_normalize_backward", "eps", eps)
    )
