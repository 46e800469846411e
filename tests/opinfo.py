"""The op registry: one OpInfo per op of :mod:`fastnn.ops` (PyTorch's ``op_db`` is the model),
run by tests/test_ops.py on every backend and float dtype.

An entry gives
  * ``op`` and, where there is one, ``backward`` (both from fastnn.ops), and their float64
    specs ``ref`` / ``backward_ref`` (from fastnn.reference);
  * ``sample_inputs(rng, dtype)``: NumPy inputs with odd sizes (1, 3, 7, 17, ...), tails past
    every blocking factor and the special layouts of the op (groups, padding, transposes, ...);
  * ``error_inputs(dtype)``: one bad call per class of bad input (wrong dtype -> TypeError; wrong
    ndim / shape, non-contiguous, misaligned, read-only, aliasing -> ValueError; values out of
    range such as labels or targets -> ValueError), each with its exception type and the message
    fragments it must contain. A call is built from the array library it receives (numpy or
    cupy), so the same bad input reaches both backends; inputs that only exist on the host
    (misaligned buffers, read-only flags, byte-swapped dtypes) are marked CPU-only;
  * tolerances, forward and gradient separately (:class:`Tol`, each with its reason);
  * ``backends``: where it runs (every op has a CPU and a CUDA kernel).

The entries (every function of fastnn.ops is the op or the backward of exactly one, except
batch_norm_backward, the backward of both batch-norm entries):
  relu, leaky_relu, sigmoid, tanh, gelu, softmax, log_softmax (each with its _backward);
  softmax_cross_entropy and bce_with_logits (the gradient comes with the loss); dropout (+
  dropout_backward); matmul; linear (+ linear_backward); conv2d (+ conv2d_backward); max_pool2d,
  avg_pool2d, global_avg_pool2d (each with its _backward); batch_norm_train, batch_norm_eval (+
  batch_norm_backward in training / evaluation mode); sgd_step, adam_step, adamw_step and their
  multi-tensor forms sgd_step_multi, adam_step_multi, adamw_step_multi; l2_normalize (+
  l2_normalize_backward) and arcface_loss (both gradients come with the loss); triplet_margin_loss;
  pairwise_similarity (+ pairwise_similarity_backward), topk and similarity_topk.

They are written per family, in tests/opinfo_pointwise.py (activations, softmax family,
losses, dropout), opinfo_linalg.py (matmul, linear, conv2d), opinfo_pool_norm.py (pooling, batch
norm), opinfo_optim.py (optimiser steps), opinfo_arcface.py (l2_normalize, arcface_loss),
opinfo_triplet.py (triplet_margin_loss) and opinfo_similarity.py (similarity, top-k); the parts
of an entry are in tests/opinfo_base.py.

Adapters (``call_op`` / ``call_ref``, ``backward_inputs``) turn the ops' different calling
conventions into one: named outputs in a dict. A backward pass is always fed the *kernel's own*
forward outputs (sigmoid's y, softmax's y, max-pool indices, batch-norm statistics) and the
reference backward is evaluated at the same values, so each pass is checked on its own rather
than through the forward's rounding.

Errors are relative Frobenius norms, ||out - ref|| / ||ref|| (tests/conftest.py rel_error).
float32 elementwise ops are within a few ulps: FLOAT32_RTOL (1e-5). A sum of K float32 terms
has a rounding error that grows like sqrt(K) * 2^-24 (random-sign terms add like a random walk),
about 4e-6 for the K <= 5,000 here; those outputs get FLOAT32_RTOL_REDUCTION (1e-4), which
leaves margin for a GPU's different summation order and still fails on any indexing, padding or
blocking bug (errors of order 1). float64 kernels: FLOAT64_RTOL (1e-12) everywhere.
"""

from __future__ import annotations

import opinfo_add_relu
import opinfo_arcface
import opinfo_linalg
import opinfo_optim
import opinfo_pointwise
import opinfo_pool_norm
import opinfo_similarity
import opinfo_triplet
from opinfo_base import (  # noqa: F401  (the registry's parts, for its users)
    BACKENDS,
    DTYPES,
    ErrorInput,
    OpInfo,
    Sample,
    Tol,
    copy_sample,
    iter_samples,
    map_sample,
    randn,
    tree_map,
)
from opinfo_linalg import CONV2D_CONFIGS, CONV2D_THREADED_CONFIGS, conv2d_case  # noqa: F401
from opinfo_pointwise import USES_OUTPUT  # noqa: F401
from opinfo_pool_norm import POOL2D_CONFIGS, batch_norm_dx_scale, batch_norm_params  # noqa: F401

OP_DB: list[OpInfo] = [*opinfo_pointwise.op_db, *opinfo_linalg.op_db, *opinfo_pool_norm.op_db, *opinfo_optim.op_db,
                       *opinfo_arcface.op_db, *opinfo_triplet.op_db, *opinfo_similarity.op_db]
OP_DB += opinfo_add_relu.op_db
OPS = {entry.name: entry for entry in OP_DB}
