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


# --- BatchNorm + ReLU and Residual + ReLU ------------------------------------------------------
# The fused forwards compute the unfused expressions (the batch norm's affine map, then max(., 0);
# the residual's one float add, then max(., 0)): outputs bit for bit. The backward of a fused
# BatchNorm + ReLU masks dy inside the batch norm's sums, which may add the same terms in another
# order than the unfused loop: gradients within FLOAT32_RTOL (sums in double, one float rounding
# each; dx and the gradients further up carry that through a few float32 layers).

FUSED_GRAD_RTOL = 1e-5


def _no_eval_plan(*models_):
    """Eval forwards module by module: the plan of nn/fuse.py (BatchNorm folded into the
    convolution, another rounding) is not what these tests compare."""
    for model in models_:
        for m in model.modules():
            if isinstance(m, nn.Sequential):
                m.fast_eval = False


def _assert_same_step(fused_step, unfused_step):
    (y, dx, grads), (y_ref, dx_ref, grads_ref) = fused_step, unfused_step
    np.testing.assert_array_equal(y, y_ref)
    assert grads.keys() == grads_ref.keys()
    for name, value in [("dx", (dx, dx_ref))] + [(n, (grads[n], grads_ref[n])) for n in grads]:
        got, want = value
        err = np.linalg.norm(np.asarray(got, np.float64) - want) / max(np.linalg.norm(want), 1e-30)
        assert err <= FUSED_GRAD_RTOL, f"{name}: relative error {err:.3g}"


@pytest.mark.parametrize("train", [True, False])
def test_resnet_fusion_changes_no_result(rng, monkeypatch, train):
    fastnn.manual_seed(0)
    fused = models.resnet(8, in_channels=3, num_classes=5, input_size=8, width=4)
    unfused = _unfused(fused)
    _no_eval_plan(fused, unfused)
    x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    relu_passes, relu_backward_elements = [], []
    relu, relu_backward = ops.relu, ops.relu_backward
    monkeypatch.setattr(ops, "relu", lambda v: relu_passes.append(v.shape) or relu(v))
    monkeypatch.setattr(
        ops, "relu_backward", lambda v, g: relu_backward_elements.append(v.size) or relu_backward(v, g)
    )
    for _ in range(2):  # the second pass accumulates into the first one's gradients
        step = _step(fused, x, train)
        # Every ReLU follows a BatchNorm2d or a Residual: none runs on its own in the forward,
        # and in training only the Residuals' ReLUs (one per block) run their own backward.
        assert relu_passes == []
        if train:
            assert len(relu_backward_elements) == sum(isinstance(m, nn.Residual) for m in fused.modules())
        relu_backward_elements.clear()
        _assert_same_step(step, _step(unfused, x, train))
        assert relu_passes
        relu_passes.clear()
        relu_backward_elements.clear()


@pytest.mark.parametrize("layer, shape", [(lambda: nn.BatchNorm1d(5), (6, 5)), (lambda: nn.BatchNorm1d(3), (4, 3, 7)),
                                          (lambda: nn.BatchNorm2d(3), (2, 3, 5, 5))])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_relu_pairs_fuse_in_sequential(rng, layer, shape, train):
    fastnn.manual_seed(0)
    bn = layer()
    bn.weight.data[:] = rng.standard_normal(bn.num_features)  # both signs: the mask is not x's sign
    bn.bias.data[:] = rng.standard_normal(bn.num_features)
    fused = nn.Sequential(bn, nn.ReLU(), nn.Flatten(), nn.Linear(int(np.prod(shape[1:])), 3))
    unfused = _unfused(fused)
    _no_eval_plan(fused, unfused)
    x = rng.standard_normal(shape).astype(np.float32)
    assert fused._plan().fuses[0] and fused._plan().relu_in_norm[1]
    for _ in range(2):
        _assert_same_step(_step(fused, x, train), _step(unfused, x, train))
        np.testing.assert_array_equal(fused[0].running_var, unfused[0].running_var)


def test_batchnorm_subclasses_and_patched_layers_are_not_fused(rng):
    from fastnn.distributed import SyncBatchNorm

    model = nn.Sequential(SyncBatchNorm(3), nn.ReLU(), nn.BatchNorm2d(3), nn.ReLU())
    plan = model._plan()
    assert plan.fuses == [False, False, True, False] and plan.relu_in_norm == [False, False, False, True]
    # Called directly, a subclass's forward_relu runs its own forward, then the ReLU.
    sync = SyncBatchNorm(3)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(sync.forward_relu(x), ops.relu(SyncBatchNorm(3)(x)))
    model(x)
    model.backward(np.ones((4, 3, 2, 2), np.float32))
    model[2].forward = model[2].forward  # an instance attribute: hooks may want the pre-activation
    assert not model._plan().fuses[2]


def test_residual_relu_never_overwrites_an_output_a_layer_keeps(rng):
    # The block ends in a ReLU, which keeps its output for backward: the fused sum must not be
    # written over it (nor over x, passed through by the identity shortcut).
    fastnn.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Conv2d(2, 2, 1), nn.ReLU())
    model = nn.Sequential(nn.Residual(block), nn.ReLU())
    unfused = _unfused(model)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    x_before = x.copy()
    _assert_same_step(_step(model, x), _step(unfused, x))
    np.testing.assert_array_equal(x, x_before)


def test_a_relu_changed_between_forward_and_backward_still_gets_its_gradient(rng):
    # The plan fuses [BatchNorm, ReLU]; a forward run unfused (fuse_relu off) and a backward run
    # fused must still apply the ReLU's mask: backward_relu falls back on the ReLU's backward.
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(4), nn.ReLU())
    x = rng.standard_normal((6, 4)).astype(np.float32)
    model.fuse_relu = False
    y = model(x)
    model.fuse_relu = True
    dx = model.backward(np.ones_like(y))
    twin = _unfused(model)
    twin.fuse_relu = False
    twin(x)
    np.testing.assert_array_equal(dx, twin.backward(np.ones_like(y)))
