"""The readable spec: every op of :mod:`fastnn.ops`, forward and backward, in plain NumPy.

Functions here take any float arrays, compute in float64 and return new float64 arrays (the
optimiser updates return the new parameter and state instead of updating in place). The tests
check these against finite differences, then check every kernel against these.
"""

from fastnn import _oplist
from fastnn.reference.activation import (
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
from fastnn.reference.batchnorm import batch_norm_backward, batch_norm_eval, batch_norm_train
from fastnn.reference.bce_logits import bce_with_logits
from fastnn.reference.conv2d import conv2d, conv2d_backward
from fastnn.reference.dropout import dropout, dropout_backward
from fastnn.reference.gemm import matmul
from fastnn.reference.linear import linear, linear_backward
from fastnn.reference.optim import adam_step, adamw_step, sgd_step
from fastnn.reference.pool2d import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from fastnn.reference.softmax_xent import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
    softmax_cross_entropy,
)
from fastnn.reference.l2_normalize import l2_normalize, l2_normalize_backward
from fastnn.reference.arcface import arcface_loss
from fastnn.reference.triplet import triplet_margin_loss
from fastnn.reference.similarity import pairwise_similarity, pairwise_similarity_backward, similarity_topk, topk

# The exports are the one op list's (tests/test_stubs.py checks the imports above against it).
__all__ = list(_oplist.REFERENCE_OPS)
