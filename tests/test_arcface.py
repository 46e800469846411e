"""Row L2 normalisation and the ArcFace loss: what the op registry (tests/opinfo_arcface.py:
kernels against the reference on random inputs, float32 and float64, both backends, bad input)
does not cover. The reference against finite differences, both thread paths, accumulation into
weight_grad, the theta + m > pi branch, a direct PyTorch formulation of ArcFace, and the layers
(gradcheck, parameters, logits, empty batches, bad arguments, moving to the GPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from conftest import numerical_grad
from fastnn import cuda, nn, ops
from fastnn import reference as ref
from fastnn.gradcheck import gradcheck
from fastnn.reference.arcface import arcface_target


def _arcface_case(rng, n=6, d=5, c=4, dtype=np.float64):
    e = (rng.standard_normal((n, d)) * rng.uniform(0.5, 3.0, size=(n, 1))).astype(dtype)
    w = rng.standard_normal((c, d)).astype(dtype)
    return e, w, rng.integers(0, c, size=n)


def _opposite_case(rng, n=7, d=6, c=4, noise=0.05):
    """Each embedding almost opposite its class centre: every target angle is near pi."""
    w = rng.standard_normal((c, d))
    labels = rng.integers(0, c, size=n)
    return -w[labels] + noise * rng.standard_normal((n, d)), w, labels


def _target_cosines(e, w, labels):
    cos = ref.l2_normalize(e) @ ref.l2_normalize(w).T
    return cos[np.arange(len(labels)), labels]


# ---- the reference against finite differences (float64) --------------------------------------


def test_l2_normalize_reference_gradient_matches_finite_differences(rng):
    x = rng.standard_normal((5, 7))
    x[2] *= 1e-3  # below eps = 0.05: the dy / eps branch
    g = rng.standard_normal(x.shape)
    eps = 0.05
    want = numerical_grad(lambda v: float(np.sum(g * ref.l2_normalize(v, eps))), x)
    # Central differences of a smooth function at step 1e-6: error ~1e-9 relative.
    np.testing.assert_allclose(ref.l2_normalize_backward(g, x, eps), want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("scale, margin", [(64.0, 0.5), (16.0, 0.3), (8.0, 1.2), (30.0, 0.0)])
def test_arcface_reference_gradients_match_finite_differences(rng, scale, margin):
    e, w, labels = _arcface_case(rng)
    # Keep away from the margin rule's switch at cos = cos(pi - m) (a jump) and from |cos| = 1.
    cos = _target_cosines(e, w, labels)
    assert np.all(np.abs(cos - math.cos(math.pi - margin)) > 1e-3) and np.all(np.abs(cos) < 0.999)
    loss, de, dw = ref.arcface_loss(e, w, labels, scale, margin)
    num_e = numerical_grad(lambda v: ref.arcface_loss(v, w, labels, scale, margin)[0], e)
    num_w = numerical_grad(lambda v: ref.arcface_loss(e, v, labels, scale, margin)[0], w)
    # Step 1e-6 on logits up to s = 64: truncation s^3 * 1e-12 and rounding 1e-16 / 1e-6 * s.
    np.testing.assert_allclose(de, num_e, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dw, num_w, rtol=1e-5, atol=1e-7)


def test_arcface_reference_gradients_past_pi_match_finite_differences(rng):
    e, w, labels = _opposite_case(rng)
    margin = 0.5
    assert np.all(_target_cosines(e, w, labels) < math.cos(math.pi - margin) - 1e-3)
    _, de, dw = ref.arcface_loss(e, w, labels, 16.0, margin)
    np.testing.assert_allclose(de, numerical_grad(lambda v: ref.arcface_loss(v, w, labels, 16.0, margin)[0], e),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dw, numerical_grad(lambda v: ref.arcface_loss(e, v, labels, 16.0, margin)[0], w),
                               rtol=1e-5, atol=1e-7)


def test_margin_is_the_angle_plus_m_until_pi_then_insightfaces_line():
    margin = 0.5
    theta = np.linspace(0.01, math.pi - 0.01, 400)
    value, derivative = arcface_target(np.cos(theta), margin)
    inside = theta + margin < math.pi
    # cos(theta + m) written through the angle, not through the kernel's cos/sin product.
    np.testing.assert_allclose(value[inside], np.cos(theta[inside] + margin), atol=1e-12)
    np.testing.assert_allclose(derivative[inside], np.sin(theta[inside] + margin) / np.sin(theta[inside]), rtol=1e-9)
    # Past pi (easy_margin=False): insightface's cos - sin(pi - m) * m, slope 1, still falling
    # as theta grows, and below the value at the switch from the left.
    past = ~inside
    assert past.sum() > 10
    np.testing.assert_allclose(value[past], np.cos(theta[past]) - math.sin(math.pi - margin) * margin, atol=1e-12)
    assert np.all(derivative[past] == 1.0) and np.all(np.diff(value[past]) < 0)
    assert value[past].max() < -1.0


# ---- the kernels: both thread paths, accumulation, the branch past pi --------------------------


@pytest.fixture
def threads():
    before = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_thread_paths_agree_with_the_reference_and_each_other(rng, threads, dtype):
    # Large enough for threads_for to give 2 threads on the row passes (N * C and N * D
    # past 2 x 16384) and for the GEMMs to split.
    e, w, labels = _arcface_case(rng, n=300, d=128, c=200, dtype=dtype)
    x = e
    g = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for n in (1, 2):
        threads(n)
        dw = np.zeros_like(w)
        loss, de = ops.arcface_loss(e, w, labels, 30.0, 0.5, weight_grad=dw)
        results.append((loss, de, dw, ops.l2_normalize(x), ops.l2_normalize_backward(g, x)))
    # Rows are split by a fixed rule and each row summed in order; the GEMM is bitwise the same
    # for any thread count: identical results.
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    loss_ref, de_ref, dw_ref = ref.arcface_loss(e, w, labels, 30.0, 0.5)
    tol = 1e-4 if dtype == np.float32 else 1e-12  # as the registry's ARCFACE_GRAD / float64
    assert abs(results[0][0] - loss_ref) <= tol * abs(loss_ref)
    for got, want in ((results[0][1], de_ref), (results[0][2], dw_ref),
                      (results[0][3], ref.l2_normalize(x)), (results[0][4], ref.l2_normalize_backward(g, x))):
        assert np.linalg.norm(got - want) <= tol * np.linalg.norm(want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_grad_accumulates_and_embeddings_grad_is_written(rng, dtype):
    e, w, labels = _arcface_case(rng, n=9, d=17, c=7, dtype=dtype)
    prior = rng.standard_normal(w.shape).astype(dtype)
    weight_grad = prior.copy()
    loss, de = ops.arcface_loss(e, w, labels, weight_grad=weight_grad)
    _, de_ref, dw_ref = ref.arcface_loss(e, w, labels)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert np.linalg.norm(weight_grad - (prior + dw_ref)) <= tol * np.linalg.norm(prior + dw_ref)
    assert np.linalg.norm(de - de_ref) <= tol * np.linalg.norm(de_ref)
    # Without weight_grad the weight's gradient is not computed; the loss and de are the same.
    loss2, de2 = ops.arcface_loss(e, w, labels)
    assert loss2 == loss and np.array_equal(de2, de)


def test_target_past_pi_takes_the_linear_branch_in_the_kernel(rng):
    e, w, labels = _opposite_case(rng, n=9, d=24, c=5)
    margin, scale = 0.5, 64.0
    cos = _target_cosines(e, w, labels)
    assert np.all(cos < math.cos(math.pi - margin))  # every target past the switch
    dw = np.zeros_like(w)
    loss, de = ops.arcface_loss(e, w, labels, scale, margin, weight_grad=dw)
    loss_ref, de_ref, dw_ref = ref.arcface_loss(e, w, labels, scale, margin)
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    np.testing.assert_allclose(de, de_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-9, atol=1e-12)
    # The loss there is the linear branch's, not cos(theta + m)'s (which would be wrong: it rises
    # again past pi): the two differ by far more than the tolerance.
    rows = np.arange(len(labels))
    other = ref.l2_normalize(e) @ ref.l2_normalize(w).T
    other[rows, labels] = np.cos(np.arccos(cos) + margin)
    wrong, _ = ref.softmax_cross_entropy(scale * other, labels)
    assert abs(wrong - loss) > 1.0


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32])
def test_bad_label_leaves_weight_grad_alone(rng, label_dtype):
    e, w, _ = _arcface_case(rng, n=3, d=4, c=3, dtype=np.float32)
    weight_grad = np.full_like(w, 7.0)
    with pytest.raises(ValueError, match=r"fastnn.arcface_loss: argument 'labels' must lie in \[0, 3\) for 3 "
                                         r"classes; got labels\[1\] = 3"):
        ops.arcface_loss(e, w, np.array([0, 3, 1], label_dtype), weight_grad=weight_grad)
    assert np.all(weight_grad == 7.0)


def test_zero_rows_stay_finite(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x[1] = 0
    y = ops.l2_normalize(x)
    assert np.all(y[1] == 0) and np.all(np.isfinite(ops.l2_normalize_backward(np.ones_like(x), x)))
    w = rng.standard_normal((2, 4)).astype(np.float32)
    w[0] = 0  # a class centre of zeros: cosines of 0 against it, finite gradients
    dw = np.zeros_like(w)
    loss, de = ops.arcface_loss(x, w, np.array([0, 1, 0]), weight_grad=dw)
    assert np.isfinite(loss) and np.all(np.isfinite(de)) and np.all(np.isfinite(dw))


# ---- against PyTorch ----------------------------------------------------------------------------


def _torch_arcface(torch, e, w, labels, s, m):
    """ArcFace as insightface's ArcMarginProduct writes it (easy_margin=False), in float64."""
    F = torch.nn.functional
    cos_m, sin_m = math.cos(m), math.sin(m)
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
    cosine = F.linear(F.normalize(e), F.normalize(w))
    sine = torch.sqrt((1.0 - cosine.pow(2)).clamp(0, 1))
    phi = cosine * cos_m - sine * sin_m
    phi = torch.where(cosine > th, phi, cosine - mm)
    one_hot = torch.zeros_like(cosine).scatter_(1, labels.view(-1, 1), 1.0)
    logits = s * (one_hot * phi + (1.0 - one_hot) * cosine)
    return F.cross_entropy(logits, labels)


@pytest.mark.parametrize("case", ["random", "past pi"])
def test_matches_a_direct_pytorch_formulation(rng, case):
    torch = pytest.importorskip("torch")
    e, w, labels = _arcface_case(rng, n=11, d=16, c=9) if case == "random" else _opposite_case(rng, n=11, d=16, c=9)
    s, m = 64.0, 0.5
    te = torch.tensor(e, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tloss = _torch_arcface(torch, te, tw, torch.tensor(labels), s, m)
    tloss.backward()
    dw = np.zeros_like(w)
    loss, de = ops.arcface_loss(e, w, labels, s, m, weight_grad=dw)
    # float64 on both sides; PyTorch forms sin through 1 - cos^2 for every column: 1e-10.
    assert loss == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(de, te.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_l2_normalize_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 5))
    x[2] = 0
    tx = torch.tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape)
    ty = torch.nn.functional.normalize(tx, dim=1)
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ops.l2_normalize(x), ty.detach().numpy(), rtol=1e-14, atol=1e-300)
    # PyTorch's zero row: 0 / eps forward and dy / eps backward, as here.
    np.testing.assert_allclose(ops.l2_normalize_backward(g, x), tx.grad.numpy(), rtol=1e-10)


# ---- the layers ---------------------------------------------------------------------------------


class _WithLabels(nn.Module):
    """ArcFaceLoss with its labels bound, so that gradcheck can call it on embeddings alone."""

    def __init__(self, loss: nn.ArcFaceLoss, labels: np.ndarray) -> None:
        super().__init__()
        self.loss, self.labels = loss, labels

    def forward(self, x):
        return np.asarray(self.loss(x, self.labels))

    def backward(self, grad_out):
        return self.loss.backward(float(grad_out))


def test_layers_pass_gradcheck(rng):
    fastnn.manual_seed(0)
    x = rng.standard_normal((5, 6))
    assert gradcheck(nn.L2Normalize(), x)
    loss = nn.ArcFaceLoss(6, 4, s=16.0, m=0.3)
    assert gradcheck(_WithLabels(loss, rng.integers(0, 4, size=5)), x)


def test_arcface_layer(rng):
    fastnn.manual_seed(3)
    loss_fn = nn.ArcFaceLoss(8, 5)
    assert list(loss_fn.parameters()) == [loss_fn.weight] and loss_fn.weight.shape == (5, 8)
    assert loss_fn.weight.dtype == np.float32
    # Xavier uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out)), from the seeded generator.
    bound = math.sqrt(6.0 / (8 + 5))
    assert np.abs(loss_fn.weight.data).max() <= bound and np.abs(loss_fn.weight.data).max() > 0.5 * bound
    fastnn.manual_seed(3)
    assert np.array_equal(nn.ArcFaceLoss(8, 5).weight.data, loss_fn.weight.data)

    e = rng.standard_normal((6, 8)).astype(np.float32)
    labels = rng.integers(0, 5, size=6)
    value = loss_fn(e, labels)
    want, de_ref, dw_ref = ref.arcface_loss(e, loss_fn.weight.data, labels, 64.0, 0.5)
    assert value == pytest.approx(want, rel=1e-5)
    de = loss_fn.backward()
    np.testing.assert_allclose(de, de_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loss_fn.weight.grad, dw_ref, rtol=1e-4, atol=1e-6)
    loss_fn.backward(0.5)  # adds half again
    np.testing.assert_allclose(loss_fn.weight.grad, 1.5 * dw_ref, rtol=1e-4, atol=1e-6)

    # The plain scaled cosines, no margin: s * e_hat w_hat^T.
    logits = loss_fn.logits(e)
    np.testing.assert_allclose(logits, 64.0 * ref.l2_normalize(e) @ ref.l2_normalize(loss_fn.weight.data).T,
                               rtol=1e-5, atol=1e-5)

    loss_fn.eval()
    assert loss_fn(e, labels) == pytest.approx(want, rel=1e-5)
    with pytest.raises(RuntimeError, match="eval-mode forward computes no gradients"):
        loss_fn.backward()


def test_arcface_layer_rejects_bad_arguments():
    for kwargs, words in (({"s": 0.0}, "argument 's' must be a finite number > 0"),
                          ({"m": 2.0}, "argument 'm' must lie in [0, pi/2)"),
                          ({"eps": -1.0}, "argument 'eps'")):
        with pytest.raises(ValueError) as info:
            nn.ArcFaceLoss(4, 3, **kwargs)
        assert "fastnn.nn.ArcFaceLoss" in str(info.value) and words in str(info.value)
    with pytest.raises(ValueError, match="fastnn.nn.ArcFaceLoss: argument 'num_classes' must be a positive int"):
        nn.ArcFaceLoss(4, 0)
    with pytest.raises(TypeError, match="fastnn.nn.ArcFaceLoss: argument 'm' must be a real number"):
        nn.ArcFaceLoss(4, 3, m="0.5")
    loss_fn = nn.ArcFaceLoss(4, 3)
    with pytest.raises(ValueError, match=r"embeddings must be 2-D \(N, embedding_dim=4\); got shape \(2, 5\)"):
        loss_fn(np.ones((2, 5), np.float32), np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="cast the input to float32"):
        loss_fn(np.ones((2, 4)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="fastnn.nn.L2Normalize: argument 'eps' must be a finite number > 0"):
        nn.L2Normalize(eps=0.0)


def test_empty_batches():
    layer = nn.L2Normalize()
    assert layer(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert layer.backward(np.zeros((0, 4), np.float32)).shape == (0, 4)
    loss_fn = nn.ArcFaceLoss(4, 3)
    assert math.isnan(loss_fn(np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
    assert loss_fn.backward().shape == (0, 4)
    assert np.array_equal(loss_fn.weight.grad, np.zeros((3, 4), np.float32))


@pytest.mark.skipif(cuda.unavailable_reason() is not None, reason=f"needs the CUDA backend: {cuda.unavailable_reason()}")
def test_arcface_layer_moves_to_the_gpu(rng):
    import cupy

    fastnn.manual_seed(1)
    cpu = nn.ArcFaceLoss(16, 7, s=30.0)
    gpu = nn.ArcFaceLoss(16, 7, s=30.0)
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    e = rng.standard_normal((10, 16)).astype(np.float32)
    labels = rng.integers(0, 7, size=10)
    want = cpu(e, labels)
    got = gpu(cupy.asarray(e), cupy.asarray(labels))
    assert got == pytest.approx(want, rel=1e-4)
    np.testing.assert_allclose(gpu.backward().get(), cpu.backward(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu.weight.grad.get(), cpu.weight.grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu.logits(cupy.asarray(e)).get(), cpu.logits(e), rtol=1e-4, atol=1e-4)
