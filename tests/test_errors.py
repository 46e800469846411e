"""Bad input: every public op rejects each class of bad input with the right exception and a
message naming the op and the argument — never a crash, never a silent wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import nn, ops

f32 = np.float32


def a(*shape, dtype=f32):
    return np.ones(shape, dtype=dtype)


def readonly(*shape):
    x = a(*shape)
    x.flags.writeable = False
    return x


def misaligned(n: int) -> np.ndarray:
    buf = np.zeros(n * 4 + 1, dtype=np.uint8)
    return buf[1:].view(f32)  # float32 data at an odd address


# (callable, expected exception, message fragment)
CASES = {
    # wrong dtype
    "matmul int": (lambda: ops.matmul(a(2, 2, dtype=np.int32), a(2, 2)), TypeError, "fastnn.matmul: argument 'a' must be float32 or float64; got int32"),
    "matmul mixed": (lambda: ops.matmul(a(2, 2), a(2, 2, dtype=np.float64)), TypeError, "argument 'b' must have the dtype of 'a'"),
    "matmul float16": (lambda: ops.matmul(a(2, 2, dtype=np.float16), a(2, 2)), TypeError, "got float16"),
    "matmul byteswapped": (lambda: ops.matmul(a(2, 2).astype(">f4"), a(2, 2)), TypeError, "argument 'a'"),
    "matmul list": (lambda: ops.matmul([[1.0]], a(1, 1)), TypeError, "must be a numpy.ndarray; got list"),
    "relu int": (lambda: ops.relu(np.arange(3)), TypeError, "fastnn.relu: argument 'x'"),
    "linear bool": (lambda: ops.linear(a(2, 2, dtype=bool), a(2, 2)), TypeError, "fastnn.linear: argument 'x'"),
    "xent float labels": (lambda: ops.softmax_cross_entropy(a(2, 3), np.zeros(2)), TypeError, "argument 'labels' must be int64 or int32"),
    "sgd int param": (lambda: ops.sgd_step(np.zeros(3, np.int64), a(3), None, lr=0.1), TypeError, "fastnn.sgd_step: argument 'param'"),
    # wrong rank / shape
    "matmul 1d": (lambda: ops.matmul(a(3), a(3, 1)), ValueError, "fastnn.matmul: argument 'a' must be 2-D; got shape (3,)"),
    "matmul inner": (lambda: ops.matmul(a(2, 3), a(4, 2)), ValueError, "inner dimensions differ"),
    "matmul out shape": (lambda: ops.matmul(a(2, 3), a(3, 2), out=a(3, 2)), ValueError, "argument 'out' must have shape (2, 2)"),
    "linear weight cols": (lambda: ops.linear(a(2, 3), a(4, 5)), ValueError, "argument 'weight' must have 3 columns"),
    "linear x 3d": (lambda: ops.linear(a(2, 3, 1), a(4, 3)), ValueError, "argument 'x' must be 2-D"),
    "linear bias": (lambda: ops.linear(a(2, 3), a(4, 3), a(5)), ValueError, "argument 'bias' must have shape (4,)"),
    "linear grad_out": (lambda: ops.linear_backward(a(2, 3), a(4, 3), a(2, 5)), ValueError, "argument 'grad_out' must have shape (2, 4)"),
    "linear grad_weight": (lambda: ops.linear_backward(a(2, 3), a(4, 3), a(2, 4), grad_weight=a(3, 4)), ValueError, "argument 'grad_weight' must have shape (4, 3)"),
    "act backward shape": (lambda: ops.relu_backward(a(2, 3), a(3, 2)), ValueError, "fastnn.relu_backward: argument 'grad_out' must have shape (2, 3)"),
    "softmax 1d": (lambda: ops.softmax(a(4)), ValueError, "fastnn.softmax: argument 'x' must be 2-D"),
    "softmax zero classes": (lambda: ops.softmax(a(2, 0)), ValueError, "at least one class"),
    "xent label count": (lambda: ops.softmax_cross_entropy(a(2, 3), np.zeros(3, np.int64)), ValueError, "argument 'labels' must have shape (2,)"),
    "xent empty batch": (lambda: ops.softmax_cross_entropy(a(0, 3), np.zeros(0, np.int64)), ValueError, "at least one row"),
    "bce targets shape": (lambda: ops.bce_with_logits(a(2, 3), a(3, 2)), ValueError, "argument 'targets' must have shape (2, 3)"),
    "bce pos_weight": (lambda: ops.bce_with_logits(a(2, 3), a(2, 3), a(2)), ValueError, "argument 'pos_weight' must have shape (3,)"),
    "bce empty": (lambda: ops.bce_with_logits(a(0), a(0)), ValueError, "at least one element"),
    "sgd grad shape": (lambda: ops.sgd_step(a(3), a(4), None, lr=0.1), ValueError, "argument 'grad' must have shape (3,)"),
    "sgd missing buffer": (lambda: ops.sgd_step(a(3), a(3), None, lr=0.1, momentum=0.9), ValueError, "'momentum_buffer' is required"),
    "adam step 0": (lambda: ops.adam_step(a(3), a(3), a(3), a(3), step=0, lr=0.1), ValueError, "argument 'step' must be >= 1"),
    # labels out of range
    "xent label high": (lambda: ops.softmax_cross_entropy(a(2, 3), np.array([0, 3])), ValueError, "must lie in [0, 3) for 3 classes; got labels[1] = 3"),
    "xent label negative": (lambda: ops.softmax_cross_entropy(a(2, 3), np.array([-1, 0], np.int32)), ValueError, "got labels[0] = -1"),
    "xent smoothing": (lambda: ops.softmax_cross_entropy(a(2, 3), np.array([0, 1]), 1.5), ValueError, "label_smoothing' must lie in [0, 1]"),
    # non-contiguous / misaligned / read-only / aliasing
    "matmul transposed view": (lambda: ops.matmul(a(3, 2).T, a(3, 2)), ValueError, "argument 'a' must be C-contiguous"),
    "relu strided": (lambda: ops.relu(a(10)[::2]), ValueError, "fastnn.relu: argument 'x' must be C-contiguous"),
    "relu negative stride": (lambda: ops.relu(a(10)[::-1]), ValueError, "C-contiguous"),
    "relu misaligned": (lambda: ops.relu(misaligned(8)), ValueError, "must be aligned"),
    "matmul read-only out": (lambda: ops.matmul(a(2, 2), a(2, 2), out=readonly(2, 2)), ValueError, "argument 'out' is updated in place and must be writeable"),
    "matmul aliasing out": (lambda: (lambda m: ops.matmul(m, a(2, 2), out=m))(a(2, 2)), ValueError, "must not share memory"),
    "matmul beta without out": (lambda: ops.matmul(a(2, 2), a(2, 2), beta=1.0), ValueError, "'out' is required when beta != 0"),
    "sgd read-only param": (lambda: ops.sgd_step(readonly(3), a(3), None, lr=0.1), ValueError, "must be writeable"),
    "adam aliased state": (lambda: (lambda s: ops.adam_step(a(3), a(3), s, s, step=1, lr=0.1))(a(3)), ValueError, "must not share memory"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_rejected(case):
    fn, exc, fragment = CASES[case]
    with pytest.raises(exc) as info:
        fn()
    assert fragment in str(info.value), str(info.value)


LAYER_CASES = {
    "Linear zero features": (lambda: nn.Linear(0, 3), ValueError, "fastnn.nn.Linear: argument 'in_features' must be a positive int; got 0"),
    "Linear float features": (lambda: nn.Linear(2.5, 3), ValueError, "in_features"),
    "Linear 3d input": (lambda: nn.Linear(3, 2)(a(2, 3, 1)), ValueError, "fastnn.nn.Linear: input must be 2-D"),
    "Linear wrong features": (lambda: nn.Linear(3, 2)(a(2, 4)), ValueError, "input must have in_features=3 columns"),
    "Linear float64 weight vs float32 x": (lambda: (lambda m: (setattr(m.weight, "data", m.weight.data.astype(np.float64)), m(a(2, 3))))(nn.Linear(3, 2)), TypeError, "dtype"),
    "Flatten start_dim": (lambda: nn.Flatten(0), ValueError, "start_dim"),
    "Sequential non-module": (lambda: nn.Sequential(nn.ReLU(), 3), TypeError, "argument 1 must be a Module"),
    "Xent smoothing": (lambda: nn.SoftmaxCrossEntropy(label_smoothing=-0.1), ValueError, "label_smoothing"),
    "Xent labels": (lambda: nn.SoftmaxCrossEntropy()(a(2, 3), np.array([5, 0])), ValueError, "got labels[0] = 5"),
    "Parameter non-array": (lambda: nn.Parameter([1, 2]), TypeError, "must be an array"),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_bad_layer_input_is_rejected(case):
    fn, exc, fragment = LAYER_CASES[case]
    with pytest.raises(exc) as info:
        fn()
    assert fragment in str(info.value), str(info.value)


def test_huge_sizes_raise_before_allocating():
    # A (2^40, 2^40) product would need 2^80 elements: ValueError, not a crash or MemoryError.
    big = np.lib.stride_tricks.as_strided(np.zeros(1, f32), shape=(1 << 40, 1), strides=(0, 0))
    with pytest.raises(ValueError):
        ops.matmul(big, np.lib.stride_tricks.as_strided(np.zeros(1, f32), shape=(1, 1 << 40), strides=(0, 0)))


def test_nan_free_logits_never_give_nan(rng=np.random.default_rng(0)):
    for scale in (1e-30, 1.0, 1e4, 1e30, 3e38):
        x = np.clip(rng.standard_normal((16, 10)) * scale, -3.4e38, 3.4e38).astype(f32)  # finite
        loss, grad = ops.softmax_cross_entropy(x, rng.integers(0, 10, 16), 0.1)
        assert not np.isnan(loss) and not np.isnan(grad).any()
        loss, grad = ops.bce_with_logits(x, (x > 0).astype(f32))
        assert not np.isnan(loss) and not np.isnan(grad).any()
