"""nn.MultiHead and nn.MultiHeadLoss: the heads' outputs and summed input gradient against
fastnn.reference, finite differences of the whole (trunk, heads, loss) chain, unknown targets
(-1) and every bad argument.

Tolerances: float64 runs compare with the float64 reference to 1e-12 (FLOAT64_RTOL: the same
sums in another order); float32 runs to FLOAT32_RTOL_REDUCTION (the input gradient sums over
the heads' outputs and the loss over the batch). Finite differences in float64 with eps 1e-6
are accurate to about 1e-9 for these smooth functions, so they are held to rtol 1e-5 / atol 1e-8.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLOAT32_RTOL_REDUCTION, FLOAT64_RTOL, assert_close

import fastnn
from fastnn import nn, optim
from fastnn import reference as ref


def _heads(features: int, dtype=np.float64) -> nn.MultiHead:
    fastnn.manual_seed(0)
    heads = nn.MultiHead({"smiling": nn.Linear(features, 1), "hair": nn.Linear(features, 4),
                          "glasses": nn.Linear(features, 1)})
    for p in heads.parameters():
        p.data = p.data.astype(dtype)
    return heads


SPEC = {"smiling": "binary", "hair": 4, "glasses": "binary"}


def _reference_loss(logits: dict, targets: np.ndarray, weights: dict) -> tuple[float, dict]:
    """The weighted sum of per-head reference losses over each head's known rows, and the
    gradients scattered back (zero on unknown rows)."""
    total, grads = 0.0, {}
    for column, (name, kind) in enumerate(SPEC.items()):
        values = targets[:, column]
        known = values != -1
        grad = np.zeros(logits[name].shape)
        if known.any():
            if kind == "binary":
                loss, g = ref.bce_with_logits(logits[name][known], values[known].reshape(-1, 1))
            else:
                loss, g = ref.softmax_cross_entropy(logits[name][known], values[known].astype(np.int64))
            grad[known] = g
            total += weights[name] * loss
        grads[name] = weights[name] * grad
    return total, grads


def _targets(rng: np.random.Generator, n: int, unknown_binary: bool) -> np.ndarray:
    targets = np.stack([rng.integers(0, 2, n), rng.integers(0, 4, n), rng.integers(0, 2, n)], axis=1).astype(np.float64)
    targets[rng.random(n) < 0.3, 1] = -1  # multiclass gaps: selected away by MultiHeadLoss itself
    if unknown_binary:
        targets[rng.random(n) < 0.3, 0] = -1
    return targets


@pytest.mark.parametrize("n,features", [(1, 3), (7, 5), (33, 17)])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, FLOAT64_RTOL), (np.float32, FLOAT32_RTOL_REDUCTION)])
def test_multihead_forward_backward_match_the_reference(n, features, dtype, rtol):
    rng = np.random.default_rng(n)
    heads = _heads(features, dtype)
    x = rng.standard_normal((n, features)).astype(dtype)
    out = heads(x)
    assert list(out) == ["smiling", "hair", "glasses"]
    grads = {name: rng.standard_normal(y.shape).astype(dtype) for name, y in out.items()}
    dx = heads.backward(grads)
    expected_dx = np.zeros((n, features))
    for name in heads.names:
        layer = heads[name]
        assert_close(out[name], ref.linear(x, layer.weight.data, layer.bias.data), rtol, f"{name} output")
        head_dx, dweight, dbias = ref.linear_backward(x, layer.weight.data, grads[name])
        expected_dx += head_dx
        assert_close(layer.weight.grad, dweight, rtol, f"{name} dweight")
        assert_close(layer.bias.grad, dbias, rtol, f"{name} dbias")
    assert_close(dx, expected_dx, rtol, "dx: the sum of the heads' input gradients")


class _Concatenated(nn.Module):
    """The MultiHead's outputs side by side, so fastnn.gradcheck (array in, array out) can
    check it; backward splits the gradient back into the dict MultiHead takes."""

    def __init__(self, heads: nn.MultiHead) -> None:
        super().__init__()
        self.heads = heads
        self._widths: list[tuple[str, int]] = []

    def forward(self, x):
        out = self.heads(x)
        self._widths = [(name, y.shape[1]) for name, y in out.items()]
        return np.concatenate(list(out.values()), axis=1)

    def backward(self, grad_out):
        splits = np.cumsum([w for _, w in self._widths])[:-1]
        parts = [np.ascontiguousarray(g) for g in np.split(grad_out, splits, axis=1)]
        return self.heads.backward(dict(zip([n for n, _ in self._widths], parts)))


def test_multihead_gradcheck_through_a_trunk():
    # Identity as a head too: its backward hands back the caller's own gradient, which the sum
    # must not write into.
    fastnn.manual_seed(1)
    heads = nn.MultiHead({"a": nn.Linear(4, 1), "b": nn.Linear(4, 3), "same": nn.Identity()})
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), _Concatenated(heads))
    x = np.random.default_rng(2).standard_normal((3, 5))
    assert fastnn.gradcheck(model, x, rtol=1e-5, atol=1e-8)


def test_identity_head_gradient_is_not_overwritten():
    heads = nn.MultiHead({"same": nn.Identity(), "also": nn.Identity()})
    g = {"same": np.ones((2, 3)), "also": np.full((2, 3), 2.0)}
    dx = heads.backward(g)
    np.testing.assert_array_equal(dx, np.full((2, 3), 3.0))
    np.testing.assert_array_equal(g["same"], np.ones((2, 3)))  # the caller's array untouched


@pytest.mark.parametrize("n", [1, 9, 40])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, FLOAT64_RTOL), (np.float32, FLOAT32_RTOL_REDUCTION)])
def test_multihead_loss_matches_the_reference(n, dtype, rtol):
    rng = np.random.default_rng(n)
    logits = {"smiling": rng.standard_normal((n, 1)), "hair": 3 * rng.standard_normal((n, 4)),
              "glasses": rng.standard_normal((n, 1))}
    targets = _targets(rng, n, unknown_binary=False)
    weights = {"smiling": 1.0, "hair": 2.5, "glasses": 0.5}
    loss_fn = nn.MultiHeadLoss(SPEC, weights)
    loss = loss_fn({k: v.astype(dtype) for k, v in logits.items()}, targets.astype(np.float32))
    expected, expected_grads = _reference_loss(logits, targets, weights)
    assert loss == pytest.approx(expected, rel=rtol, abs=rtol)
    grads = loss_fn.backward()
    for name in SPEC:
        assert grads[name].dtype == dtype
        assert_close(grads[name], expected_grads[name], rtol, name)
    known_hair = int((targets[:, 1] != -1).sum())
    assert loss_fn.last_known == {"smiling": n, "hair": known_hair, "glasses": n}
    assert set(loss_fn.last_losses) == set(SPEC)


def test_multihead_loss_gradcheck():
    # Central differences of the loss itself, in float64, against backward().
    rng = np.random.default_rng(5)
    logits = {"smiling": rng.standard_normal((6, 1)), "hair": rng.standard_normal((6, 4)),
              "glasses": rng.standard_normal((6, 1))}
    targets = _targets(rng, 6, unknown_binary=False)
    loss_fn = nn.MultiHeadLoss(SPEC, {"smiling": 0.7, "hair": 1.3, "glasses": 2.0})
    loss_fn(logits, targets)
    analytic = loss_fn.backward()
    eps = 1e-6
    for name, array in logits.items():
        for index in np.ndindex(array.shape):
            old = array[index]
            array[index] = old + eps
            plus = loss_fn(logits, targets)
            array[index] = old - eps
            minus = loss_fn(logits, targets)
            array[index] = old
            numerical = (plus - minus) / (2 * eps)
            assert abs(analytic[name][index] - numerical) <= 1e-8 + 1e-5 * abs(numerical), (name, index)


def test_the_reference_of_the_loss_matches_finite_differences():
    # The test's own reference (known rows, scattered gradient) against central differences.
    rng = np.random.default_rng(6)
    logits = {"smiling": rng.standard_normal((5, 1)), "hair": rng.standard_normal((5, 4)),
              "glasses": rng.standard_normal((5, 1))}
    targets = _targets(rng, 5, unknown_binary=True)
    weights = {"smiling": 1.0, "hair": 1.0, "glasses": 3.0}
    _, grads = _reference_loss(logits, targets, weights)
    eps = 1e-6
    for name, array in logits.items():
        for index in np.ndindex(array.shape):
            old = array[index]
            array[index] = old + eps
            plus = _reference_loss(logits, targets, weights)[0]
            array[index] = old - eps
            minus = _reference_loss(logits, targets, weights)[0]
            array[index] = old
            assert grads[name][index] == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-8)


def test_unknown_binary_targets_add_no_loss_and_no_gradient():
    rng = np.random.default_rng(7)
    logits = {"smiling": rng.standard_normal((12, 1)), "hair": rng.standard_normal((12, 4)),
              "glasses": rng.standard_normal((12, 1))}
    targets = _targets(rng, 12, unknown_binary=True)
    weights = dict.fromkeys(SPEC, 1.0)
    loss_fn = nn.MultiHeadLoss(SPEC)
    loss = loss_fn(logits, targets)
    expected, expected_grads = _reference_loss(logits, targets, weights)
    assert loss == pytest.approx(expected, rel=FLOAT64_RTOL)
    grads = loss_fn.backward()
    for name in SPEC:
        assert_close(grads[name], expected_grads[name], FLOAT64_RTOL, name)
    assert not grads["smiling"][targets[:, 0] == -1].any()


def test_a_head_with_only_unknown_targets_contributes_nothing():
    rng = np.random.default_rng(8)
    logits = {"smiling": rng.standard_normal((4, 1)), "hair": rng.standard_normal((4, 4)),
              "glasses": rng.standard_normal((4, 1))}
    targets = np.array([[1, -1, -1], [0, -1, -1], [1, -1, -1], [0, -1, -1]], dtype=np.float32)
    loss_fn = nn.MultiHeadLoss(SPEC)
    loss = loss_fn(logits, targets)
    assert loss == pytest.approx(ref.bce_with_logits(logits["smiling"], targets[:, :1])[0], rel=FLOAT64_RTOL)
    grads = loss_fn.backward(2.0)
    assert not grads["hair"].any() and not grads["glasses"].any() and grads["hair"].shape == (4, 4)
    assert loss_fn.last_known == {"smiling": 4, "hair": 0, "glasses": 0}
    assert loss_fn.last_losses["hair"] == 0.0


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_an_empty_batch_gives_empty_outputs_and_a_nan_loss(mode):
    # The house rule for a batch of 0 (tests/test_empty_batch.py): empty outputs and
    # gradients of the right shapes, and NaN for the loss, the mean of nothing.
    heads = _heads(5, np.float32).train(mode == "train")
    out = heads(np.zeros((0, 5), np.float32))
    assert {k: v.shape for k, v in out.items()} == {"smiling": (0, 1), "hair": (0, 4), "glasses": (0, 1)}
    loss_fn = nn.MultiHeadLoss(SPEC)
    assert np.isnan(loss_fn(out, np.zeros((0, 3), np.float32)))
    grads = loss_fn.backward()
    assert {k: (g.shape, g.dtype) for k, g in grads.items()} == {k: (v.shape, np.float32) for k, v in out.items()}
    dx = heads.backward(grads)
    assert dx.shape == (0, 5) and dx.dtype == np.float32


def test_integer_targets_as_the_loader_batches_them():
    rng = np.random.default_rng(9)
    logits = {"smiling": rng.standard_normal((8, 1)).astype(np.float32),
              "hair": rng.standard_normal((8, 4)).astype(np.float32),
              "glasses": rng.standard_normal((8, 1)).astype(np.float32)}
    targets = _targets(rng, 8, unknown_binary=False)
    loss_fn = nn.MultiHeadLoss(SPEC)
    as_float = loss_fn(logits, targets.astype(np.float32))
    as_int = loss_fn(logits, targets.astype(np.int64))
    assert as_int == as_float


def test_multihead_trains_inside_sequential():
    # Memorise one batch through a shared trunk: the summed loss must fall well below its start.
    fastnn.manual_seed(0)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    targets = _targets(rng, 16, unknown_binary=False).astype(np.float32)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(),
                          nn.MultiHead({"smiling": nn.Linear(32, 1), "hair": nn.Linear(32, 4),
                                        "glasses": nn.Linear(32, 1)}))
    loss_fn = nn.MultiHeadLoss(SPEC)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        losses.append(loss_fn(model(x), targets))
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
    assert losses[-1] < 0.3 * losses[0]
    opt.zero_grad()
    loss_fn(model(x), targets)
    model.backward_params(loss_fn.backward())  # the training step's parameter-only backward
    assert all(p.grad is not None and p.grad.any() for p in model.parameters())


def test_multihead_state_modes_copies_and_summary():
    heads = _heads(3, np.float32)
    model = nn.Sequential(nn.Linear(2, 3), heads)
    keys = list(model.state_dict())
    assert keys == ["0.weight", "0.bias", "1.smiling.weight", "1.smiling.bias", "1.hair.weight", "1.hair.bias",
                    "1.glasses.weight", "1.glasses.bias"]
    other = nn.Sequential(nn.Linear(2, 3), _heads(3, np.float32))
    for p in other.parameters():
        p.data = p.data + 1
    other.load_state_dict(model.state_dict())
    for a, b in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert model.to("cpu") is model
    model.eval()
    assert not heads["hair"].training
    text = model.summary((2,), print_fn=None)
    assert "MultiHead" in text and f"Total params: {model.num_parameters():,}" in text
    assert len(heads) == 3 and list(heads) == ["smiling", "hair", "glasses"]
    assert "smiling, hair, glasses" in repr(heads)


def test_a_head_named_like_a_method_does_not_shadow_it():
    heads = nn.MultiHead({"forward": nn.Identity(), "train": nn.Identity()})
    assert set(heads(np.ones((1, 2)))) == {"forward", "train"}
    heads.train()


@pytest.mark.parametrize("call,error,fragment", [
    (lambda: nn.MultiHead({}), ValueError, "argument 'heads' must be a non-empty dict"),
    (lambda: nn.MultiHead({"a.b": nn.Identity()}), ValueError, "without '.'"),
    (lambda: nn.MultiHead({"a": 3}), TypeError, "head 'a' must be a Module; got int"),
    (lambda: nn.MultiHead({"a": nn.Identity()}).backward({"b": np.ones(1)}), ValueError,
     "missing ['a'], unexpected ['b']"),
    (lambda: nn.MultiHead({"a": nn.Identity()}).backward(np.ones(1)), TypeError, "must be a dict"),
    (lambda: nn.MultiHeadLoss({"a": "multi"}), ValueError, "'binary' or a class count >= 2; got 'multi'"),
    (lambda: nn.MultiHeadLoss({"a": 1}), ValueError, "got 1 for head 'a'"),
    (lambda: nn.MultiHeadLoss({"a": True}), ValueError, "got True for head 'a'"),
    (lambda: nn.MultiHeadLoss({"a": 3}, {"b": 1.0}), ValueError, "missing ['a'], unexpected ['b']"),
    (lambda: nn.MultiHeadLoss({"a": 3}, {"a": -1.0}), ValueError, "finite numbers >= 0; got -1.0"),
    (lambda: nn.MultiHeadLoss({"a": 3})({"b": np.zeros((2, 3))}, np.zeros((2, 1))), ValueError,
     "argument 'outputs' must have one entry per head"),
    (lambda: nn.MultiHeadLoss({"a": 3})({"a": np.zeros((2, 3))}, np.zeros((2, 2))), ValueError,
     "argument 'targets' must be a real array of shape (2, 1)"),
    (lambda: nn.MultiHeadLoss({"a": 3})({"a": np.zeros((2, 3))}, np.array([["x"], ["y"]])), ValueError,
     "dtype <U1"),
    (lambda: nn.MultiHeadLoss({"a": 3})({"a": np.zeros((2, 2))}, np.zeros((2, 1))), ValueError,
     "head 'a' must output shape (2, 3) (3 classes); got (2, 2)"),
    (lambda: nn.MultiHeadLoss({"a": "binary"})({"a": np.zeros((2, 3))}, np.zeros((2, 1))), ValueError,
     "head 'a' must output shape (2, 1) (binary: 1 logit)"),
    (lambda: nn.MultiHeadLoss({"a": 3})({"a": np.zeros((2, 3))}, np.array([[0.0], [3.0]])), ValueError,
     "head 'a': targets must hold class ids in [0, 3) or -1 (unknown) in column 'a'; got 3.0 in row 1"),
    (lambda: nn.MultiHeadLoss({"a": 3})({"a": np.zeros((2, 3))}, np.array([[0.5], [1.0]])), ValueError,
     "got 0.5 in row 0"),
    (lambda: nn.MultiHeadLoss({"a": 3})({"a": np.zeros((2, 3))}, np.array([[-2], [1]])), ValueError,
     "got -2 in row 0"),
    (lambda: nn.MultiHeadLoss({"a": "binary"})({"a": np.zeros((2, 1))}, np.array([[0.0], [2.0]])), ValueError,
     "head 'a': "),
    (lambda: nn.MultiHeadLoss({"a": 3}).backward(), RuntimeError, "called before the loss was computed"),
])
def test_bad_arguments_are_named(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)
