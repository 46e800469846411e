"""Layers, containers and losses (PyTorch names and weight layouts, explicit backward)."""

from fastnn.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from fastnn.nn.container import Sequential
from fastnn.nn.conv import Conv2d
from fastnn.nn.dropout import Dropout
from fastnn.nn.linear import Linear
from fastnn.nn.loss import BCEWithLogits, SoftmaxCrossEntropy
from fastnn.nn.module import Module, Parameter
from fastnn.nn.multihead import MultiHead, MultiHeadLoss
from fastnn.nn.norm import BatchNorm1d, BatchNorm2d
from fastnn.nn.pool import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from fastnn.nn.residual import Residual
from fastnn.nn.shape import Flatten, Identity
from fastnn.nn.norm import L2Normalize
from fastnn.nn.arcface import ArcFaceLoss
from fastnn.nn.triplet import TripletMarginLoss
from fastnn.nn.deferred import DeferredGradient

__all__ = [
    "AvgPool2d",
    "BCEWithLogits",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "GELU",
    "GlobalAvgPool2d",
    "Identity",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "MultiHead",
    "MultiHeadLoss",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
    "L2Normalize",
    "ArcFaceLoss",
    "TripletMarginLoss",
    "DeferredGradient",
]
