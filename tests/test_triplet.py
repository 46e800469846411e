"""What is the triplet margin loss's own beyond its registry entry (tests/opinfo_triplet.py): the
reference against finite differences, the mining's tie rule on exact distances, a batch without
triplets, one and two threads, PyTorch parity, and the layer nn.TripletMarginLoss."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from conftest import assert_close, numerical_grad
from fastnn import nn, ops
from fastnn import reference as ref
from fastnn.reference.triplet import _batch_hard_triplets, _distances, _positives_negatives

MININGS = ("batch_hard", "all")


def _clustered(rng, n, d, classes, dtype=np.float64, spread=1.5):
    labels = rng.integers(0, classes, size=n)
    centres = rng.standard_normal((classes, d)) * spread
    return (centres[labels] + rng.standard_normal((n, d))).astype(dtype), labels


def _distance_to_kinks(e, labels, margin):
    """How far e is from where the loss is not differentiable: the smallest distance, the
    smallest |hinge| over all triplets, and the smallest gap between an anchor's two farthest
    positives or two closest negatives (a tie there switches batch-hard's triplet)."""
    d = _distances(e)
    positive, negative = _positives_negatives(labels)
    smallest = [d[~np.eye(len(d), dtype=bool)].min()]
    for a in range(len(d)):
        pos, neg = np.sort(d[a, positive[a]]), np.sort(d[a, negative[a]])
        if pos.size and neg.size:
            smallest.append(np.abs(margin + pos[:, None] - neg[None, :]).min())
        smallest += [np.diff(pos[-2:]).min(initial=np.inf), np.diff(neg[:2]).min(initial=np.inf)]
    return min(smallest)


@pytest.mark.parametrize("mining", MININGS)
def test_reference_gradient_matches_finite_differences(mining):
    # Central differences (eps 1e-6) are exact up to ~1e-10 where the loss is smooth: every
    # distance, hinge and batch-hard ranking gap is kept above 1e-3 (the draw is redrawn until
    # it is), so no perturbation crosses a kink; then agreement to 1e-6 proves the backward.
    margin = 0.7
    for seed in range(100):
        e, labels = _clustered(np.random.default_rng(seed), 9, 4, 3, spread=0.8)
        if _distance_to_kinks(e, labels, margin) > 1e-3 and len(set(labels)) > 1:
            break
    else:
        pytest.fail("no draw away from the kinks")
    loss, analytic = ref.triplet_margin_loss(e, labels, margin, mining)
    assert loss > 0 and np.abs(analytic).max() > 0  # a case with active triplets
    numeric = numerical_grad(lambda v: ref.triplet_margin_loss(v, labels, margin, mining)[0], e)
    assert_close(analytic, numeric, 1e-6, f"triplet_margin_loss {mining}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_hard_ties_go_to_the_lower_index(dtype):
    # D = 1 integers: every distance is exact. Anchor 0 (at 0) has positives 1 and 2 both at
    # distance 2 and negatives 3 and 4 both at 5: it must take positive 1 and negative 3.
    e = np.array([[0.0], [2.0], [-2.0], [5.0], [-5.0]], dtype)
    labels = np.array([0, 0, 0, 1, 1])
    margin = 10.0  # every mined triplet active
    mined = [(0, 1, 3), (1, 2, 3), (2, 1, 4), (3, 4, 1), (4, 3, 2)]  # by hand: farthest p, closest n
    x = e[:, 0].astype(np.float64)
    want_loss = np.mean([margin + abs(x[a] - x[p]) - abs(x[a] - x[n]) for a, p, n in mined])
    want_grad = np.zeros_like(x)
    for a, p, n in mined:  # d|x_a - x_j|/dx_a = sign(x_a - x_j)
        sp, sn = np.sign(x[a] - x[p]), np.sign(x[a] - x[n])
        want_grad[a] += (sp - sn) / len(mined)
        want_grad[p] -= sp / len(mined)
        want_grad[n] += sn / len(mined)
    loss, grad = ops.triplet_margin_loss(e, labels, margin, "batch_hard")
    assert loss == pytest.approx(want_loss, rel=1e-6) and want_loss == 12.6
    np.testing.assert_allclose(grad[:, 0], want_grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("labels", [[3, 3, 3, 3], [0, 1, 2, 3], [5]], ids=["one class", "all singletons", "one row"])
def test_no_triplet_gives_zero_loss_and_zero_gradient(mining, labels):
    e = np.random.default_rng(0).standard_normal((len(labels), 3)).astype(np.float32)
    loss, grad = ops.triplet_margin_loss(e, np.array(labels), 1.0, mining)
    assert loss == 0.0 and isinstance(loss, float)
    assert grad.shape == e.shape and not np.any(grad)


@pytest.mark.parametrize("mining, n", [("batch_hard", 520), ("all", 80)])
def test_one_and_two_threads_agree_bitwise(mining, n):
    # Sizes past threads_for's grain (128K units): 520^2 pairs per pass for batch_hard (every
    # pass splits), 80^3 triplet tests for the all-triplet mining pass.
    e, labels = _clustered(np.random.default_rng(5), n, 3, 6, np.float32)
    want_loss, want_grad = ref.triplet_margin_loss(e, labels, 0.5, mining)
    before = fastnn.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            results.append(ops.triplet_margin_loss(e, labels, 0.5, mining))
    finally:
        fastnn.set_num_threads(before)
    (loss1, grad1), (loss2, grad2) = results
    assert loss1 == loss2 and np.array_equal(grad1, grad2)
    # vs the reference: float32 distances, see tests/opinfo_triplet.py's TRIPLET tolerance.
    assert loss1 == pytest.approx(want_loss, rel=1e-4)
    assert_close(grad1, want_grad, 1e-4, f"{mining} float32 gradient")


# ---- PyTorch parity ---------------------------------------------------------------------------


def _torch_loss(e, anchors, positives, negatives, margin):
    """PyTorch's TripletMarginLoss (p = 2, eps = 0: distances with no offset) over the given
    triplets, and its gradient with respect to the embeddings, in float64."""
    torch = pytest.importorskip("torch")
    x = torch.tensor(e, dtype=torch.float64, requires_grad=True)
    index = [torch.as_tensor(np.asarray(i, np.int64)) for i in (anchors, positives, negatives)]
    loss = torch.nn.TripletMarginLoss(margin=margin, p=2, eps=0.0)(*(x[i] for i in index))
    loss.backward()
    return loss.item(), x.grad.numpy()


@pytest.mark.parametrize("margin", [0.1, 1.0, 4.0])
def test_all_mining_equals_pytorch_on_the_enumerated_triplets(margin):
    pytest.importorskip("torch")
    e, labels = _clustered(np.random.default_rng(7), 13, 6, 3)
    e[5] = e[2]  # a duplicate row: distance 0 to it (its gradient is 0 in both)
    labels[5] = labels[2]
    positive, negative = _positives_negatives(labels)
    a, p, n = np.nonzero(positive[:, :, None] & negative[:, None, :])  # every valid triplet
    want_loss, want_grad = _torch_loss(e, a, p, n, margin)
    loss, grad = ops.triplet_margin_loss(e, labels, margin, "all")
    # float64 both; the two form distances differently (a Gram matrix vs a - b), ~1e-15 apart.
    assert loss == pytest.approx(want_loss, rel=1e-10, abs=1e-12)
    assert_close(grad, want_grad, 1e-9, "all-triplet gradient vs PyTorch")


@pytest.mark.parametrize("margin", [0.3, 2.0])
def test_batch_hard_equals_pytorch_on_the_mined_triplets(margin):
    pytest.importorskip("torch")
    e, labels = _clustered(np.random.default_rng(11), 21, 5, 4)
    labels[0] = 99  # a class of one: anchor 0 has no positive and drops out of the mean
    a, p, n = _batch_hard_triplets(_distances(e), labels)
    assert 0 not in a and len(a) == 20
    want_loss, want_grad = _torch_loss(e, a, p, n, margin)
    loss, grad = ops.triplet_margin_loss(e, labels, margin, "batch_hard")
    assert loss == pytest.approx(want_loss, rel=1e-10)
    assert_close(grad, want_grad, 1e-9, "batch-hard gradient vs PyTorch")


# ---- the layer --------------------------------------------------------------------------------


@pytest.mark.parametrize("mining", MININGS)
def test_layer_returns_the_op_and_its_backward_matches_finite_differences(mining):
    e, labels = _clustered(np.random.default_rng(3), 10, 4, 3)
    loss_fn = nn.TripletMarginLoss(margin=0.6, mining=mining)
    loss = loss_fn(e, labels)
    op_loss, op_grad = ops.triplet_margin_loss(e, labels, 0.6, mining)
    assert loss == op_loss
    assert np.array_equal(loss_fn.backward(), op_grad)
    assert np.array_equal(loss_fn.backward(2.0), 2.0 * op_grad)
    # float64 through the CPU kernel; the draw keeps every hinge and gap away from a kink.
    assert _distance_to_kinks(e, labels, 0.6) > 1e-4
    numeric = numerical_grad(lambda v: loss_fn(v, labels), e.copy())
    assert_close(op_grad, numeric, 1e-6, f"nn.TripletMarginLoss({mining!r}).backward")


def test_layer_rejects_bad_hyper_parameters():
    with pytest.raises(ValueError, match=r"fastnn\.nn\.TripletMarginLoss: argument 'margin' must be a finite number > 0; got -0\.5"):
        nn.TripletMarginLoss(margin=-0.5)
    with pytest.raises(ValueError, match=r"argument 'margin' must be a finite number > 0; got inf"):
        nn.TripletMarginLoss(margin=float("inf"))
    with pytest.raises(TypeError, match=r"fastnn\.nn\.TripletMarginLoss: argument 'margin' must be a real number"):
        nn.TripletMarginLoss(margin="1")
    with pytest.raises(ValueError, match=r"fastnn\.nn\.TripletMarginLoss: argument 'mining' must be 'batch_hard' or 'all'; got 'semi_hard'"):
        nn.TripletMarginLoss(mining="semi_hard")
    with pytest.raises(TypeError, match=r"fastnn\.nn\.TripletMarginLoss: argument 'mining' must be a str"):
        nn.TripletMarginLoss(mining=1)


def test_layer_backward_before_forward_and_repr():
    loss_fn = nn.TripletMarginLoss(0.2, "all")
    with pytest.raises(RuntimeError, match="TripletMarginLoss.backward called before"):
        loss_fn.backward()
    assert repr(loss_fn) == "TripletMarginLoss(margin=0.2, mining='all')"
