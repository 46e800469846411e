"""Batch normalisation layers (PyTorch's BatchNorm1d / BatchNorm2d, affine, tracking running
statistics): training mode normalises by the batch's statistics and updates the running ones;
eval mode normalises by the running statistics. And L2Normalize, rows to unit length."""

from __future__ import annotations

import math

import numpy as np

from fastnn import ops
from fastnn._args import real
from fastnn._backend import Array
from fastnn.nn.module import Module, Parameter, forward_cache_missing
from fastnn.ops.l2_normalize import checked_l2_eps


class _BatchNorm(Module):
    """Parameters weight (ones) and bias (zeros); buffers running_mean (zeros), running_var
    (ones) and num_batches_tracked, all in the state dict under PyTorch's names."""

    _expected_input = ""  # e.g. "4-D (N, C, H, W)", for messages

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        owner = f"nn.{type(self).__name__}"
        name = f"fastnn.{owner}"
        if (
            isinstance(num_features, bool)
            or not isinstance(num_features, (int, np.integer))
            or num_features < 1
        ):
            raise ValueError(f"{name}: argument 'num_features' must be a positive int; got {num_features!r}")
        eps, momentum = real(owner, "eps", eps), real(owner, "momentum", momentum)
        if not eps >= 0.0:
            raise ValueError(f"{name}: argument 'eps' must be >= 0; got {eps}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: argument 'momentum' must lie in [0, 1]; got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.weight = Parameter(np.ones(self.num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(self.num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(self.num_features, dtype=np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        # What backward needs: the input, the statistics forward normalised with, the mode.
        self._x: Array | None = None
        self._mean: Array | None = None
        self._inv_std: Array | None = None
        self._trained = True
        # Whether the last forward applied the ReLU with the saved batch statistics, so that
        # backward_relu can recompute the ReLU's mask from x (training mode only: an eval
        # forward's 1/std is computed by the kernel, not the one kept in _inv_std).
        self._relu_fused = False

    def _layer_name(self) -> str:
        return f"fastnn.nn.{type(self).__name__}"

    def _rank_ok(self, ndim: int) -> bool:
        raise NotImplementedError

    def _check_input(self, x: Array) -> None:
        shape = tuple(getattr(x, "shape", ()))
        if not self._rank_ok(len(shape)):
            raise ValueError(f"{self._layer_name()}: input must be {self._expected_input}; got shape {shape}")
        if shape[1] != self.num_features:
            raise ValueError(
                f"{self._layer_name()}: input must have {self.num_features} channels (num_features) "
                f"on axis 1; got shape {shape}"
            )
        if self.training and math.prod(shape) // shape[1] == 1:
            raise ValueError(
                f"{self._layer_name()}: expected more than 1 value per channel when training; "
                f"got input shape {shape}"
            )

    def forward(self, x: Array) -> Array:
        """Normalises ``x`` (see the class docstring). An empty input (a batch of 0) gives an
        empty output and leaves the running statistics alone, in both modes (PyTorch's rule)."""
        return self._forward(x, relu=False)

    def forward_relu(self, x: Array) -> Array:
        """``relu(forward(x))`` in the normalising pass: used by :class:`fastnn.nn.Sequential`
        for a BatchNorm followed by :class:`fastnn.nn.ReLU`, whose backward then runs inside
        this layer's (:meth:`backward_relu`)."""
        if type(self).forward is not _BatchNorm.forward:  # a subclass's own math (SyncBatchNorm)
            return ops.relu(self.forward(x))
        return self._forward(x, relu=True)

    def _forward(self, x: Array, relu: bool) -> Array:
        self._relu_fused = False
        self._check_input(x)
        if self.training and x.size == 0:
            # No values to take statistics of: nothing to normalise and nothing to learn.
            # Backward then runs the eval-mode formula, which for no values gives an empty dx
            # and zero parameter gradients.
            self._x, self._trained = x, False
            self._mean = self.running_mean.copy()
            self._inv_std = (self.running_var + self.eps) ** -0.5
            return x.copy()  # empty: the ReLU has nothing to change
        if self.training:
            y, self._mean, self._inv_std = ops.batch_norm_train(
                x,
                self.weight.data,
                self.bias.data,
                self.running_mean,
                self.running_var,
                momentum=self.momentum,
                eps=self.eps,
                relu=relu,
            )
            self._relu_fused = relu
            self.num_batches_tracked[...] += 1  # in place: rebinding would unregister the buffer
        else:
            y = ops.batch_norm_eval(
                x, self.weight.data, self.bias.data, self.running_mean, self.running_var, eps=self.eps,
                relu=relu,
            )
            # Constants for backward: the statistics this forward used (C values each).
            self._mean = self.running_mean.copy()
            self._inv_std = (self.running_var + self.eps) ** -0.5
        self._x, self._trained = x, self.training
        return y

    def backward(self, grad_out: Array) -> Array:
        """dL/dx for the last forward; adds dL/dweight and dL/dbias into the ``.grad`` arrays."""
        return self._backward(grad_out, relu=False)

    def backward_relu(self, grad_out: Array, relu: Module) -> Array:
        """The backward of this layer and the ReLU module ``relu`` after it, given the gradient
        of the ReLU's output. After a training-mode :meth:`forward_relu`, one kernel masks
        ``grad_out`` by the sign of the output (recomputed from x with the forward's own
        arithmetic, so exactly the stored output's ``y > 0``) inside the batch norm's passes;
        otherwise it runs ``relu.backward`` and then :meth:`backward`. Used by
        :class:`fastnn.nn.Sequential`."""
        if self._relu_fused and self._x is not None and not callable(self._x):
            return self._backward(grad_out, relu=True)
        return self.backward(relu.backward(grad_out))

    def _backward(self, grad_out: Array, relu: bool) -> Array:
        if self._x is None:
            raise forward_cache_missing(self)
        if callable(self._x):
            # A folded eval forward (nn/fuse.py) never computed this layer's input, the
            # convolution's output: it left a callable that computes it.
            self._x = self._x()
        dx, dw, db = ops.batch_norm_backward(
            grad_out,
            self._x,
            self.weight.data,
            self._mean,
            self._inv_std,
            training=self._trained,
            grad_weight=self.weight.grad,
            grad_bias=self.bias.grad,
            bias=self.bias.data if relu else None,
            relu=relu,
        )
        self.weight.grad, self.bias.grad = dw, db
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features (or (N, C, L) sequences), per feature C."""

    _expected_input = "2-D (N, C) or 3-D (N, C, L)"

    def _rank_ok(self, ndim: int) -> bool:
        return ndim in (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C over N, H and W."""

    _expected_input = "4-D (N, C, H, W)"

    def _rank_ok(self, ndim: int) -> bool:
        return ndim == 4


class L2Normalize(Module):
    """Divides each row of an (N, D) input by its L2 norm, or by ``eps`` where the norm is
    smaller (PyTorch's ``F.normalize(x, p=2, dim=1, eps=eps)``): unit-length embeddings for
    cosine similarity. No parameters."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = checked_l2_eps("nn.L2Normalize", eps)
        self._x: Array | None = None  # what backward needs: the input

    def forward(self, x: Array) -> Array:
        """``x / max(||x||, eps)`` row by row (a batch of 0 gives an empty output)."""
        y = ops.l2_normalize(x, self.eps)
        self._x = x
        return y

    def backward(self, grad_out: Array) -> Array:
        """dL/dx for the last forward (see :func:`fastnn.ops.l2_normalize_backward`)."""
        if self._x is None:
            raise forward_cache_missing(self)
        return ops.l2_normalize_backward(grad_out, self._x, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
