"""End to end: an MLP trained with SGD-momentum on scikit-learn's real 8x8 digits (seeded
stratified 80/20 split) must reach >= 95% test accuracy, in a couple of seconds."""

from __future__ import annotations

import numpy as np

import fastnn
from fastnn import nn, optim
from conftest import NEEDS_DIGITS

pytestmark = NEEDS_DIGITS


def test_mlp_reaches_95_percent_on_digits():
    from fastnn.data import digits

    fastnn.manual_seed(0)
    train, test = digits(seed=0)
    assert len(train) + len(test) == 1797 and abs(len(test) - 360) <= 5
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    order = np.random.default_rng(0)
    for _ in range(20):
        perm = order.permutation(len(train))
        for i in range(0, len(train), 64):
            idx = perm[i : i + 64]
            loss_fn(model(train.x[idx]), train.y[idx])
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
    model.eval()
    accuracy = float((model(test.x).argmax(1) == test.y).mean())
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f}"
