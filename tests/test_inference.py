"""Eval-mode plans (fastnn/nn/fuse.py): BatchNorm folded into the convolution before it, ReLUs
fused, and the rule that rebuilds the plan whenever weights may have changed.

Every output is compared with a float64 forward of the same module tree written with
fastnn.reference (``reference_forward``), never with the code under test. Tolerance: the plan
computes in float32 with the folded weights rounded once to float32 (2^-24 relative each) and
products summed over K <= 63 terms through at most 9 layers, so its relative (Frobenius) error
against float64 stays near 1e-6; FLOAT32_RTOL_REDUCTION = 1e-4 (conftest) leaves room and
still fails on any unfolded, stale or misplaced term (those change outputs by 1e-2 or more).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastnn
from fastnn import _cpu, nn, optim
from fastnn import reference as ref
from fastnn.nn.fuse import fold_batchnorm
from conftest import FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, assert_close, rel_error


def reference_forward(m: nn.Module, x: np.ndarray) -> np.ndarray:
    """The eval forward of ``m`` in float64, layer by layer, from fastnn.reference."""
    x = np.asarray(x, np.float64)

    def f64(a):
        return None if a is None else np.asarray(getattr(a, "data", a), np.float64)

    if isinstance(m, nn.Sequential):
        for child in m:
            x = reference_forward(child, x)
        return x
    if isinstance(m, nn.Residual):
        return reference_forward(m.block, x) + (x if m.shortcut is None else reference_forward(m.shortcut, x))
    if isinstance(m, nn.Conv2d):
        return ref.conv2d(x, f64(m.weight), f64(m.bias), m.stride, m.padding, m.dilation, m.groups)
    if isinstance(m, nn.BatchNorm2d):
        return ref.batch_norm_eval(x, f64(m.weight), f64(m.bias), f64(m.running_mean), f64(m.running_var), eps=m.eps)
    if isinstance(m, nn.ReLU):
        return ref.relu(x)
    if isinstance(m, nn.MaxPool2d):
        return ref.max_pool2d(x, m.kernel_size, m.stride, m.padding)[0]
    if isinstance(m, nn.GlobalAvgPool2d):
        return ref.global_avg_pool2d(x)
    if isinstance(m, nn.Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(m, nn.Linear):
        return ref.linear(x, f64(m.weight), f64(m.bias))
    if isinstance(m, nn.Dropout):
        return x
    raise TypeError(type(m).__name__)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Statistics and affine parameters far from the identity, so a fold that is missing or
    stale shows."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = 0.5 * rng.standard_normal(m.num_features)
            m.running_var[...] = rng.uniform(0.3, 2.0, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = 0.5 * rng.standard_normal(m.num_features)
    return model


def odd_model() -> nn.Sequential:
    """Every step kind of the plan on odd shapes: conv + bias + BN + ReLU at stride 2, a nested
    residual block with a projection shortcut and a ReLU after it, a depthwise dilated conv + BN
    in an identity residual with no ReLU, a pooled conv + ReLU, Dropout, Flatten, Linear + ReLU."""
    fastnn.manual_seed(3)
    body = nn.Sequential(nn.Conv2d(5, 7, 3, padding=1, bias=False), nn.BatchNorm2d(7), nn.ReLU(),
                         nn.Conv2d(7, 7, (1, 3), padding=(0, 1), bias=False), nn.BatchNorm2d(7))
    shortcut = nn.Sequential(nn.Conv2d(5, 7, 1, bias=False), nn.BatchNorm2d(7))
    model = nn.Sequential(
        nn.Conv2d(3, 5, 3, stride=2, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
        nn.Sequential(nn.Residual(body, shortcut), nn.ReLU()),
        nn.Residual(nn.Sequential(nn.Conv2d(7, 7, 3, padding=2, dilation=2, groups=7), nn.BatchNorm2d(7))),
        nn.MaxPool2d(2), nn.Conv2d(7, 3, 3, padding=1), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(),
        nn.Linear(3 * 4 * 3, 11), nn.ReLU(), nn.Linear(11, 4),
    )
    return randomize_batchnorm(model).eval()


def image(rng, batch: int = 3) -> np.ndarray:
    return rng.standard_normal((batch, 3, 17, 13)).astype(np.float32)


def layer_by_layer(model: nn.Module) -> nn.Module:
    """``fast_eval`` off in every Sequential of ``model`` (the flag is per Sequential)."""
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            m.fast_eval = False
    return model


class KernelCount:
    """Counts calls of one _cpu function (through monkeypatch) to see which path ran."""

    def __init__(self, monkeypatch, name: str) -> None:
        self.count = 0
        original = getattr(_cpu, name)

        def counting(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(_cpu, name, counting)


@pytest.mark.parametrize("batch", [1, 3])
def test_eval_plan_matches_the_float64_reference_and_folds_every_batchnorm(rng, monkeypatch, batch):
    model, x = odd_model(), image(rng, batch)
    batch_norms = KernelCount(monkeypatch, "batch_norm_eval")
    y = model(x)
    assert batch_norms.count == 0, "the plan ran a BatchNorm kernel: nothing was folded"
    assert_close(y, reference_forward(model, x), FLOAT32_RTOL_REDUCTION, "eval plan")
    layer_by_layer(model)
    y_layers = model(x)
    assert batch_norms.count == 5
    assert_close(y_layers, reference_forward(model, x), FLOAT32_RTOL_REDUCTION, "layer by layer")


def test_resnet20_eval_plan_matches_the_reference(rng):
    fastnn.manual_seed(0)
    model = randomize_batchnorm(fastnn.models.resnet(20, 3, 10, 32)).eval()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert_close(model(x), reference_forward(model, x), FLOAT32_RTOL_REDUCTION, "resnet20")


@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_batchnorm_is_the_batchnorm_of_the_convolution(rng, with_bias):
    # float64 layers: the fold's algebra alone, to float64 rounding.
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=with_bias)
    bn = randomize_batchnorm(nn.BatchNorm2d(6), seed=5)
    for layer in (conv, bn):
        for p in layer.parameters():
            p.data = p.data.astype(np.float64)
    bn.running_mean, bn.running_var = bn.running_mean.astype(np.float64), bn.running_var.astype(np.float64)
    x = rng.standard_normal((2, 4, 9, 7))
    weight, bias = fold_batchnorm(conv, bn)
    bias_in = conv.bias.data if with_bias else None
    expected = ref.batch_norm_eval(ref.conv2d(x, conv.weight.data, bias_in, 2, 1), bn.weight.data, bn.bias.data,
                                   bn.running_mean, bn.running_var, eps=bn.eps)
    assert_close(ref.conv2d(x, weight, bias, 2, 1), expected, FLOAT64_RTOL, "folded")


def test_backward_after_a_planned_forward_equals_the_layer_by_layer_one(rng):
    planned = odd_model()
    layers = layer_by_layer(copy.deepcopy(planned))
    x = image(rng)
    grad_out = rng.standard_normal((3, 4)).astype(np.float32)
    results = []
    for model in (planned, layers):
        model(x)
        dx = model.backward(grad_out)
        results.append([dx] + [p.grad for p in model.parameters()])
    for name, a, b in zip(["input"] + [n for n, _ in planned.named_parameters()], *results):
        assert_close(a, b, FLOAT32_RTOL_REDUCTION, f"gradient of {name}")


# --- staleness: after each event that changes weights, the plan folds the new values -----------


def folded_pair(model: nn.Module) -> list:
    """The first convolution's and BatchNorm's parameters: an update of only these cannot be
    hidden by a later ReLU that a large step of every layer may leave dead."""
    return list(model[0].parameters()) + list(model[1].parameters())


def _changes_and_matches(model: nn.Module, x: np.ndarray, before: np.ndarray) -> None:
    after = model(x)
    assert rel_error(after, before) > 1e-3, "the event changed nothing: the test would prove nothing"
    assert_close(after, reference_forward(model, x), FLOAT32_RTOL_REDUCTION, "after the change")


def test_an_optimizer_step_after_eval_is_seen(rng):
    model, x = odd_model(), image(rng)
    opt = optim.SGD(folded_pair(model), lr=0.1, momentum=0.9)
    model.train()
    model(x)
    model.backward(np.ones((3, 4), np.float32))
    model.eval()
    before = model(x)
    opt.step()
    _changes_and_matches(model, x, before)


def test_an_eval_mode_backward_and_adam_step_are_seen(rng):
    model, x = odd_model(), image(rng)
    opt = optim.Adam(folded_pair(model), lr=0.1)
    before = model(x)
    model.backward(np.ones_like(before))
    opt.step()
    _changes_and_matches(model, x, before)


def test_load_state_dict_after_eval_is_seen(rng):
    model, x = odd_model(), image(rng)
    other = randomize_batchnorm(odd_model(), seed=9)
    for p in other.parameters():
        p.data[...] = p.data * 1.5
    before = model(x)
    model.load_state_dict(other.state_dict())
    _changes_and_matches(model, x, before)


def test_training_forwards_then_eval_use_the_new_running_statistics(rng):
    model, x = odd_model(), image(rng)
    before = model(x)
    model.train()
    for _ in range(3):
        model(x + 1.0)
    model.eval()
    _changes_and_matches(model, x, before)


def test_replaced_arrays_are_seen(rng):
    model, x = odd_model(), image(rng)
    before = model(x)
    conv = model[0]
    conv.weight.data = conv.weight.data * 2.0  # a new array, assigned to the Parameter's slot
    _changes_and_matches(model, x, before)
    before = model(x)
    bn = model[1]
    bn.running_var = bn.running_var * 3.0  # a new buffer array
    _changes_and_matches(model, x, before)


def test_in_place_operators_and_settings_are_seen(rng):
    model, x = odd_model(), image(rng)
    before = model(x)
    model[0].weight *= -1.0  # Parameter in-place operator
    _changes_and_matches(model, x, before)
    before = model(x)
    model[1].eps = 5.0  # a public setting
    _changes_and_matches(model, x, before)


def test_raw_writes_into_the_arrays_are_seen(rng):
    # No event at all: the plan refolds from the arrays at every call, so a hand-written
    # p.data[...] = v (loading weights by hand, say) can never leave it stale.
    model, x = odd_model(), image(rng)
    before = model(x)
    model[0].weight.data[...] *= -1.0
    _changes_and_matches(model, x, before)
    before = model(x)
    model[1].running_var[...] *= 4.0
    model[1].running_mean[...] += 1.0
    _changes_and_matches(model, x, before)


def test_a_deep_copy_never_runs_the_originals_plan(rng):
    model, x = odd_model(), image(rng)
    before = model(x)
    twin = copy.deepcopy(model)
    twin[0].weight.data[...] *= -1.0  # raw write before the copy's first forward: no event at all
    _changes_and_matches(twin, x, before)
    assert_close(model(x), before, 0.0, "the original")


def test_a_submodule_in_training_mode_runs_layer_by_layer(rng, monkeypatch):
    model, x = odd_model(), image(rng)
    model[1].train()
    trains = KernelCount(monkeypatch, "batch_norm_train")
    y = model(x)
    assert trains.count == 1
    assert np.isfinite(y).all()


def test_a_replaced_forward_is_run_not_folded(rng):
    model, x = odd_model(), image(rng)
    bn = model[1]
    bn.forward = lambda v: v * 0.0  # an instance patch: the plan must call it
    expected = reference_forward(nn.Sequential(*list(model)[3:]), np.zeros((3, 5, 9, 7)))
    assert_close(model(x), expected, FLOAT32_RTOL_REDUCTION, "with the patched BatchNorm")


# --- bad input: the same errors as the layer-by-layer forward ----------------------------------


@pytest.mark.parametrize("bad", [
    lambda rng: image(rng).astype(np.float64),          # dtype
    lambda rng: rng.standard_normal((2, 4, 17, 13)).astype(np.float32),  # channels
    lambda rng: rng.standard_normal((3, 17, 13)).astype(np.float32),     # no batch axis
    lambda rng: rng.standard_normal((2, 3, 9, 9)).astype(np.float32),    # image size (Linear)
])
def test_bad_input_raises_what_the_layer_by_layer_forward_raises(rng, bad):
    model, x = odd_model(), bad(rng)
    layers = layer_by_layer(copy.deepcopy(model))
    with pytest.raises(Exception) as expected:
        layers(x)
    with pytest.raises(type(expected.value)) as got:
        model(x)
    assert str(got.value) == str(expected.value)
    assert "fastnn.nn.Sequential: layer" in str(got.value)
    # The plan still runs good input afterwards.
    good = image(rng)
    assert_close(model(good), reference_forward(model, good), FLOAT32_RTOL_REDUCTION, "after the error")
