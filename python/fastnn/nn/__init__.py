"""Layers, containers and losses (PyTorch names and weight layouts, explicit backward)."""

from fastnn.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from fastnn.nn.container import Sequential
from fastnn.nn.conv import Conv2d
from fastnn.nn.linear import Linear
from fastnn.nn.loss import BCEWithLogits, SoftmaxCrossEntropy
from fastnn.nn.module import Module, Parameter
from fastnn.nn.residual import Residual
from fastnn.nn.shape import Flatten, Identity

__all__ = [
    "BCEWithLogits",
    "Conv2d",
    "Flatten",
    "GELU",
    "Identity",
    "LeakyReLU",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
]
