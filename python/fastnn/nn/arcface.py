"""ArcFace loss layer: additive angular margin softmax cross-entropy (Deng et al. 2019) over
learned class centres, for training embeddings (verification and identification)."""

from __future__ import annotations

import math

from fastnn import ops
from fastnn._backend import Array
from fastnn._device import zeros_like
from fastnn.nn.linear import _check_dtype, _check_positive_int, uniform_init
from fastnn.nn.loss import _empty_batch
from fastnn.nn.module import Module, Parameter
from fastnn.ops.arcface import checked_arcface_params


class ArcFaceLoss(Module):
    """ArcFace on raw embeddings: ``loss = fn(embeddings, labels)`` (a Python float, the batch
    mean), then ``fn.backward()`` returns dloss/dembeddings and adds dloss/dweight into
    ``fn.weight.grad``.

    The class centres are ``weight``, a Parameter (num_classes, embedding_dim) with Xavier-uniform
    initialisation from fastnn's seeded generator, trained like any other
    (``fn.parameters()``). Both embeddings and centres are L2-normalised (``eps``) inside the
    loss; the target class's angle gets the margin ``m`` (radians) and the logits the scale
    ``s``. Where ``theta + m`` would pass pi, the target logit follows insightface's rule
    (:func:`fastnn.ops.arcface_loss` says how). :meth:`logits` gives the plain scaled cosines
    without margin, for closed-set accuracy. In eval mode the forward computes the loss only.
    """

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5,
                 eps: float = 1e-12) -> None:
        super().__init__()
        owner = "nn.ArcFaceLoss"
        self.embedding_dim = _check_positive_int("ArcFaceLoss", "embedding_dim", embedding_dim)
        self.num_classes = _check_positive_int("ArcFaceLoss", "num_classes", num_classes)
        self.s, self.m, self.eps = checked_arcface_params(owner, s, m, eps)
        # Xavier (Glorot) uniform: fan_in = embedding_dim, fan_out = num_classes, as PyTorch's
        # xavier_uniform_ on a (num_classes, embedding_dim) weight.
        bound = math.sqrt(6.0 / (self.embedding_dim + self.num_classes))
        self.weight = Parameter(uniform_init((self.num_classes, self.embedding_dim), bound))
        # What backward hands out: the last training forward's gradients (dloss/dweight written
        # into a fresh zeroed array), or None.
        self._grad: Array | None = None
        self._weight_grad: Array | None = None

    def _check_embeddings(self, embeddings: Array) -> None:
        shape = tuple(getattr(embeddings, "shape", ()))
        if len(shape) != 2 or shape[1] != self.embedding_dim:
            raise ValueError(
                f"fastnn.nn.ArcFaceLoss: embeddings must be 2-D (N, embedding_dim={self.embedding_dim}); "
                f"got shape {shape if hasattr(embeddings, 'shape') else type(embeddings).__name__}"
            )
        _check_dtype(self, embeddings)

    def forward(self, embeddings: Array, labels: Array) -> float:  # type: ignore[override]
        """The mean loss over the batch (NaN for a batch of 0, the mean of nothing, as the
        other losses give; its gradients are then empty / zero)."""
        self._check_embeddings(embeddings)
        self._grad = self._weight_grad = None
        if _empty_batch(embeddings, labels, same_shape=False):
            self._grad, self._weight_grad = embeddings.copy(), zeros_like(self.weight.data)
            return float("nan")
        if not self.training:
            loss, _ = ops.arcface_loss(embeddings, self.weight.data, labels, self.s, self.m, self.eps,
                                       compute_grad=False)
            return loss
        weight_grad = zeros_like(self.weight.data)
        loss, self._grad = ops.arcface_loss(embeddings, self.weight.data, labels, self.s, self.m, self.eps,
                                            weight_grad=weight_grad)
        self._weight_grad = weight_grad
        return loss

    def backward(self, grad_out: float = 1.0) -> Array:  # type: ignore[override]
        """dloss/dembeddings of the last training forward, scaled by ``grad_out``; adds
        dloss/dweight (scaled alike) into ``weight.grad``."""
        if self._grad is None or self._weight_grad is None:
            raise RuntimeError(
                "ArcFaceLoss.backward called before the loss was computed in training mode "
                "(an eval-mode forward computes no gradients: call .train() first)"
            )
        grad, weight_grad = self._grad, self._weight_grad
        if grad_out != 1.0:
            grad, weight_grad = grad * grad_out, weight_grad * grad_out
        if self.weight.grad is None:
            self.weight.grad = zeros_like(self.weight.data)
        self.weight.grad += weight_grad  # never adopted: a second backward must not add it into itself
        return grad

    def logits(self, embeddings: Array) -> Array:
        """``s * cos`` (N, num_classes) of the L2-normalised embeddings against the normalised
        class centres, without the margin: ``argmax`` gives the closed-set prediction."""
        self._check_embeddings(embeddings)
        e_hat = ops.l2_normalize(embeddings, self.eps)
        w_hat = ops.l2_normalize(self.weight.data, self.eps)
        return ops.matmul(e_hat, w_hat, trans_b=True, alpha=self.s)

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}, s={self.s}, m={self.m}"
