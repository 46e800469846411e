"""Errors raised inside Sequential name the layer, its input and what to do (issue 17, item 6)."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import models, nn


def _error(model, x):
    with pytest.raises(Exception) as info:
        model(x)
    return info


def test_wrong_feature_count_into_linear_blames_the_input_not_the_weight():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    info = _error(model, np.zeros((2, 783), np.float32))
    message = str(info.value)
    assert info.type is ValueError
    assert "layer 1 Linear(in_features=784, out_features=10, bias=True)" in message
    assert "got input of shape (2, 783), dtype float32" in message
    assert "must have in_features=784 columns" in message  # the layer's own message is kept
    assert "'weight'" not in message


def test_float64_input_says_cast_to_float32():
    model = models.lenet5()
    info = _error(model, np.zeros((2, 1, 28, 28)))
    message = str(info.value)
    assert info.type is TypeError
    assert "layer 0 Conv2d(1, 6" in message and "shape (2, 1, 28, 28), dtype float64" in message
    assert "cast the input to float32" in message
    info = _error(nn.Sequential(nn.Linear(3, 2)), np.zeros((4, 3), np.uint8))
    assert info.type is TypeError and "x.astype(np.float32) / 255" in str(info.value)


def test_image_of_another_size_names_the_layer_and_the_model_input():
    model = models.lenet5()  # built for 28x28
    info = _error(model, np.zeros((2, 1, 32, 32), np.float32))
    message = str(info.value)
    assert info.type is ValueError
    assert "layer 7 Linear(in_features=400, out_features=120, bias=True)" in message
    assert "got input of shape (2, 576)" in message
    assert "the model's input: shape (2, 1, 32, 32), dtype float32" in message
    assert "built for another input size" in message


def test_nested_layers_get_their_dotted_name_once():
    inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model = nn.Sequential(nn.Identity(), nn.Residual(inner))
    info = _error(model, np.zeros((2, 5), np.float32))
    message = str(info.value)
    assert "layer 1.block.0 Linear(in_features=4" in message, message
    assert message.count("fastnn.nn.Sequential") == 1


def test_non_arrays_and_channel_mistakes_get_advice():
    info = _error(nn.Sequential(nn.Flatten()), [[1.0, 2.0]])
    assert "layer 0 Flatten" in str(info.value) and "np.asarray" in str(info.value)
    cnn = models.simple_cnn(in_channels=3, input_size=32)
    assert "x.transpose(0, 3, 1, 2)" in str(_error(cnn, np.zeros((2, 32, 32, 3), np.float32)).value)
    assert "x[None]" in str(_error(cnn, np.zeros((3, 32, 32), np.float32)).value)


def test_a_bare_layer_blames_its_input_too():
    with pytest.raises(ValueError, match=r"nn.Linear: input must have in_features=3 columns.*got shape \(2, 4\)"):
        nn.Linear(3, 2)(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="cast the input to float32"):
        nn.Conv2d(1, 1, 3)(np.zeros((1, 1, 5, 5)))
