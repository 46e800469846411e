"""The CUDA extension's contract, checked without a GPU wherever fastnn._cuda is built (CI builds
it whenever nvcc is present).

1. fastnn._cuda and fastnn._cpu expose the same functions with the same names, parameters,
   defaults and docstrings (pybind11 writes the signature into each docstring), except the
   documented backend-only entry points (fastnn._backend.CPU_ONLY / CUDA_ONLY).
2. Every fastnn.ops function, called on stand-in GPU arrays, reaches the real fastnn._cuda
   binding with arguments it accepts: an arity or keyword mismatch between ops and the binding
   (fastnn._cuda.matmul once took 7 of the 10 arguments ops.matmul passes) raises pybind11's
   TypeError, while a call that gets through stops at the binding's first device-memory check
   (ValueError: no GPU here) or at the kernel launch (RuntimeError).
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from fastnn import _backend, _cpu, cuda, ops

try:
    from fastnn import _cuda
except ImportError as exc:  # a CPU-only build
    _cuda = None
    _why = f"fastnn._cuda is not built here ({exc})"

pytestmark = pytest.mark.skipif(_cuda is None, reason=_cuda is None and _why or "")


def _functions(module: types.ModuleType) -> dict[str, str]:
    return {name: getattr(module, name).__doc__ for name in dir(module)
            if not name.startswith("__") and callable(getattr(module, name))
            and type(getattr(module, name)).__name__ == "builtin_function_or_method"}


def test_backend_only_entry_points_are_the_documented_ones():
    cpu, gpu = _functions(_cpu), _functions(_cuda)
    assert set(cpu) - set(gpu) == _backend.CPU_ONLY
    assert set(gpu) - set(cpu) == _backend.CUDA_ONLY


@pytest.mark.parametrize("name", sorted(set(_functions(_cpu)) & set(_functions(_cuda))) if _cuda else [])
def test_shared_function_has_the_same_signature_and_docstring(name):
    # The first docstring line is pybind11's signature: names, annotations and defaults.
    assert getattr(_cuda, name).__doc__ == getattr(_cpu, name).__doc__


class StandIn:
    """Looks like a CuPy array to fastnn's dispatch: the module name and __cuda_array_interface__,
    with a null pointer that no GPU owns."""

    __module__ = "cupy._core.core"

    def __init__(self, *shape: int, dtype: str = "float32"):
        self.shape, self.ndim, self.dtype = shape, len(shape), np.dtype(dtype)
        self.size = int(np.prod(shape))
        self.__cuda_array_interface__ = {"shape": shape, "typestr": self.dtype.str, "data": (0, False),
                                         "version": 3, "strides": None}


def a(*shape, dtype="float32"):
    return StandIn(*shape, dtype=dtype)


# One call per public op, with arguments of the right shapes.
CALLS = {
    "matmul": lambda: ops.matmul(a(4, 3), a(3, 5), trans_a=False, beta=0.0, bias_per_col=a(5), relu=True),
    "linear": lambda: ops.linear(a(4, 3), a(5, 3), a(5), relu=True),
    "linear_backward": lambda: ops.linear_backward(a(4, 3), a(5, 3), a(4, 5), grad_weight=a(5, 3), grad_bias=a(5)),
    "conv2d": lambda: ops.conv2d(a(2, 3, 8, 8), a(4, 3, 3, 3), a(4), padding=1, relu=True),
    "conv2d_backward": lambda: ops.conv2d_backward(a(2, 3, 8, 8), a(4, 3, 3, 3), a(2, 4, 8, 8), padding=1),
    "max_pool2d": lambda: ops.max_pool2d(a(2, 3, 8, 8), 2),
    "max_pool2d_backward": lambda: ops.max_pool2d_backward(a(2, 3, 4, 4), a(2, 3, 4, 4, dtype="int64"),
                                                           (2, 3, 8, 8), 2),
    "avg_pool2d": lambda: ops.avg_pool2d(a(2, 3, 8, 8), 2),
    "avg_pool2d_backward": lambda: ops.avg_pool2d_backward(a(2, 3, 4, 4), (2, 3, 8, 8), 2),
    "global_avg_pool2d": lambda: ops.global_avg_pool2d(a(2, 3, 8, 8)),
    "global_avg_pool2d_backward": lambda: ops.global_avg_pool2d_backward(a(2, 3), (2, 3, 8, 8)),
    "batch_norm_train": lambda: ops.batch_norm_train(a(4, 3, 2, 2), a(3), a(3), a(3), a(3), momentum=0.1, relu=True),
    "batch_norm_eval": lambda: ops.batch_norm_eval(a(4, 3, 2, 2), a(3), a(3), a(3), a(3), relu=True),
    "batch_norm_backward": lambda: ops.batch_norm_backward(a(4, 3, 2, 2), a(4, 3, 2, 2), a(3), a(3), a(3),
                                                           grad_weight=a(3), grad_bias=a(3), bias=a(3), relu=True),
    "dropout": lambda: ops.dropout(a(4, 5), 0.5, 7),
    "dropout_backward": lambda: ops.dropout_backward(a(4, 5), a(4, 5, dtype="uint8"), 0.5),
    "softmax": lambda: ops.softmax(a(4, 5)),
    "log_softmax": lambda: ops.log_softmax(a(4, 5)),
    "softmax_backward": lambda: ops.softmax_backward(a(4, 5), a(4, 5)),
    "log_softmax_backward": lambda: ops.log_softmax_backward(a(4, 5), a(4, 5)),
    "softmax_cross_entropy": lambda: ops.softmax_cross_entropy(a(4, 5), a(4, dtype="int64"), 0.1),
    "bce_with_logits": lambda: ops.bce_with_logits(a(4, 5), a(4, 5), a(5)),
    "sgd_step": lambda: ops.sgd_step(a(5), a(5), a(5), lr=0.1, momentum=0.9, nesterov=True),
    "sgd_step_multi": lambda: ops.sgd_step_multi([a(5), a(2)], [a(5), a(2)], [a(5), a(2)], lr=0.1, momentum=0.9),
    "adam_step": lambda: ops.adam_step(a(5), a(5), a(5), a(5), step=1, lr=1e-3),
    "adamw_step": lambda: ops.adamw_step(a(5), a(5), a(5), a(5), step=1, lr=1e-3),
    "adam_step_multi": lambda: ops.adam_step_multi([a(5)], [a(5)], [a(5)], [a(5)], step=1, lr=1e-3),
    "adamw_step_multi": lambda: ops.adamw_step_multi([a(5)], [a(5)], [a(5)], [a(5)], step=1, lr=1e-3),
}
for _name in ("relu", "gelu", "sigmoid", "tanh"):
    CALLS[_name] = (lambda f: lambda: f(a(4, 5)))(getattr(ops, _name))
    CALLS[_name + "_backward"] = (lambda f: lambda: f(a(4, 5), a(4, 5)))(getattr(ops, _name + "_backward"))
CALLS["leaky_relu"] = lambda: ops.leaky_relu(a(4, 5), 0.2)
CALLS["add_relu"] = lambda: ops.add_relu(a(4, 5), a(4, 5), out=a(4, 5))
CALLS["leaky_relu_backward"] = lambda: ops.leaky_relu_backward(a(4, 5), a(4, 5), 0.2)
CALLS["l2_normalize"] = lambda: ops.l2_normalize(a(4, 5), 1e-6)
CALLS["l2_normalize_backward"] = lambda: ops.l2_normalize_backward(a(4, 5), a(4, 5), 1e-6)
CALLS["arcface_loss"] = lambda: ops.arcface_loss(a(4, 5), a(3, 5), a(4, dtype="int64"), 30.0, 0.3, 1e-6,
                                                 weight_grad=a(3, 5))
CALLS["triplet_margin_loss"] = lambda: ops.triplet_margin_loss(a(6, 4), a(6, dtype="int64"), 0.5, "all")
CALLS["pairwise_similarity"] = lambda: ops.pairwise_similarity(a(4, 3), a(5, 3), "sqeuclidean")
CALLS["pairwise_similarity_backward"] = lambda: ops.pairwise_similarity_backward(a(4, 5), a(4, 3), a(5, 3), "cosine")
CALLS["topk"] = lambda: ops.topk(a(4, 5), 2, largest=False)
CALLS["similarity_topk"] = lambda: ops.similarity_topk(a(4, 3), a(5, 3), 2, "dot", largest=True)


def test_every_op_has_a_stand_in_call():
    assert set(CALLS) == set(ops.__all__)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_op_reaches_the_cuda_binding_with_arguments_it_accepts(name, monkeypatch):
    monkeypatch.setattr(cuda, "_ready", _cuda)  # dispatch to the real extension, GPU or not
    try:
        CALLS[name]()
    except TypeError as exc:  # pybind11: "incompatible function arguments"; ops: a Python-side mismatch
        pytest.fail(f"ops.{name} does not fit fastnn._cuda's binding: {exc}")
    except ValueError as exc:
        # The binding ran: its first array check found no GPU memory behind the stand-in's null
        # pointer (with or without a driver). Anything else would name a real argument problem.
        assert "must be in GPU memory" in str(exc), str(exc)
