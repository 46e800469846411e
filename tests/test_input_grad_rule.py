"""The input-gradient rule: the outermost Sequential.backward defers its first weighted layer's
input gradient (a DeferredGradient) and computes it only if used, before an optimiser step or
the next forward changes what it reads; nested Sequentials and layers that cannot defer stay
eager. Values are checked against fastnn.reference (float64) and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

import fastnn
from fastnn import nn, optim, reference
from fastnn.nn import DeferredGradient

# float32 kernels against the float64 reference over sums of at most a few hundred products:
# relative error stays near 1e-6; 1e-5 leaves room without hiding a wrong element.
RTOL = 1e-5


def _counting_backward(layer: nn.Module) -> list[bool]:
    """Records the ``input_grad`` flag of every backward op call of ``layer``."""
    calls: list[bool] = []
    op = type(layer)._backward_op

    def counted(*args, **kwargs):
        calls.append(bool(kwargs.get("input_grad", True)))
        return op(*args, **kwargs)

    layer._backward_op = counted  # an instance attribute: called unbound, like the staticmethod
    return calls


def test_dropped_input_gradient_is_never_computed(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 3))
    first = _counting_backward(model[1])
    x = rng.standard_normal((5, 3, 2, 2)).astype(np.float32)
    model.backward(np.ones_like(model(x)))  # the README's loop: the result is dropped
    model(x)
    assert first == [False]  # the parameter gradients only, never the input gradient


def test_used_input_gradient_matches_reference(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 3))
    x = rng.standard_normal((5, 3, 2, 2)).astype(np.float32)
    y = model(x)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = model.backward(g)
    assert isinstance(dx, DeferredGradient)
    h = np.tanh(reference.linear(x.reshape(5, 12), model[1].weight.data, model[1].bias.data))
    dh = reference.linear_backward(h, model[3].weight.data, g)[0] * (1 - h**2)
    expected = reference.linear_backward(x.reshape(5, 12), model[1].weight.data, dh)[0].reshape(x.shape)
    assert dx.shape == x.shape and dx.dtype == np.float32 and len(dx) == 5
    assert_close(np.asarray(dx), expected, RTOL, "dx")
    assert_close(dx[1], expected[1], RTOL, "dx[1]")
    assert_close(dx * 2.0, 2.0 * expected, RTOL, "dx * 2")  # operators give plain arrays
    assert isinstance(dx + 0, np.ndarray) and isinstance(dx.resolve(), np.ndarray)
    assert_close(np.stack(list(dx)), expected, RTOL, "rows of dx")
    with pytest.raises(ValueError, match="truth value of an array"):  # as NumPy's
        bool(dx)


def test_deferred_gradient_passes_gradcheck_with_conv_first(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(12, 2))
    assert fastnn.gradcheck(model, rng.standard_normal((2, 2, 4, 4)))


def test_optimizer_step_resolves_with_the_weights_before_the_update(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4))
    opt = optim.SGD(model.parameters(), lr=0.5)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    g = rng.standard_normal((3, 4)).astype(np.float32)
    model(x)
    weight_before = model[0].weight.data.copy()
    dx = model.backward(g)
    opt.step()
    assert not np.array_equal(model[0].weight.data, weight_before)
    assert_close(np.asarray(dx), reference.linear_backward(x, weight_before, g)[0], RTOL, "dx after step")


def test_a_hand_written_update_before_the_first_use_leaves_dx_alone(rng):
    # No optimiser to resolve it first: the update writes straight into the weight array.
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2))
    x = rng.standard_normal((3, 6)).astype(np.float32)
    g = rng.standard_normal((3, 2)).astype(np.float32)
    model(x)
    first_weight = model[0].weight.data.copy()
    h = np.tanh(reference.linear(x, first_weight, model[0].bias.data))
    dh = reference.linear_backward(h, model[2].weight.data, g)[0] * (1 - h**2)
    dx = model.backward(g)
    for p in model.parameters():
        p.data -= 0.5 * p.grad
    assert not np.array_equal(model[0].weight.data, first_weight)
    assert_close(np.asarray(dx), reference.linear_backward(x, first_weight, dh)[0], RTOL, "dx after the update")


@pytest.mark.parametrize("write", ["operator", "ufunc out", "array taken"])
def test_other_writes_into_the_weight_before_the_first_use_leave_dx_alone(rng, write):
    """The weight is copied only when handed out; every way of writing into it hands it out
    first: in-place operators on the Parameter, ufuncs with out=, np.asarray."""
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4))
    x = rng.standard_normal((3, 6)).astype(np.float32)
    g = rng.standard_normal((3, 4)).astype(np.float32)
    model(x)
    first_weight = model[0].weight.data.copy()
    dx, dx_kept = model.backward(g), model.backward(g)  # two pending gradients read the weight
    weight = model[0].weight
    if write == "operator":
        weight -= 1.0
    elif write == "ufunc out":
        np.multiply(weight, 3.0, out=weight)
    else:
        np.asarray(weight)[...] = 0.0
    assert not np.array_equal(weight.data, first_weight)
    expected = reference.linear_backward(x, first_weight, g)[0]
    assert_close(np.asarray(dx), expected, RTOL, "dx")
    assert_close(np.asarray(dx_kept), expected, RTOL, "the second dx")


def test_next_forward_resolves_before_the_caches_change(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    x = rng.standard_normal((4, 2, 2, 2)).astype(np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    model(x)
    dx = model.backward(g)
    model(rng.standard_normal((9, 2, 2, 2)).astype(np.float32))  # another batch size: Flatten's cache changes
    assert dx.shape == x.shape
    assert_close(np.asarray(dx), (g.astype(np.float64) @ model[1].weight.data).reshape(x.shape), RTOL, "dx")


def test_nested_and_non_deferrable_models_return_arrays(rng):
    fastnn.manual_seed(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    outer = nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.Linear(4, 2))
    inner = _counting_backward(outer[0][0])
    dx = outer.backward(np.ones_like(outer(x)))
    # A nested Sequential first computes its input gradient at once (it returns a plain array
    # to its caller), so the outer one has nothing left to defer.
    assert type(dx) is np.ndarray and inner == [True]

    class Doubled(nn.Linear):  # a replaced backward: the container cannot know what it needs
        def backward(self, grad_out):
            return 2 * super().backward(grad_out)

    model = nn.Sequential(Doubled(4, 2))
    g = rng.standard_normal((3, 2)).astype(np.float32)
    model(x)
    dx = model.backward(g)
    assert type(dx) is np.ndarray
    assert_close(dx, 2 * reference.linear_backward(x, model[0].weight.data, g)[0], RTOL, "dx")
    batchnorm_first = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2))
    batchnorm_first(x)
    assert type(batchnorm_first.backward(g)) is np.ndarray


def test_unused_deferred_gradient_leaves_nothing_pending(rng):
    from fastnn.nn import deferred

    model = nn.Sequential(nn.Linear(4, 2))
    x = rng.standard_normal((3, 4)).astype(np.float32)
    model(x)
    dx = model.backward(np.ones((3, 2), np.float32))
    assert len(deferred._PENDING_GRADIENTS) == 1
    del dx
    assert len(deferred._PENDING_GRADIENTS) == 0


def test_deferred_gradient_without_forward_raises():
    with pytest.raises(RuntimeError, match="Linear.backward called before forward"):
        nn.Sequential(nn.Linear(2, 2)).backward(np.ones((1, 2), np.float32))


def test_first_weighted_layer_follows_changes_to_the_model(rng):
    # Sequential caches which child is its first with parameters (the one whose input gradient
    # is deferred); replacing or deleting children must move it.
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Tanh(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    x = rng.standard_normal((5, 6)).astype(np.float32)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    model(x)
    model.backward(g)
    model[1].weight.grad = None
    setattr(model, "0", nn.Linear(6, 6))  # now the first child has parameters
    model(x)
    dx = model.backward(g)
    assert model[0].weight.grad is not None and model[1].weight.grad is not None
    h0 = reference.linear(x, model[0].weight.data, model[0].bias.data)
    h1 = reference.linear(h0, model[1].weight.data, model[1].bias.data)
    dh1 = reference.linear_backward(np.maximum(h1, 0), model[3].weight.data, g)[0] * (h1 > 0)
    dh0 = reference.linear_backward(h0, model[1].weight.data, dh1)[0]
    expected = reference.linear_backward(x, model[0].weight.data, dh0)[0]
    assert_close(np.asarray(dx), expected, RTOL, "dx")
    shorter = nn.Sequential(nn.Tanh(), nn.Linear(6, 3))
    shorter(x)
    shorter.backward(g)
    delattr(shorter, "0")  # the Linear is first now: its input gradient is the one deferred
    shorter(x)
    assert isinstance(shorter.backward(g), DeferredGradient)
