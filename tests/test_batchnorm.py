"""Batch normalisation: the reference against finite differences, what is specific to the
kernels (a constant gradient centred away, thread-count independence), and BatchNorm1d /
BatchNorm2d (against a NumPy transcription and, where importable, PyTorch). The kernels against
the reference, their accumulation into given gradients and their bad input are the batch_norm
entries of tests/opinfo.py.

Tolerances: per-channel sums accumulate in double, so float32 outputs, running statistics and
gradients are within a few ulps per element (FLOAT32_RTOL); the training dx cancels and is
measured against the size of its terms (tests/opinfo.py batch_norm_dx_scale).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import nn, ops
from fastnn import reference as ref
from conftest import FLOAT32_RTOL, FLOAT64_RTOL, assert_close, assert_raises_naming, numerical_grad

try:  # only a peer to compare with, never a dependency
    import torch
except ImportError:
    torch = None


def _params(rng, channels, dtype):
    """weight, bias, running_mean, running_var: random but plausible (var > 0)."""
    return (
        (1.0 + 0.5 * rng.standard_normal(channels)).astype(dtype),
        rng.standard_normal(channels).astype(dtype),
        rng.standard_normal(channels).astype(dtype),
        rng.uniform(0.5, 2.0, channels).astype(dtype),
    )


# --- the reference against finite differences (float64) --------------------------------------


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_reference_backward_matches_finite_differences(rng, shape, training):
    x = rng.standard_normal(shape) * 2.0 + 0.5
    weight, bias, running_mean, running_var = _params(rng, shape[1], np.float64)
    g = rng.standard_normal(shape)

    def forward(x, weight, bias):
        if training:
            return ref.batch_norm_train(x, weight, bias, None, None)[0]
        return ref.batch_norm_eval(x, weight, bias, running_mean, running_var)

    if training:
        _, mean, inv_std, _, _ = ref.batch_norm_train(x, weight, bias, None, None)
    else:
        mean, inv_std = running_mean, 1.0 / np.sqrt(running_var + 1e-5)
    dx, dweight, dbias = ref.batch_norm_backward(g, x, weight, mean, inv_std, training=training)
    # Smooth functions: central differences are accurate to ~eps^2 plus rounding ~1e-16 / eps.
    tol = dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, numerical_grad(lambda v: np.sum(g * forward(v, weight, bias)), x), **tol)
    np.testing.assert_allclose(
        dweight, numerical_grad(lambda v: np.sum(g * forward(x, v, bias)), weight), **tol
    )
    np.testing.assert_allclose(
        dbias, numerical_grad(lambda v: np.sum(g * forward(x, weight, v)), bias), **tol
    )


def test_reference_training_statistics_are_biased_and_running_variance_unbiased(rng):
    x = rng.standard_normal((6, 2, 3, 3))
    y, mean, inv_std, new_mean, new_var = ref.batch_norm_train(
        x, None, None, np.zeros(2), np.ones(2), momentum=0.25
    )
    values = x.transpose(1, 0, 2, 3).reshape(2, -1)
    np.testing.assert_allclose(mean, values.mean(axis=1))
    np.testing.assert_allclose(inv_std, 1.0 / np.sqrt(values.var(axis=1) + 1e-5))
    np.testing.assert_allclose(new_mean, 0.25 * values.mean(axis=1))
    np.testing.assert_allclose(new_var, 0.75 + 0.25 * values.var(axis=1, ddof=1))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)


# --- kernels against the reference ----------------------------------------------------------


def test_affine_false_and_no_running_statistics(rng):
    x = rng.standard_normal((4, 3, 2, 2))
    y, mean, inv_std = ops.batch_norm_train(x, None, None, None, None)
    assert_close(y, ref.batch_norm_train(x, None, None, None, None)[0], FLOAT64_RTOL, "y")
    dx, dweight, dbias = ops.batch_norm_backward(np.ones_like(x), x, None, mean, inv_std)
    assert dweight is None and dbias is None
    np.testing.assert_allclose(dx, 0.0, atol=1e-12)  # a constant gradient is removed by the centring


def test_kernels_do_not_depend_on_thread_count(rng):
    x = (rng.standard_normal((8, 16, 32, 32)) + 3.0).astype(np.float32)
    weight, bias, running_mean, running_var = _params(rng, 16, np.float32)
    saved = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            rm, rv = running_mean.copy(), running_var.copy()
            y, mean, inv_std = ops.batch_norm_train(x, weight, bias, rm, rv)
            results.append((y, mean, inv_std, rm, rv, *ops.batch_norm_backward(x, x, weight, mean, inv_std)))
    finally:
        fastnn.set_num_threads(saved)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# --- layers -----------------------------------------------------------------------------------


def _numpy_batchnorm_steps(batches, weight, bias, momentum, eps):
    """A NumPy transcription of PyTorch's training-mode BatchNorm over several batches:
    returns the outputs and the final running mean / variance."""
    running_mean, running_var = np.zeros(weight.shape), np.ones(weight.shape)
    outputs = []
    for x in batches:
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        outputs.append(
            (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(shape)
            + bias.reshape(shape)
        )
        count = x.size // x.shape[1]
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
    return outputs, running_mean, running_var


@pytest.mark.parametrize(
    "layer_type, shape",
    [(nn.BatchNorm2d, (4, 3, 5, 5)), (nn.BatchNorm1d, (8, 6)), (nn.BatchNorm1d, (4, 3, 7))],
)
def test_layer_running_statistics_over_several_steps(rng, layer_type, shape):
    layer = layer_type(shape[1], eps=1e-3, momentum=0.2)
    layer.weight.data[:] = rng.standard_normal(shape[1])
    layer.bias.data[:] = rng.standard_normal(shape[1])
    batches = [(rng.standard_normal(shape) * (1 + k) + k).astype(np.float32) for k in range(4)]
    outputs = [layer(x) for x in batches]
    expected, running_mean, running_var = _numpy_batchnorm_steps(
        [x.astype(np.float64) for x in batches],
        layer.weight.data.astype(np.float64),
        layer.bias.data.astype(np.float64),
        0.2,
        1e-3,
    )
    for out, exp in zip(outputs, expected):
        assert_close(out, exp, FLOAT32_RTOL, "training output")
    assert_close(layer.running_mean, running_mean, FLOAT32_RTOL, "running_mean")
    assert_close(layer.running_var, running_var, FLOAT32_RTOL, "running_var")
    assert int(layer.num_batches_tracked) == 4
    state = layer.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    layer.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    assert_close(
        y,
        ref.batch_norm_eval(x, layer.weight.data, layer.bias.data, running_mean, running_var, eps=1e-3),
        FLOAT32_RTOL,
        "eval",
    )
    np.testing.assert_array_equal(layer.running_mean, state["running_mean"])  # eval leaves them alone


@pytest.mark.parametrize("layer_type, shape", [(nn.BatchNorm2d, (3, 2, 3, 3)), (nn.BatchNorm1d, (6, 4))])
def test_layer_gradcheck_in_train_and_eval_mode(rng, layer_type, shape):
    layer = layer_type(shape[1])
    layer.weight.data[:] = 1.0 + rng.standard_normal(shape[1])
    layer.bias.data[:] = rng.standard_normal(shape[1])
    x = rng.standard_normal(shape) * 2.0 + 1.0
    assert fastnn.gradcheck(layer, x)
    for _ in range(3):  # non-trivial running statistics for eval mode
        layer(x.astype(np.float32))
    assert fastnn.gradcheck(layer.eval(), x)


def test_layer_gradients_accumulate_across_backward_calls(rng):
    layer = nn.BatchNorm2d(3)
    x = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    layer(x)
    dx1 = layer.backward(g)
    once_w, once_b = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer(x)
    dx2 = layer.backward(g)
    np.testing.assert_array_equal(dx1, dx2)  # input gradients are written, not accumulated
    np.testing.assert_allclose(layer.weight.grad, 2 * once_w, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * once_b, rtol=1e-6)
    layer.zero_grad()
    assert not layer.weight.grad.any()


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed: nothing to compare with")
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (8, 6), (4, 3, 7)])
def test_layer_matches_torch_over_several_steps(rng, shape):
    layer = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(shape[1], momentum=0.3)
    peer = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(
        shape[1], momentum=0.3
    ).double()
    layer.weight.data[:] = rng.standard_normal(shape[1])
    layer.bias.data[:] = rng.standard_normal(shape[1])
    with torch.no_grad():
        peer.weight.copy_(torch.from_numpy(layer.weight.data.astype(np.float64)))
        peer.bias.copy_(torch.from_numpy(layer.bias.data.astype(np.float64)))
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + step).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        yt = peer(xt)
        yt.backward(torch.from_numpy(g.astype(np.float64)))
        y = layer(x)
        dx = layer.backward(g)
        assert_close(y, yt.detach().numpy(), FLOAT32_RTOL, f"y, step {step}")
        assert_close(dx, xt.grad.numpy(), FLOAT32_RTOL, f"dx, step {step}")
    # Parameter gradients accumulated over the three steps on both sides.
    assert_close(layer.weight.grad, peer.weight.grad.numpy(), FLOAT32_RTOL, "weight.grad")
    assert_close(layer.bias.grad, peer.bias.grad.numpy(), FLOAT32_RTOL, "bias.grad")
    assert_close(layer.running_mean, peer.running_mean.numpy(), FLOAT32_RTOL, "running_mean")
    assert_close(layer.running_var, peer.running_var.numpy(), FLOAT32_RTOL, "running_var")
    assert int(layer.num_batches_tracked) == int(peer.num_batches_tracked)
    layer.eval(), peer.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    assert_close(
        layer(x), peer(torch.from_numpy(x.astype(np.float64))).detach().numpy(), FLOAT32_RTOL, "eval y"
    )
    # PyTorch's state dict loads as is: the same names and shapes.
    fresh = type(layer)(shape[1])
    fresh.load_state_dict({k: v.numpy() for k, v in peer.state_dict().items()})
    fresh.eval()
    assert_close(fresh(x), layer(x), FLOAT32_RTOL, "loaded from torch")


# --- bad input --------------------------------------------------------------------------------

X4 = np.zeros((2, 3, 4, 4), dtype=np.float32)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: nn.BatchNorm2d(3)(X4[0]), ValueError, ["nn.BatchNorm2d", "4-D", "(3, 4, 4)"]),
        (lambda: nn.BatchNorm2d(4)(X4), ValueError, ["nn.BatchNorm2d", "4 channels", "(2, 3, 4, 4)"]),
        (lambda: nn.BatchNorm1d(3)(X4), ValueError, ["nn.BatchNorm1d", "2-D", "(2, 3, 4, 4)"]),
        (
            lambda: nn.BatchNorm1d(8)(np.zeros((1, 8), np.float32)),
            ValueError,
            ["nn.BatchNorm1d", "more than 1 value per channel", "(1, 8)"],
        ),
        (
            lambda: nn.BatchNorm2d(3)(np.zeros((1, 3, 1, 1), np.float32)),
            ValueError,
            ["nn.BatchNorm2d", "(1, 3, 1, 1)"],
        ),
        (lambda: nn.BatchNorm2d(0), ValueError, ["nn.BatchNorm2d", "num_features", "0"]),
        (lambda: nn.BatchNorm2d(3, momentum=1.5), ValueError, ["nn.BatchNorm2d", "momentum", "1.5"]),
        (lambda: nn.BatchNorm1d(3, eps=-1.0), ValueError, ["nn.BatchNorm1d", "eps", "-1.0"]),
        (lambda: nn.BatchNorm1d(3, eps="small"), TypeError, ["nn.BatchNorm1d", "eps"]),
        (
            lambda: nn.BatchNorm2d(3)(X4.astype(np.float64)),
            TypeError,
            ["batch_norm_train", "weight", "float64", "float32"],
        ),
        (
            lambda: nn.BatchNorm2d(3).backward(X4),
            RuntimeError,
            ["BatchNorm2d.backward called before forward"],
        ),
    ],
)
def test_bad_input_is_rejected(call, exc, words):
    assert_raises_naming(exc, call, words)


def test_batch_of_one_is_fine_in_eval_mode():
    layer = nn.BatchNorm1d(8).eval()
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    np.testing.assert_allclose(layer(x), x / np.sqrt(1 + 1e-5), rtol=1e-6)
