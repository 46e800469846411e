"""Functional API: one function per kernel, arrays in, arrays out.

Every function takes C-contiguous float32 arrays (float64 is accepted too on the CPU, which
gradient checks use) and returns new arrays; parameter-gradient outputs passed in are
accumulated into (``+=``). NumPy arrays run on the CPU kernels, CuPy arrays on the CUDA kernels.
Non-contiguous or misaligned arrays are rejected with ValueError rather than copied behind your
back: pass ``numpy.ascontiguousarray(x)``. Each op's math is written in its docstring and,
executable, in :mod:`fastnn.reference`.
"""

from fastnn import _oplist
from fastnn.ops.activation import (
    add_relu,
    gelu,
    gelu_backward,
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    tanh,
    tanh_backward,
)
from fastnn.ops.batchnorm import batch_norm_backward, batch_norm_eval, batch_norm_train
from fastnn.ops.bce_logits import bce_with_logits
from fastnn.ops.conv2d import conv2d, conv2d_backward
from fastnn.ops.dropout import dropout, dropout_backward
from fastnn.ops.gemm import matmul
from fastnn.ops.linear import linear, linear_backward
from fastnn.ops.optim import (
    adam_step,
    adam_step_multi,
    adamw_step,
    adamw_step_multi,
    sgd_step,
    sgd_step_multi,
)
from fastnn.ops.pool2d import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from fastnn.ops.softmax_xent import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
    softmax_cross_entropy,
)
from fastnn.ops.l2_normalize import l2_normalize, l2_normalize_backward
from fastnn.ops.arcface import arcface_loss
from fastnn.ops.triplet import triplet_margin_loss
from fastnn.ops.similarity import pairwise_similarity, pairwise_similarity_backward, similarity_topk, topk

# The exports are the one op list's (tests/test_stubs.py checks the imports above against it).
__all__ = list(_oplist.OPS)
