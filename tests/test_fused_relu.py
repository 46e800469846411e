"""ReLU fused into Linear / Conv2d: ops.linear(..., relu=True), ops.conv2d(..., relu=True) and
nn.Sequential running a Linear or Conv2d followed by a ReLU as one op.

The fused epilogue computes max(y, 0) on the same float y the unfused op writes, and a ReLU's
backward reads only where its input is positive (y > 0 exactly where x > 0), so fused and
unfused results must be bitwise equal: these tests compare with assert_array_equal.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastnn
from fastnn import models, nn, ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, features_in, features_out", [(1, 1, 1), (7, 33, 17), (65, 3, 130)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_relu_is_relu_of_linear(rng, dtype, batch, features_in, features_out, with_bias):
    x = rng.standard_normal((batch, features_in)).astype(dtype)
    w = rng.standard_normal((features_out, features_in)).astype(dtype)
    b = rng.standard_normal(features_out).astype(dtype) if with_bias else None
    fused = ops.linear(x, w, b, relu=True)
    assert fused.dtype == dtype and (fused >= 0).all()
    np.testing.assert_array_equal(fused, ops.relu(ops.linear(x, w, b)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs",
    [
        ((2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
        ((1, 4, 7, 11), (6, 2, 3, 2), dict(stride=(2, 1), groups=2)),
        ((3, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),
        ((2, 5, 6, 6), (3, 5, 1, 1), {}),
    ],
)
def test_conv2d_relu_is_relu_of_conv2d(rng, dtype, x_shape, w_shape, kwargs):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    fused = ops.conv2d(x, w, b, relu=True, **kwargs)
    np.testing.assert_array_equal(fused, ops.relu(ops.conv2d(x, w, b, **kwargs)))


def test_fused_relu_keeps_nan():
    # The GEMM epilogue's rule (max(y, 0), NaN stays NaN): a diverged layer shows as NaN.
    x = np.array([[np.nan, 1.0], [-1.0, 2.0]], np.float32)
    y = ops.linear(x, np.eye(2, dtype=np.float32), relu=True)
    assert np.isnan(y[0]).all()
    np.testing.assert_array_equal(y[1], [0.0, 2.0])
    # ... and the standalone ReLU the same (PyTorch's rule): fused and unfused agree on NaN too.
    np.testing.assert_array_equal(ops.relu(ops.linear(x, np.eye(2, dtype=np.float32))), y)


def _step(model: nn.Module, x: np.ndarray, train: bool = True):
    """Output, input gradient and every parameter gradient of one forward/backward."""
    model.train(train)
    model.zero_grad(set_to_none=True)
    fastnn.manual_seed(1)  # the same dropout mask for both models
    y = model(x)
    dx = model.backward(np.cos(np.arange(y.size, dtype=y.dtype)).reshape(y.shape))
    return y, dx, {name: p.grad.copy() for name, p in model.named_parameters()}


def _unfused(model: nn.Sequential) -> nn.Sequential:
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, nn.Sequential):
            m.fuse_relu = False
    return twin


@pytest.mark.parametrize(
    "build, input_shape",
    [
        (lambda: models.mlp(1, 10, 8, hidden=(33, 17)), (5, 1, 8, 8)),
        (lambda: models.lenet5(1, 10, 28), (3, 1, 28, 28)),
        (lambda: models.simple_cnn(1, 10, 8, width=4, hidden=16, dropout=0.25), (4, 1, 8, 8)),
    ],
)
@pytest.mark.parametrize("train", [True, False])
def test_sequential_fusion_changes_no_result(rng, monkeypatch, build, input_shape, train):
    fastnn.manual_seed(0)
    fused = build()
    unfused = _unfused(fused)
    assert fused.state_dict().keys() == unfused.state_dict().keys()
    x = rng.standard_normal(input_shape).astype(np.float32)
    relu_passes, relu_backward_elements = [], []
    relu, relu_backward = ops.relu, ops.relu_backward
    monkeypatch.setattr(ops, "relu", lambda v: relu_passes.append(v.shape) or relu(v))
    monkeypatch.setattr(
        ops, "relu_backward", lambda v, g: relu_backward_elements.append(v.size) or relu_backward(v, g)
    )
    has_pool = any(isinstance(m, nn.MaxPool2d) for m in fused.modules())
    for _ in range(2):  # the second pass accumulates into the first one's buffers
        y, dx, grads = _step(fused, x, train)
        assert relu_passes == []  # every ReLU of these models follows a Linear or Conv2d
        fused_elements = sum(relu_backward_elements)
        relu_backward_elements.clear()
        y_ref, dx_ref, grads_ref = _step(unfused, x, train)
        assert relu_passes
        # A ReLU before a MaxPool2d masks the pool's gradient, a quarter of its own.
        assert (fused_elements < sum(relu_backward_elements)) if has_pool else fused_elements > 0
        relu_passes.clear()
        relu_backward_elements.clear()
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(dx, dx_ref)
        assert grads.keys() == grads_ref.keys()
        for name in grads:
            np.testing.assert_array_equal(grads[name], grads_ref[name], err_msg=name)


def test_sequential_fuses_only_a_layer_followed_by_a_plain_relu(rng):
    calls = []

    class CountingReLU(nn.ReLU):
        def forward(self, x):
            calls.append("relu")
            return super().forward(x)

    linear = nn.Linear(4, 3)
    model = nn.Sequential(nn.ReLU(), linear, CountingReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = model(x)
    assert calls == ["relu"]  # a ReLU subclass runs its own forward
    # A forward replaced on the instance (e.g. a hook reading the pre-activation) disables fusion.
    seen = []
    original = model[3].forward
    model[3].forward = lambda v: seen.append(original(v)) or seen[-1]
    np.testing.assert_array_equal(model(x), y)
    assert len(seen) == 1 and (seen[0] < 0).any()  # the pre-activation, not its ReLU
    model.backward(np.ones_like(y))


def test_a_relu_with_a_replaced_backward_runs_it_before_a_pool(rng):
    relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), relu, pool)
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    y = model(x)
    unfused = _unfused(model)
    unfused(x)
    expected = unfused.backward(np.ones_like(y))
    seen = []
    original = relu.backward
    relu.backward = lambda g: seen.append(g.shape) or original(g)
    np.testing.assert_array_equal(model.backward(np.ones_like(y)), expected)
    assert seen == [(2, 2, 6, 6)]


def test_relu_used_alone_after_fusion_still_works(rng):
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(5, 4), relu)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    model(x)
    v = rng.standard_normal((2, 6)).astype(np.float32)
    np.testing.assert_array_equal(relu(v), np.maximum(v, 0))
    np.testing.assert_array_equal(relu.backward(np.ones_like(v)), (v > 0).astype(np.float32))
