"""The ArcFace loss (additive angular margin softmax cross-entropy, Deng et al. 2019), fused."""

from __future__ import annotations

from fastnn import _cpu
from fastnn._args import real
from fastnn._backend import Array, backend_for


def checked_arcface_params(owner: str, s: float, m: float, eps: float) -> tuple[float, float, float]:
    """A layer's ``(s, m, eps)`` (scale, margin, eps) as floats, checked now by the kernel's own
    rule (0 < s < inf, 0 <= m < pi/2, 0 < eps < inf): lets a layer reject them when built, with
    the messages naming its arguments. ``owner`` names the layer."""
    values = (real(owner, "s", s), real(owner, "m", m), real(owner, "eps", eps))
    _cpu.arcface_check_params(owner, *values)
    return values


def arcface_loss(
    embeddings: Array,
    weight: Array,
    labels: Array,
    scale: float = 64.0,
    margin: float = 0.5,
    eps: float = 1e-12,
    weight_grad: Array | None = None,
    compute_grad: bool = True,
) -> tuple[float, Array | None]:
    """Mean ArcFace loss of raw ``embeddings`` (N, D) against class centres ``weight`` (C, D).

    labels: (N,) int64 or int32 in ``[0, C)``. Both sides are L2-normalised (as
    :func:`l2_normalize` with ``eps``), ``cos = e_hat @ w_hat.T`` (N, C), and on each row's
    target column ``cos(theta)`` becomes ``cos(theta + margin)`` computed as
    ``cos * cos(m) - sin * sin(m)``, ``sin = sqrt(max(1 - cos**2, 0))``. Where
    ``theta + m > pi`` (``cos <= cos(pi - m)``) it becomes ``cos - sin(pi - m) * m`` instead,
    insightface's rule (easy_margin=False), which keeps the target logit falling as theta grows.
    The logits ``scale * cos`` then go through softmax cross-entropy, averaged over the batch.

    Returns ``(loss, dloss/dembeddings)`` (the gradient None when ``compute_grad`` is False).
    When a ``weight_grad`` array (C, D) is given, dloss/dweight is *added* into it in place (the
    ``.grad`` convention); it must be None when ``compute_grad`` is False. Labels out of range
    raise ValueError, as for :func:`softmax_cross_entropy`.
    """
    op = "arcface_loss"
    return backend_for(op, embeddings).arcface_loss(
        embeddings,
        weight,
        labels,
        real(op, "scale", scale),
        real(op, "margin", margin),
        real(op, "eps", eps),
        weight_grad,
        bool(compute_grad),
    )
