"""The optimiser classes against NumPy transcriptions of PyTorch's update rules
(fastnn.reference.optim), over several steps, and their state and argument handling. (Each step
kernel, single- and multi-tensor, against the reference is in tests/opinfo.py.) Elementwise
float32 updates: FLOAT32_RTOL per step, so 5 * FLOAT32_RTOL over several steps (errors do not
compound beyond a few ulps per step)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT32_RTOL, assert_close
from fastnn import nn, optim
from fastnn import reference as ref

RTOL_STEPS = 5 * FLOAT32_RTOL


def _model_and_grads(rng):
    model = nn.Linear(4, 3)
    for p in model.parameters():
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    return model


@pytest.mark.parametrize("cls,kw", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)),
    (optim.Adam, dict(lr=1e-2, weight_decay=1e-3)),
    (optim.AdamW, dict(lr=1e-2)),
])
def test_optimizer_classes_follow_reference(cls, kw, rng):
    model = _model_and_grads(rng)
    params = list(model.parameters())
    start = [p.data.astype(np.float64) for p in params]
    opt = cls(params, **kw)
    for _ in range(3):
        opt.step()
    for p, p0 in zip(params, start):
        g = p.grad
        expected, state = p0, None
        if cls is optim.SGD:
            for t in range(3):
                expected, state = ref.sgd_step(expected, g, state, lr=0.1, momentum=0.9, weight_decay=1e-3,
                                               nesterov=True, first_step=t == 0)
        else:
            fn = ref.adamw_step if cls is optim.AdamW else ref.adam_step
            m = v = np.zeros(p.shape)
            extra = {} if cls is optim.AdamW else {"weight_decay": 1e-3}
            for t in range(1, 4):
                expected, m, v = fn(expected, g, m, v, step=t, lr=1e-2, **extra)
        assert_close(p.data, expected, RTOL_STEPS, f"{cls.__name__} {p.shape}")


def test_optimizer_skips_params_without_grad(rng):
    model = nn.Linear(3, 2)
    before = model.weight.data.copy()
    optim.SGD(model.parameters(), lr=1.0).step()
    np.testing.assert_array_equal(model.weight.data, before)


def test_optimizer_state_dict_round_trip(rng):
    model = _model_and_grads(rng)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    opt.step()
    saved = opt.state_dict()
    twin = nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    for p, q in zip(twin.parameters(), model.parameters()):
        p.grad = q.grad.copy()
    opt2 = optim.Adam(twin.parameters(), lr=5.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 1e-2
    opt.step()
    opt2.step()
    for p, q in zip(twin.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_zero_grad_keeps_arrays(rng):
    model = _model_and_grads(rng)
    opt = optim.SGD(model.parameters(), lr=0.1)
    grad = model.weight.grad
    opt.zero_grad()
    assert model.weight.grad is grad and not grad.any()
    opt.zero_grad(set_to_none=True)
    assert model.weight.grad is None


def _layer_and_input(kind, rng):
    if kind == "linear":
        return nn.Linear(7, 5), rng.standard_normal((6, 7)).astype(np.float32)
    return nn.Conv2d(3, 4, 3, padding=1), rng.standard_normal((2, 3, 5, 6)).astype(np.float32)


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
def test_backward_after_zero_grad_writes_over_the_kept_arrays(kind, rng):
    """zero_grad marks the gradients zero without writing them; the next backward writes its
    gradient over the kept array (old contents, NaN included, ignored), the one after adds."""
    layer, x = _layer_and_input(kind, rng)
    dy = rng.standard_normal(layer(x).shape).astype(np.float32)
    layer.backward(dy)
    fresh = {name: p.grad.copy() for name, p in layer.named_parameters()}
    kept = {name: p.grad for name, p in layer.named_parameters()}
    for p in layer.parameters():
        p.grad.fill(np.nan)  # must not leak into the next gradient
    optim.SGD(layer.parameters(), lr=0.1).zero_grad()
    layer.backward(dy)
    for name, p in layer.named_parameters():
        assert p.grad is kept[name]
        np.testing.assert_array_equal(p.grad, fresh[name])  # same kernel, same order: bit-equal
    layer.backward(dy)
    for name, p in layer.named_parameters():
        assert_close(p.grad, 2 * fresh[name], rtol=FLOAT32_RTOL)


def test_zeroed_weight_gradient_with_a_set_bias_gradient_adds_into_both(rng):
    """After zero_grad, a bias gradient set by hand is kept and added to; the weight's zeros
    are still zeros underneath."""
    layer, x = _layer_and_input("linear", rng)
    dy = rng.standard_normal(layer(x).shape).astype(np.float32)
    layer.backward(dy)
    fresh_w, fresh_b = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.zero_grad()
    layer.bias.grad = np.ones(5, np.float32)
    layer.backward(dy)
    np.testing.assert_array_equal(layer.weight.grad, fresh_w)
    assert_close(layer.bias.grad, 1 + fresh_b, rtol=FLOAT32_RTOL)


def test_reading_a_zeroed_gradient_gives_zeros_and_unused_parameters_stay_zero(rng):
    model = _model_and_grads(rng)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    before = model.weight.data.copy()
    opt.step()  # no backward: every gradient is zero, so the weights stay put
    np.testing.assert_array_equal(model.weight.data, before)
    assert not model.weight.grad.any() and not model.bias.grad.any()


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
def test_backward_op_with_accumulate_false_ignores_the_given_arrays(kind, rng):
    from fastnn import ops

    layer, x = _layer_and_input(kind, rng)
    dy = rng.standard_normal(layer(x).shape).astype(np.float32)
    op = ops.linear_backward if kind == "linear" else ops.conv2d_backward
    kw = {} if kind == "linear" else dict(padding=1)
    _, dw, db = op(x, layer.weight.data, dy, input_grad=False, **kw)
    gw, gb = np.full_like(dw, np.nan), np.full_like(db, np.nan)
    _, dw2, db2 = op(x, layer.weight.data, dy, grad_weight=gw, grad_bias=gb, input_grad=False,
                     accumulate=False, **kw)
    assert dw2 is gw and db2 is gb
    np.testing.assert_array_equal(gw, dw)
    np.testing.assert_array_equal(gb, db)


@pytest.mark.parametrize("cls,kw,arg", [
    (optim.SGD, dict(lr=-1.0), "lr"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "momentum"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "nesterov"),
    (optim.Adam, dict(betas=(0.9, 1.0)), "betas"),
    (optim.AdamW, dict(eps=-1.0), "eps"),
    (optim.Adam, dict(weight_decay=-1.0), "weight_decay"),
])
def test_optimizer_rejects_bad_hyperparameters(cls, kw, arg):
    with pytest.raises(ValueError, match=f"fastnn.optim.{cls.__name__}: argument '{arg}'"):
        cls(nn.Linear(2, 2).parameters(), **kw)


def test_optimizer_rejects_non_parameters():
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


@pytest.mark.parametrize("cls,kw", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    (optim.Adam, dict(lr=1e-2, weight_decay=1e-3)),
])
def test_reused_update_lists_follow_reference_as_gradients_change(cls, kw, rng, monkeypatch):
    # Steps reuse their argument lists while the arrays stay the same objects: each step here
    # changes something they hold (the gradient's values in place, a new gradient array, a
    # parameter that gains its first gradient late), and the result must still be the reference's.
    model = nn.Linear(4, 3)
    weight, bias = model.weight, model.bias
    name = "sgd_step_multi" if cls is optim.SGD else "adam_step_multi"
    calls = []
    real = getattr(optim.optimizer.ops, name)
    monkeypatch.setattr(optim.optimizer.ops, name, lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    opt = cls([weight, bias], **kw)
    expected = {id(p): (p.data.astype(np.float64), None, np.zeros(p.shape), np.zeros(p.shape), 0)
                for p in (weight, bias)}

    def step_and_follow(active):
        opt.step()
        for p in active:
            x, buf, m, v, t = expected[id(p)]
            if cls is optim.SGD:
                x, buf = ref.sgd_step(x, p.grad, buf, lr=0.1, momentum=0.9, weight_decay=1e-3, first_step=buf is None)
            else:
                x, m, v = ref.adam_step(x, p.grad, m, v, step=t + 1, lr=1e-2, weight_decay=1e-3)
            expected[id(p)] = (x, buf, m, v, t + 1)
        for p in (weight, bias):
            assert_close(p.data, expected[id(p)][0], RTOL_STEPS, f"{cls.__name__} {p.shape}")

    weight.grad = rng.standard_normal(weight.shape).astype(np.float32)
    step_and_follow([weight])
    step_and_follow([weight])
    weight.grad[...] = rng.standard_normal(weight.shape)  # same array, new values
    step_and_follow([weight])
    weight.grad = rng.standard_normal(weight.shape).astype(np.float32)  # a new array
    bias.grad = rng.standard_normal(bias.shape).astype(np.float32)  # bias joins at step 4
    step_and_follow([weight, bias])
    step_and_follow([weight, bias])
    # One call per step, but two where the parameters are at different points: SGD's fresh
    # momentum buffer for the bias at step 4, Adam's step counts (weight at 4 and 5, bias at 1
    # and 2) at steps 4 and 5.
    assert calls == ([1, 1, 1, 1, 1, 2] if cls is optim.SGD else [1, 1, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_multi_tensor_updates_split_the_list_like_single_updates(threads, rng):
    # The list's elements are cut into one share per thread, shares crossing tensor boundaries
    # (sizes past the threading grain, odd, with tiny tensors between): every element must get
    # exactly the single-tensor update (elementwise: bitwise), whatever the thread count.
    import fastnn
    from fastnn import ops

    sizes = [70001, 3, 130001, 1, 90017]
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    bufs = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    moments = [np.abs(rng.standard_normal(n)).astype(np.float32) for n in sizes]
    sgd = dict(lr=0.1, momentum=0.9, weight_decay=1e-3)
    adam = dict(step=3, lr=1e-2, weight_decay=1e-3)
    expected_sgd, expected_adam = [], []
    for p, g, b, m in zip(params, grads, bufs, moments):
        p1, b1 = p.copy(), b.copy()
        ops.sgd_step(p1, g, b1, **sgd)
        expected_sgd.append((p1, b1))
        p2, m2, v2 = p.copy(), b.copy(), m.copy()
        ops.adam_step(p2, g, m2, v2, **adam)
        expected_adam.append((p2, m2, v2))
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        sgd_params, sgd_bufs = [p.copy() for p in params], [b.copy() for b in bufs]
        ops.sgd_step_multi(sgd_params, grads, sgd_bufs, **sgd)
        adam_params, adam_m, adam_v = [p.copy() for p in params], [b.copy() for b in bufs], [m.copy() for m in moments]
        ops.adam_step_multi(adam_params, grads, adam_m, adam_v, **adam)
    finally:
        fastnn.set_num_threads(before)
    for i in range(len(sizes)):
        np.testing.assert_array_equal(sgd_params[i], expected_sgd[i][0])
        np.testing.assert_array_equal(sgd_bufs[i], expected_sgd[i][1])
        for got, want in zip((adam_params[i], adam_m[i], adam_v[i]), expected_adam[i]):
            np.testing.assert_array_equal(got, want)
