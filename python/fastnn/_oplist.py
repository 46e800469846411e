"""The public ops, listed once.

``fastnn.ops.__all__`` and ``fastnn.reference.__all__`` are made from these tuples, and
tests/test_stubs.py checks both packages against them: every name listed exists, and no public
function of either package is left out. Adding an op means adding its name here, its kernel
wrapper in ``fastnn/ops/<family>.py`` and its NumPy spec in ``fastnn/reference/<family>.py``.
(The backend extensions' own function lists are their stubs, ``_cpu.pyi`` and ``_cuda.pyi``,
written from the built modules by scripts/gen_stubs.py.)
"""

from __future__ import annotations

# Ops in both fastnn.ops and fastnn.reference, by family (the file each lives in).
OP_FAMILIES: dict[str, tuple[str, ...]] = {
    "activation": (
        "add_relu",
        "gelu",
        "gelu_backward",
        "leaky_relu",
        "leaky_relu_backward",
        "relu",
        "relu_backward",
        "sigmoid",
        "sigmoid_backward",
        "tanh",
        "tanh_backward",
    ),
    "batchnorm": ("batch_norm_backward", "batch_norm_eval", "batch_norm_train"),
    "bce_logits": ("bce_with_logits",),
    "conv2d": ("conv2d", "conv2d_backward"),
    "dropout": ("dropout", "dropout_backward"),
    "gemm": ("matmul",),
    "linear": ("linear", "linear_backward"),
    "optim": ("adam_step", "adamw_step", "sgd_step"),
    "pool2d": (
        "avg_pool2d",
        "avg_pool2d_backward",
        "global_avg_pool2d",
        "global_avg_pool2d_backward",
        "max_pool2d",
        "max_pool2d_backward",
    ),
    "softmax_xent": (
        "log_softmax",
        "log_softmax_backward",
        "softmax",
        "softmax_backward",
        "softmax_cross_entropy",
    ),
    "l2_normalize": ("l2_normalize", "l2_normalize_backward"),
    "arcface": ("arcface_loss",),
    "triplet": ("triplet_margin_loss",),
    "similarity": ("pairwise_similarity", "pairwise_similarity_backward", "similarity_topk", "topk"),
}

# Ops with no reference function of their own: the multi-tensor optimiser steps, whose spec is
# the single-tensor step (reference.sgd_step, ...) applied to each tensor of the list.
OPS_WITHOUT_REFERENCE: dict[str, tuple[str, ...]] = {
    "optim": ("adam_step_multi", "adamw_step_multi", "sgd_step_multi"),
}

REFERENCE_OPS: tuple[str, ...] = tuple(sorted(name for names in OP_FAMILIES.values() for name in names))
OPS: tuple[str, ...] = tuple(sorted(REFERENCE_OPS + sum(OPS_WITHOUT_REFERENCE.values(), ())))
