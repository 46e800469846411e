"""Layers: backward against numerical gradients of forward (fastnn.gradcheck, float64), the
Module API, and agreement with PyTorch's layer definitions where torch is installed."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import models, nn


def _x(rng, shape):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 1e-3, 1e-3, x)  # keep eps-probes off the ReLU kink


@pytest.mark.parametrize("layer", [
    lambda: nn.Linear(5, 3), lambda: nn.Linear(7, 2, bias=False), lambda: nn.ReLU(), lambda: nn.LeakyReLU(0.2),
    lambda: nn.Sigmoid(), lambda: nn.Tanh(), lambda: nn.GELU(), lambda: nn.Identity(),
])
def test_layer_gradcheck(layer, rng):
    assert fastnn.gradcheck(layer(), _x(rng, (4, 5) if not isinstance(layer(), nn.Linear) else (4, layer().in_features)))


def test_sequential_mlp_gradcheck(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    assert fastnn.gradcheck(model, _x(rng, (5, 3, 2, 2)))


def test_gradcheck_catches_a_wrong_backward(rng):
    class Wrong(nn.ReLU):
        def backward(self, grad_out):
            return 2 * super().backward(grad_out)

    with pytest.raises(fastnn.GradcheckError, match="input"):
        fastnn.gradcheck(Wrong(), _x(rng, (3, 3)))


def test_backward_accumulates_parameter_grads(rng):
    layer = nn.Linear(3, 2)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    g = rng.standard_normal((4, 2)).astype(np.float32)
    layer(x)
    layer.backward(g)
    first = layer.weight.grad.copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * first, rtol=1e-6)
    layer.zero_grad()
    assert not layer.weight.grad.any()


def test_module_registration_and_state_dict(rng):
    fastnn.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(list(model.parameters())) == 4
    state = model.state_dict()
    assert list(state) == names
    fastnn.manual_seed(2)
    other = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert not np.array_equal(other[0].weight.data, model[0].weight.data)
    other.load_state_dict(state)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(other(x), model(x))
    state["0.weight"][:] = 0  # state_dict holds copies
    assert model[0].weight.data.any()


def test_load_state_dict_errors():
    model = nn.Linear(4, 3)
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict({"weight": np.zeros((3, 4))})
    with pytest.raises(ValueError, match=r"'weight' must have shape \(3, 4\)"):
        model.load_state_dict({"weight": np.zeros((4, 3)), "bias": np.zeros(3)})


def test_train_eval_flags_propagate():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_linear_init_matches_pytorch_bounds():
    fastnn.manual_seed(0)
    layer = nn.Linear(400, 50)
    bound = 1 / np.sqrt(400)
    assert layer.weight.data.dtype == np.float32 and layer.weight.shape == (50, 400)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.95 * bound  # uniform over the whole interval
    assert abs(layer.weight.data.std() - bound / np.sqrt(3)) < 0.05 * bound


def test_manual_seed_repeats_init():
    fastnn.manual_seed(7)
    a = nn.Linear(5, 5).weight.data.copy()
    fastnn.manual_seed(7)
    np.testing.assert_array_equal(nn.Linear(5, 5).weight.data, a)


def test_losses(rng):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    fn = nn.SoftmaxCrossEntropy(label_smoothing=0.1)
    loss = fn(logits, labels)
    assert isinstance(loss, float)
    np.testing.assert_allclose(fn.backward(), fastnn.ops.softmax_cross_entropy(logits, labels, 0.1)[1])
    np.testing.assert_allclose(fn.backward(2.0), 2 * fn.backward())
    bce = nn.BCEWithLogits(pos_weight=np.ones(4))
    assert isinstance(bce(logits, (logits > 0).astype(np.float32)), float)
    with pytest.raises(RuntimeError, match="before"):
        nn.SoftmaxCrossEntropy().backward()


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="Linear.backward called before forward"):
        nn.Linear(2, 2).backward(np.zeros((1, 2), np.float32))


def test_layers_match_pytorch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the peer comparison is optional")
    fastnn.manual_seed(3)
    ours = nn.Sequential(nn.Linear(10, 7), nn.GELU(), nn.Linear(7, 5), nn.LeakyReLU(0.1), nn.Linear(5, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(10, 7), torch.nn.GELU(), torch.nn.Linear(7, 5),
                                 torch.nn.LeakyReLU(0.1), torch.nn.Linear(5, 3))
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((8, 10)).astype(np.float32)
    labels = rng.integers(0, 3, 8)
    loss_fn = nn.SoftmaxCrossEntropy(label_smoothing=0.05)
    loss = loss_fn(ours(x), labels)
    ours.backward(loss_fn.backward())
    xt = torch.from_numpy(x)
    t_loss = torch.nn.functional.cross_entropy(theirs(xt), torch.from_numpy(labels), label_smoothing=0.05)
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-5)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)



@pytest.mark.parametrize("build, input_shape", [
    (lambda: models.mlp(1, 10, 8, hidden=(16,)), (4, 1, 8, 8)),  # Flatten first: skipped
    (lambda: models.lenet5(1, 10, 12), (4, 1, 12, 12)),  # Conv2d first: no dx
    (lambda: nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(64, 3)), (4, 1, 8, 8)),  # fallback
])
def test_backward_params_gives_the_parameter_gradients_of_backward(build, input_shape, rng):
    x = rng.standard_normal(input_shape).astype(np.float32)
    grads = {}
    for method in ("backward", "backward_params"):
        fastnn.manual_seed(0)
        model = build()
        y = model(x)
        returned = getattr(model, method)(np.ones_like(y))
        assert (returned is None) == (method == "backward_params")
        grads[method] = [p.grad.copy() for p in model.parameters()]
    assert len(grads["backward"]) == len(grads["backward_params"]) > 0
    for full, params_only in zip(grads["backward"], grads["backward_params"]):
        np.testing.assert_array_equal(full, params_only)
