"""Smaller newcomer items of issue 17 (item 12): gradcheck and dropout, GradcheckError's index
format, DataLoader given a tuple of arrays."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import data, nn


def test_gradcheck_of_a_training_mode_dropout_says_call_eval():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"Dropout\(p=0.5\) \(at '1'\) is in training mode.*call \.eval\(\)"):
        fastnn.gradcheck(model, x)
    assert fastnn.gradcheck(model.eval(), x)


def test_gradcheck_error_prints_plain_indices():
    class WrongBackward(nn.Linear):
        def backward(self, grad_out):
            return super().backward(grad_out) * 2.0

    layer = WrongBackward(3, 2)
    with pytest.raises(fastnn.GradcheckError) as info:
        fastnn.gradcheck(layer, np.ones((2, 3)))
    message = str(info.value)
    assert "np.int64" not in message
    assert "gradient of input[0, 0]:" in message or "gradient of input[" in message
    import re

    assert re.search(r"input\[\d+, \d+\]: analytic", message), message


def test_dataloader_given_a_tuple_says_what_to_pass():
    x, y = np.zeros((10, 1, 2, 2), np.float32), np.arange(10) % 3
    for wrong in ((x, y), [x, y], x):
        with pytest.raises(TypeError, match=r"pass an ArrayDataset .*or the arrays themselves as x= and y="):
            data.DataLoader(wrong, batch_size=4)


def test_dataloader_takes_x_and_y_by_keyword():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10) % 3
    batches = list(data.DataLoader(x=x, y=y, batch_size=4, prefetch=0))
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    same = list(data.DataLoader(data.ArrayDataset(x.reshape(10, 2, 1, 1), y), 4, prefetch=0))
    np.testing.assert_array_equal(same[0][0].reshape(4, 2), batches[0][0])
    with pytest.raises(ValueError, match="same number of rows"):
        data.DataLoader(x=x, y=y[:5], batch_size=4)
    with pytest.raises(TypeError, match="both 'x' and 'y'"):
        data.DataLoader(x=x, batch_size=4)
    with pytest.raises(TypeError, match="missing argument 'batch_size'"):
        data.DataLoader(x=x, y=y)
