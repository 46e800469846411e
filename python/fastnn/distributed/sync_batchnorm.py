"""SyncBatchNorm: batch normalisation with the statistics of the global batch (all ranks).

Forward, training: per channel, the local count M_r, sum S1_r = sum x and sum of squares
S2_r = sum x^2 (float64), summed over the ranks in one all-reduce; mean = S1 / M and the biased
var = S2 / M - mean^2 (in float64, where the cancellation costs nothing at these sizes); then
``y = (x - mean) / sqrt(var + eps) * weight + bias`` by the evaluation kernel, and the running
statistics move with the unbiased var * M / (M - 1), M the global count.

Backward, training: each rank treats its own loss as the objective, and DistributedDataParallel
averages parameter gradients over the ranks. With xhat = (x - mean) * inv_std, the sums
B = sum dy and A = sum dy * xhat are all-reduced (one call) and
``dx = weight * inv_std * (dy - B / M - xhat * A / M)``: the BatchNorm backward of the global
batch restricted to this rank's rows. dweight and dbias are the *local* sums: averaged by DDP
they become the global batch's gradients divided by the world size, as every other parameter's.

Outside a distributed run (or on one rank) it is exactly BatchNorm's math. Layout (N, C),
(N, C, L) or (N, C, H, W), statistics per channel C.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import ops
from fastnn._backend import Array, is_cupy_array
from fastnn.distributed import group
from fastnn.nn.module import Module, forward_cache_missing
from fastnn.nn.norm import _BatchNorm


def _array_module(x: Array) -> Any:
    if is_cupy_array(x):
        import cupy

        return cupy
    return np


def _sum_over_ranks(values: np.ndarray) -> np.ndarray:
    """``values`` (float64, on the host) summed over the ranks; itself outside a distributed run."""
    if not group.is_initialized() or group.world_size() == 1:
        return values
    from mpi4py import MPI

    summed = np.ascontiguousarray(values, dtype=np.float64).copy()
    group.communicator().Allreduce(MPI.IN_PLACE, summed, op=MPI.SUM)
    return summed


def _host(x: Array) -> np.ndarray:
    return x.get() if is_cupy_array(x) else np.asarray(x)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over the global batch of a distributed run (PyTorch's SyncBatchNorm):
    for small per-rank batches, where each rank's own statistics would be noisy. Same parameters,
    buffers and state-dict names as BatchNorm1d / BatchNorm2d; evaluation mode uses the running
    statistics like them. Every rank must call forward and backward the same number of times (they
    are collectives). :meth:`convert_sync_batchnorm` swaps it in for a model's BatchNorms."""

    _expected_input = "2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W)"

    def _rank_ok(self, ndim: int) -> bool:
        return ndim in (2, 3, 4)

    def _check_input(self, x: Array) -> None:
        # The one-value-per-channel rule applies to the global batch: checked after the reduction.
        training, self.training = self.training, False
        try:
            super()._check_input(x)
        finally:
            self.training = training

    def forward(self, x: Array) -> Array:
        """Normalises ``x`` by the statistics of the global batch (training) or the running
        statistics (evaluation)."""
        if not self.training:
            return super().forward(x)
        self._check_input(x)
        xp = _array_module(x)
        axes = (0,) + tuple(range(2, x.ndim))
        local = xp.concatenate([xp.asarray([x.size // x.shape[1]], dtype=np.float64),
                                x.sum(axis=axes, dtype=np.float64),
                                (x.astype(np.float64) ** 2).sum(axis=axes)])
        total = _sum_over_ranks(_host(local))
        count, c = total[0], self.num_features
        if count <= 1:
            raise ValueError(f"{self._layer_name()}: expected more than 1 value per channel when training; got "
                             f"{int(count)} over all ranks (input shape {tuple(x.shape)} here)")
        mean = total[1:c + 1] / count
        var = np.maximum(total[c + 1:] / count - mean * mean, 0.0)
        mean_x, var_x = xp.asarray(mean.astype(x.dtype)), xp.asarray(var.astype(x.dtype))
        y = ops.batch_norm_eval(x, self.weight.data, self.bias.data, mean_x, var_x, eps=self.eps)
        m = self.momentum
        self.running_mean[...] = xp.asarray(((1 - m) * _host(self.running_mean) + m * mean).astype(np.float32))
        self.running_var[...] = xp.asarray(
            ((1 - m) * _host(self.running_var) + m * var * count / (count - 1)).astype(np.float32))
        self.num_batches_tracked[...] += 1
        self._x, self._trained, self._count = x, True, count
        self._mean = mean_x
        self._inv_std = xp.asarray((1.0 / np.sqrt(var + self.eps)).astype(x.dtype))
        return y

    def backward(self, grad_out: Array) -> Array:
        """dL/dx of this rank's rows for the global batch; adds this rank's dL/dweight and
        dL/dbias into the ``.grad`` arrays (see the module docstring)."""
        if self._x is None:
            raise forward_cache_missing(self)
        if not self._trained:
            return super().backward(grad_out)
        x = self._x
        # The evaluation-mode backward gives the local sums dweight = sum dy * xhat, dbias = sum dy.
        _, dweight, dbias = ops.batch_norm_backward(grad_out, x, self.weight.data, self._mean, self._inv_std,
                                                    training=False, input_grad=False)
        c = self.num_features
        sums = _sum_over_ranks(np.concatenate([_host(dbias).astype(np.float64), _host(dweight).astype(np.float64)]))
        xp = _array_module(x)
        inv_std = _host(self._inv_std).astype(np.float64)
        scale = _host(self.weight.data).astype(np.float64) * inv_std
        mean_dy, mean_dy_xhat = sums[:c] / self._count, sums[c:] / self._count
        # dx = scale * (dy - mean_dy - (x - mean) * inv_std * mean_dy_xhat) = a * dy + b * x + d, per channel
        shape = (1, c) + (1,) * (x.ndim - 2)
        a = scale
        b = -scale * inv_std * mean_dy_xhat
        d = -scale * mean_dy - b * _host(self._mean).astype(np.float64)
        as_x = lambda v: xp.asarray(v.astype(x.dtype).reshape(shape))  # noqa: E731
        dx = grad_out * as_x(a) + x * as_x(b) + as_x(d)
        self.weight.accumulate_grad(dweight)
        self.bias.accumulate_grad(dbias)
        return dx

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replaces every BatchNorm1d / BatchNorm2d in ``module`` (and ``module`` itself, if it
        is one) with a SyncBatchNorm holding the same parameters and buffers (the same objects,
        so an optimizer built before still trains them). Returns the module (the new one when
        ``module`` itself was converted)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, eps=module.eps, momentum=module.momentum)
            sync.weight, sync.bias = module.weight, module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                sync.register_buffer(name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module._modules.items()):
            converted = cls.convert_sync_batchnorm(child)
            if converted is not child:
                setattr(module, name, converted)
        return module
