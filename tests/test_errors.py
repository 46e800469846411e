"""Bad input to the layers: each class of bad input gets the right exception and a message naming
the layer and the argument — never a crash, never a silent wrong answer. (The ops' own bad-input
classes are each op's error inputs in tests/opinfo.py, run on every backend by test_ops.py.)
Also sizes past int64 and logits that must never give NaN."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import nn, ops

f32 = np.float32


def a(*shape, dtype=f32):
    return np.ones(shape, dtype=dtype)


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
