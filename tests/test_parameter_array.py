"""Parameter behaves as its array where NumPy asks (issue 17, item 4)."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn import nn, optim


def test_asarray_gives_the_data_without_a_copy():
    layer = nn.Linear(3, 2)
    a = np.asarray(layer.weight)
    assert a is layer.weight.data
    assert np.asarray(layer.weight, dtype=np.float64).dtype == np.float64
    assert np.array(layer.weight, copy=True) is not layer.weight.data
    assert np.array_equal(np.concatenate([layer.weight, layer.weight]), np.concatenate([a, a]))


@pytest.mark.parametrize("op", [lambda w: w * 2, lambda w: 2 * w, lambda w: w + w, lambda w: -w, lambda w: w ** 2,
                                lambda w: np.exp(w), lambda w: w @ np.ones(3, np.float32), lambda w: w > 0,
                                lambda w: np.maximum(w, 0.0), lambda w: np.add.reduce(w, axis=0)],
                         ids=["mul", "rmul", "add", "neg", "pow", "exp", "matmul", "gt", "maximum", "reduce"])
def test_arithmetic_returns_plain_arrays(op):
    layer = nn.Linear(3, 2)
    got = op(layer.weight)
    assert type(got) is np.ndarray
    assert np.array_equal(got, op(layer.weight.data.copy()))


def test_in_place_operators_write_the_data_and_keep_the_parameter():
    layer = nn.Linear(3, 2)
    data = layer.weight.data
    expected = data * 0.5
    weight = layer.weight
    layer.weight *= 0.5
    assert layer.weight is weight and layer.weight.data is data
    assert np.array_equal(data, expected)
    assert list(dict(layer.named_parameters())) == ["weight", "bias"]


def test_data_grad_identity_and_optimizer_state_unchanged():
    layer = nn.Linear(3, 2)
    w = layer.weight
    assert w == w and not (w != w) and w != layer.bias  # identity, usable as dict keys
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    y = layer(np.ones((4, 3), np.float32))
    layer.backward(np.ones_like(y))
    opt.step()
    assert w in opt.state and isinstance(w.grad, np.ndarray) and w.grad.shape == (2, 3)
    assert len(w) == 2 and w[1].shape == (3,) and w.ndim == 2


class _FakeDeviceArray:
    """Stands in for a CuPy array: only what Parameter forwards."""

    shape, dtype, size, ndim = (2,), np.dtype(np.float32), 2, 1
    __cuda_array_interface__ = {"shape": (2,), "typestr": "<f4", "data": (0, False), "version": 3}


def test_cuda_array_interface_is_forwarded_only_for_device_data():
    assert nn.Parameter(_FakeDeviceArray()).__cuda_array_interface__["typestr"] == "<f4"
    assert not hasattr(nn.Parameter(np.zeros(2, np.float32)), "__cuda_array_interface__")


def test_cupy_round_trip_when_a_gpu_is_there():
    cupy = pytest.importorskip("cupy")
    try:
        data = cupy.arange(4, dtype=cupy.float32)
    except Exception as e:  # CuPy installed without a usable GPU
        pytest.skip(f"no GPU: {e}")
    p = nn.Parameter(data)
    assert int(cupy.asarray(p).data.ptr) == int(data.data.ptr)
    assert isinstance(p * 2, cupy.ndarray)
