"""A batch of 0 through every layer of fastnn.nn (issue 17, item 3).

Every layer takes an input whose batch axis is 0 and returns an empty output of the shape a
batch of one would have with N = 0, forward and backward, in training and in eval mode; the
losses return NaN (the mean of nothing, as in PyTorch) and an empty gradient. Only the batch
may be empty: a plane with H or W = 0 is refused by the spatial layers (as PyTorch refuses it).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from fastnn import models, nn

# name -> (layer factory, input shape for a batch of 2). Covers every Module in nn.__all__;
# test_every_layer_is_covered keeps it that way when a layer is added.
LAYERS = {
    "AvgPool2d": (lambda: nn.AvgPool2d(2, padding=1), (2, 3, 5, 5)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4), (2, 4)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1, stride=2), (2, 3, 7, 7)),
    "Dropout": (lambda: nn.Dropout(0.5), (2, 5)),
    "Flatten": (lambda: nn.Flatten(), (2, 3, 4, 4)),
    "GELU": (lambda: nn.GELU(), (2, 5)),
    "GlobalAvgPool2d": (lambda: nn.GlobalAvgPool2d(), (2, 3, 4, 4)),
    "Identity": (lambda: nn.Identity(), (2, 5)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), (2, 5)),
    "Linear": (lambda: nn.Linear(5, 3), (2, 5)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), (2, 3, 4, 4)),
    "ReLU": (lambda: nn.ReLU(), (2, 5)),
    "Residual": (lambda: nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))),
                 (2, 3, 4, 4)),
    "Sequential": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                         nn.Linear(4 * 13 * 13, 10)), (2, 1, 28, 28)),
    "Sigmoid": (lambda: nn.Sigmoid(), (2, 5)),
    "Tanh": (lambda: nn.Tanh(), (2, 5)),
    "L2Normalize": (lambda: nn.L2Normalize(), (2, 5)),
}
LOSSES = {
    "SoftmaxCrossEntropy": (lambda: nn.SoftmaxCrossEntropy(0.1), lambda: np.zeros(0, np.int64)),
    "BCEWithLogits": (lambda: nn.BCEWithLogits(np.ones(3, np.float32)), lambda: np.zeros((0, 3), np.float32)),
    "ArcFaceLoss": (lambda: nn.ArcFaceLoss(3, 4), lambda: np.zeros(0, np.int64)),
    "TripletMarginLoss": (lambda: nn.TripletMarginLoss(0.5, "all"), lambda: np.zeros(0, np.int64)),
}
MODELS = {
    "mlp": lambda: models.mlp(),
    "lenet5": lambda: models.lenet5(),
    "simple_cnn": lambda: models.simple_cnn(),
    "resnet20": lambda: models.resnet(20, in_channels=1, input_size=28),
}


def test_every_layer_is_covered():
    exported = {name for name in nn.__all__
                if inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module)}
    dict_modules = {"MultiHead", "MultiHeadLoss"}  # a dict out or in: their empty batch is in test_tasks_multihead.py
    assert exported - {"Module"} - dict_modules == set(LAYERS) | set(LOSSES)


def _empty_through(module: nn.Module, full_shape: tuple[int, ...]) -> None:
    """Runs a batch of 2 and a batch of 0; the empty output must have the full one's shape with
    N = 0, and backward must give an empty input gradient of the input's shape."""
    x = np.random.default_rng(0).standard_normal(full_shape).astype(np.float32)
    full = module(x)
    empty_x = np.zeros((0,) + full_shape[1:], np.float32)
    y = module(empty_x)
    assert isinstance(y, np.ndarray) and y.shape == (0,) + full.shape[1:] and y.dtype == np.float32
    dx = module.backward(np.zeros_like(y))
    assert dx.shape == empty_x.shape and dx.dtype == np.float32
    for p in module.parameters():  # a batch of 0 adds nothing to the gradients
        assert p.grad is None or np.all(np.isfinite(p.grad))


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_takes_an_empty_batch(name, mode):
    make, shape = LAYERS[name]
    module = make().train(mode == "train")
    _empty_through(module, shape)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_takes_an_empty_batch(name):
    model = MODELS[name]()
    channels = 1
    _empty_through(model.train(), (2, channels, 28, 28))
    assert model.eval()(np.zeros((0, channels, 28, 28), np.float32)).shape == (0, 10)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_of_an_empty_batch_is_nan_with_an_empty_gradient(name):
    make, targets = LOSSES[name]
    loss_fn = make()
    loss = loss_fn(np.zeros((0, 3), np.float32), targets())
    assert np.isnan(loss)
    grad = loss_fn.backward()
    assert grad.shape == (0, 3) and grad.dtype == np.float32


def test_batch_norm_leaves_running_statistics_alone_on_an_empty_batch():
    layer = nn.BatchNorm2d(3).train()
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    layer(np.zeros((0, 3, 4, 4), np.float32))
    dx = layer.backward(np.zeros((0, 3, 4, 4), np.float32))
    assert dx.shape == (0, 3, 4, 4)
    assert np.array_equal(layer.weight.grad, np.zeros(3)) and np.array_equal(layer.bias.grad, np.zeros(3))
    for k, v in layer.state_dict().items():
        assert np.array_equal(v, before[k]), k


@pytest.mark.parametrize("layer", [nn.Conv2d(1, 1, 1, padding=1), nn.MaxPool2d(2, padding=1),
                                   nn.AvgPool2d(2, padding=1), nn.GlobalAvgPool2d()],
                         ids=["Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"])
def test_empty_planes_are_refused_even_with_padding(layer):
    with pytest.raises(ValueError, match=r"H, W >= 1"):
        layer(np.zeros((1, 1, 0, 0), np.float32))
