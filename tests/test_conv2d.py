"""conv2d: the reference against finite differences, the CPU kernels on two threads (layers
larger than the registry's), extreme hyper-parameters, determinism, and nn.Conv2d (gradcheck,
PyTorch, bad arguments). The kernels against the reference over a grid of shapes and
hyper-parameters (tests/opinfo.py CONV2D_CONFIGS), their accumulation into given gradients and
their bad input are the conv2d entry of tests/opinfo.py; the plan each layer gets is
tests/test_conv2d_paths.py.

Tolerances (relative Frobenius error, see conftest): float64 kernels must match the reference
to FLOAT64_RTOL (1e-12). float32 outputs are sums of K products (K = C_in/groups*kh*kw for y
and dx, N*H_out*W_out for dweight and dbias, up to ~1200 here), whose rounding error grows like
sqrt(K) * 2^-24 ~ 1e-6; FLOAT32_RTOL_REDUCTION (1e-4) leaves margin and still fails on any
indexing, padding or blocking bug (those give errors of order 1).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, assert_close, numerical_grad

import fastnn
from fastnn import _cpu, nn, ops, reference
from opinfo import CONV2D_THREADED_CONFIGS, conv2d_case


@pytest.fixture
def restore_threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


# --- the reference is the spec: check it against finite differences -------------------------


@pytest.mark.parametrize(
    "args",
    [
        dict(stride=1, padding=0, dilation=1, groups=1),
        dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
    ],
)
def test_reference_backward_matches_finite_differences(args, rng):
    x = rng.standard_normal((2, 4, 5, 6))
    weight = rng.standard_normal((4, 4 // args["groups"], 3, 2))
    bias = rng.standard_normal(4)
    y = reference.conv2d(x, weight, bias, **args)
    g = rng.standard_normal(y.shape)
    dx, dw, db = reference.conv2d_backward(x, weight, g, **args)

    def loss(x_, w_, b_):
        return float(np.sum(g * reference.conv2d(x_, w_, b_, **args)))

    # Central differences of a function linear in each argument are exact up to rounding.
    assert_close(dx, numerical_grad(lambda v: loss(v, weight, bias), x), 1e-7, "dx")
    assert_close(dw, numerical_grad(lambda v: loss(x, v, bias), weight), 1e-7, "dweight")
    assert_close(db, numerical_grad(lambda v: loss(x, weight, v), bias), 1e-7, "dbias")


def test_reference_matches_direct_sum(rng):
    # The formula of the module docstring, written out loop by loop on a tiny case.
    x = rng.standard_normal((1, 2, 4, 5))
    w = rng.standard_normal((2, 1, 2, 3))
    sh, sw, ph, pw, dh, dw, groups = 2, 1, 1, 0, 1, 2, 2
    y = reference.conv2d(x, w, None, (sh, sw), (ph, pw), (dh, dw), groups)
    expected = np.zeros_like(y)
    for o in range(2):
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                for p in range(2):
                    for q in range(3):
                        hi, wi = i * sh - ph + p * dh, j * sw - pw + q * dw
                        if 0 <= hi < 4 and 0 <= wi < 5:
                            expected[0, o, i, j] += w[o, 0, p, q] * x[0, o, hi, wi]
    assert_close(y, expected, 1e-14, "y")


# --- kernels against the reference --------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CONV2D_THREADED_CONFIGS))
def test_threaded_paths_match_reference(name, dtype, rng, restore_threads):
    # Two threads even on a one-core runner: images split across threads, threads inside one image.
    fastnn.set_num_threads(2)
    x, weight, bias, args = conv2d_case(CONV2D_THREADED_CONFIGS[name], dtype, rng)
    rtol = FLOAT32_RTOL_REDUCTION if dtype == np.float32 else FLOAT64_RTOL
    y = ops.conv2d(x, weight, bias, **args)
    assert_close(y, reference.conv2d(x, weight, bias, **args), rtol, f"{name} y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = ops.conv2d_backward(x, weight, dy, **args)
    for what, g, r in zip(("dx", "dweight", "dbias"), got, reference.conv2d_backward(x, weight, dy, **args)):
        assert_close(g, r, rtol, f"{name} {what}")


def test_extreme_hyper_parameters_stay_in_range(rng):
    # A stride near int64's limit gives a 1x1 output; index arithmetic must not overflow.
    x = rng.standard_normal((1, 2, 3, 4))
    w = rng.standard_normal((3, 2, 2, 2))
    for args in [dict(stride=2**63 - 1, padding=2), dict(stride=(1, 2**63 - 1), padding=(0, 3), dilation=(2, 1))]:
        y = ops.conv2d(x, w, **args)
        assert_close(y, reference.conv2d(x, w, **args), FLOAT64_RTOL, f"y {args}")
        dy = rng.standard_normal(y.shape)
        for got, want in zip(ops.conv2d_backward(x, w, dy, **args), reference.conv2d_backward(x, w, dy, **args)):
            assert_close(got, want, FLOAT64_RTOL, f"gradients {args}")


# --- determinism ---------------------------------------------------------------------------------


def test_deterministic_and_thread_count_independent_up_to_rounding(rng, restore_threads):
    x, weight, bias, args = conv2d_case(CONV2D_THREADED_CONFIGS["threaded-batch"], np.float32, rng)
    dy = rng.standard_normal((8, 8, 12, 12)).astype(np.float32)
    results = {}
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        first = [ops.conv2d(x, weight, bias, **args), *ops.conv2d_backward(x, weight, dy, **args)]
        second = [ops.conv2d(x, weight, bias, **args), *ops.conv2d_backward(x, weight, dy, **args)]
        for a, b, what in zip(first, second, ["y", "dx", "dweight", "dbias"]):
            assert np.array_equal(a, b), f"{what} differs between two calls on {threads} threads"
        results[threads] = first
    # Different thread counts sum the weight gradient's images in different groupings.
    for a, b, what in zip(results[1], results[2], ["y", "dx", "dweight", "dbias"]):
        assert_close(a, b, FLOAT32_RTOL_REDUCTION, f"{what}: 1 vs 2 threads")


# --- the layer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
        dict(in_channels=4, out_channels=2, kernel_size=(2, 3), stride=(2, 1), dilation=(1, 2), groups=2),
        dict(in_channels=3, out_channels=3, kernel_size=3, groups=3, bias=False),
        dict(in_channels=2, out_channels=5, kernel_size=1),
    ],
)
def test_conv2d_layer_gradcheck(kwargs, rng):
    fastnn.manual_seed(0)
    layer = nn.Conv2d(**kwargs)
    x = rng.standard_normal((2, kwargs["in_channels"], 6, 7))
    assert fastnn.gradcheck(layer, x)


def test_conv2d_layer_init_and_repr():
    fastnn.manual_seed(0)
    layer = nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), groups=2)
    assert layer.weight.shape == (6, 2, 3, 5) and layer.bias.shape == (6,)
    assert layer.weight.dtype == np.float32
    bound = 1 / np.sqrt(2 * 3 * 5)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound  # spread over the whole interval
    assert repr(layer) == "Conv2d(4, 6, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), groups=2)"
    assert repr(nn.Conv2d(1, 2, 3, dilation=2, bias=False)) == (
        "Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), dilation=(2, 2), bias=False)"
    )


def test_conv2d_layer_accumulates_grad_over_two_backwards(rng):
    layer = nn.Conv2d(2, 3, 3, padding=1)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    g = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.backward(g)
    assert_close(layer.weight.grad, 2 * once[0], 1e-6, "weight.grad after two backwards")
    assert_close(layer.bias.grad, 2 * once[1], 1e-6, "bias.grad after two backwards")


def test_conv2d_layer_matches_torch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional test peer")
    layer = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
    peer = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
    with torch.no_grad():
        peer.weight.copy_(torch.from_numpy(layer.weight.data))
        peer.bias.copy_(torch.from_numpy(layer.bias.data))
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = layer(x)
    yt = peer(xt)
    assert_close(y, yt.detach().numpy(), FLOAT32_RTOL_REDUCTION, "y vs torch")
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(g)
    yt.backward(torch.from_numpy(g))
    assert_close(dx, xt.grad.numpy(), FLOAT32_RTOL_REDUCTION, "dx vs torch")
    assert_close(layer.weight.grad, peer.weight.grad.numpy(), FLOAT32_RTOL_REDUCTION, "dweight vs torch")
    assert_close(layer.bias.grad, peer.bias.grad.numpy(), FLOAT32_RTOL_REDUCTION, "dbias vs torch")


# --- bad input --------------------------------------------------------------------------------------


def _x(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


@pytest.mark.parametrize(
    "kwargs, exc, fragments",
    [
        (dict(in_channels=0, out_channels=2, kernel_size=3), ValueError, ["in_channels", "0"]),
        (dict(in_channels=2, out_channels=2, kernel_size=0), ValueError, ["kernel_size", ">= 1"]),
        (dict(in_channels=2, out_channels=2, kernel_size=(3,)), TypeError, ["kernel_size"]),
        (dict(in_channels=2, out_channels=2, kernel_size=3, stride=0), ValueError, ["stride"]),
        (dict(in_channels=2, out_channels=2, kernel_size=3, padding=-1), ValueError, ["padding", ">= 0"]),
        (dict(in_channels=2, out_channels=2, kernel_size=3, dilation=(1, 0)), ValueError, ["dilation"]),
        (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4), ValueError,
         ["'groups' (4) must divide", "'out_channels' (6)"]),
        (dict(in_channels=3, out_channels=6, kernel_size=3, groups=2), ValueError,
         ["'groups' (2) must divide", "'in_channels' (3)"]),
        # A wrong type is a TypeError, as in the ops; only values are ValueErrors.
        (dict(in_channels=2, out_channels=2.0, kernel_size=3), TypeError, ["'out_channels'", "must be an int"]),
        (dict(in_channels=True, out_channels=2, kernel_size=3), TypeError, ["'in_channels'", "must be an int"]),
        (dict(in_channels=2, out_channels=2, kernel_size=3, groups=1.0), TypeError, ["'groups'", "must be an int"]),
        (dict(in_channels=2, out_channels=0, kernel_size=3), ValueError, ["'out_channels' (0)", ">= 1"]),
    ],
)
def test_conv2d_layer_rejects_bad_arguments(kwargs, exc, fragments):
    with pytest.raises(exc) as info:
        nn.Conv2d(**kwargs)
    for fragment in ["fastnn.nn.Conv2d", *fragments]:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


@pytest.mark.parametrize(
    "kwargs",
    [dict(stride=(1, 0)), dict(padding=(0, -2)), dict(dilation=0), dict(groups=0), dict(groups=-3)],
)
def test_conv2d_layer_and_op_state_one_rule(kwargs):
    """The layer's construction check and the op's call check are one C++ rule
    (Conv2dShape::validate_params): the same words after the caller's name."""
    with pytest.raises(ValueError) as layer_error:
        nn.Conv2d(4, 6, 3, **kwargs)
    with pytest.raises(ValueError) as op_error:
        ops.conv2d(_x(2, 4, 6, 6), _x(6, 4, 3, 3), **kwargs)
    layer_text, op_text = str(layer_error.value), str(op_error.value)
    assert layer_text.startswith("fastnn.nn.Conv2d: ") and op_text.startswith("fastnn.conv2d: ")
    assert layer_text.split(": ", 1)[1] == op_text.split(": ", 1)[1]


def test_conv2d_check_params_binding_names_the_caller():
    _cpu.conv2d_check_params("nn.Conv2d", 4, 6, (3, 3), (1, 1), (0, 0), (1, 1), 2)
    with pytest.raises(ValueError, match=r"^fastnn\.nn\.Conv2d: argument 'kernel_size' must be >= 1; got \(3, 0\)$"):
        _cpu.conv2d_check_params("nn.Conv2d", 4, 6, (3, 0), (1, 1), (0, 0), (1, 1), 1)


@pytest.mark.parametrize(
    "x, fragments",
    [
        (_x(3, 6, 6), ["4-D (N, 3, H, W)", "(3, 6, 6)"]),
        (_x(2, 4, 6, 6), ["(N, 3, H, W)", "(2, 4, 6, 6)"]),
        (_x(2, 3, 2, 6), ["fastnn.conv2d", "padded input (2, 6)"]),
    ],
)
def test_conv2d_layer_rejects_bad_input(x, fragments):
    layer = nn.Conv2d(3, 2, 3)
    with pytest.raises(ValueError) as info:
        layer(x)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_conv2d_layer_backward_before_forward():
    with pytest.raises(RuntimeError, match="Conv2d.backward called before forward"):
        nn.Conv2d(1, 1, 1).backward(_x(1, 1, 1, 1))
