"""fastnn.models: shapes for each input size, backward of a whole network, bad arguments, and
the issue's end-to-end bar — the default CNN (simple_cnn, as `python -m fastnn train` runs it)
reaches >= 97% test accuracy on the real digits; LeNet-5 trains on random 28x28 data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import fastnn
from fastnn import models, nn, optim
from conftest import require_digits


@pytest.mark.parametrize("build,channels,size", [
    (lambda c, s: models.mlp(c, 10, s), 1, 8),
    (lambda c, s: models.lenet5(c, 10, s), 1, 28),
    (lambda c, s: models.lenet5(c, 10, s), 3, 32),
    (lambda c, s: models.simple_cnn(c, 10, s), 1, 8),
    (lambda c, s: models.simple_cnn(c, 10, s), 3, 32),
    (lambda c, s: models.resnet(20, c, 10, s), 3, 32),
    (lambda c, s: models.resnet(8, c, 10, s), 1, 8),
])
def test_models_forward_backward_shapes(build, channels, size):
    fastnn.manual_seed(0)
    model = build(channels, size)
    x = np.random.default_rng(0).random((2, channels, size, size), dtype=np.float32)
    y = model(x)
    assert y.shape == (2, 10) and np.all(np.isfinite(y))
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_small_resnet_gradcheck():
    # float64 copy, eval mode (BatchNorm on running statistics): checks every layer's backward
    # through the residual sums end to end.
    fastnn.manual_seed(0)
    model = models.resnet(8, 1, 3, 6, width=2).eval()
    x = np.random.default_rng(1).standard_normal((2, 1, 6, 6))
    assert fastnn.gradcheck(model, x, max_checks=12, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("call,fragment", [
    (lambda: models.resnet(21), "6n + 2"),
    (lambda: models.lenet5(input_size=0), "'input_size' must be >= 1"),
    (lambda: models.simple_cnn(input_size=2), "'input_size' must be >= 4"),
])
def test_model_arguments_are_checked(call, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        call()


def test_lenet5_trains_on_random_28x28_data():
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    model = models.lenet5()
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):  # memorise one batch: the loss must fall
        losses.append(loss_fn(model(x), y))
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]


def test_default_cnn_is_on_par_with_svm_and_knn_on_digits(tmp_path, monkeypatch):
    """The default `python -m fastnn train` (simple_cnn on the digits, with its default
    augmentation) is on par with scikit-learn's RBF SVM and 3-nearest-neighbours on fastnn's
    digits split, which get 352-354 of the 359 test images right (README.md has the
    measurement).

    Two seeds of the 60-epoch default. A seed's count moves by several images with the rounding
    (the thread count, the SIMD path): seeds 0-5 got 349-357 on one and two threads of an AVX2
    machine, 353.8 on average. So the two seeds must average at least 350 (97.5%, within four
    images of the best baseline) and neither may fall below 347: a real loss of accuracy
    (a wrong gradient, a broken augmentation) costs far more than that.

    On one thread: the recipe is the same, only the summation order of its kernels changes,
    and the suite runs a worker per core, so a second thread would only contend with the other
    worker (on 8x8 images it also gains little).
    """
    require_digits()
    from fastnn.cli import main

    monkeypatch.chdir(tmp_path)
    threads = fastnn.get_num_threads()
    right = []
    try:
        for seed in (0, 1):
            out = f"run{seed}"
            assert main(["train", "--quiet", "--seed", str(seed), "--threads", "1", "--out", out]) == 0
            report = json.loads((tmp_path / out / "report.json").read_text())
            assert report["config"]["model"] == "simple_cnn" and report["config"]["augment"]
            final = report["final"]
            assert final["test_images"] == 359
            right.append(round(final["test_accuracy"] * final["test_images"]))
    finally:
        fastnn.set_num_threads(threads)
    assert min(right) >= 347, right
    assert np.mean(right) >= 350, right


# Embedding networks (issue 13) ------------------------------------------------------------------

def _small(builder, *leading):
    return lambda **kw: builder(*leading, **{"in_channels": 1, "num_classes": 10, "input_size": 8, **kw})


EMBEDDING_BUILDERS = [(_small(models.mlp), 8), (_small(models.lenet5), 8), (_small(models.simple_cnn), 8),
                      (_small(models.resnet, 8), 8)]


@pytest.mark.parametrize("build,size", EMBEDDING_BUILDERS)
def test_embedding_networks_share_the_classifiers_trunk(build, size):
    fastnn.manual_seed(0)
    classifier = build()
    fastnn.manual_seed(0)
    embedder = build(embedding_dim=16, num_classes=3)  # num_classes is ignored with an embedding
    trunk_c, head_c = models.split_head(classifier)
    trunk_e, head_e = models.split_head(embedder)
    assert (head_c.out_features, head_e.out_features) == (10, 16)
    assert head_e.in_features == head_c.in_features
    # The same layers with the same shapes, and, from the same seed, the same trunk weights.
    for (name_c, p_c), (name_e, p_e) in zip(trunk_c.named_parameters(), trunk_e.named_parameters()):
        assert name_c == name_e
        np.testing.assert_array_equal(p_c.data, p_e.data)
    x = np.random.default_rng(0).random((3, 1, size, size), dtype=np.float32)
    embedder.eval()
    z = embedder(x)
    assert z.shape == (3, 16) and np.isfinite(z).all()
    np.testing.assert_array_equal(head_e(trunk_e.eval()(x)), z)  # the split pieces compose to the model
    assert embedder.backward(np.ones_like(z)).shape == x.shape


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "64"])
def test_embedding_dim_is_checked(value):
    with pytest.raises(ValueError, match=r"fastnn.models.mlp: argument 'embedding_dim' must be a positive int or None"):
        models.mlp(embedding_dim=value)


def test_split_head_refuses_what_it_cannot_cut():
    with pytest.raises(TypeError, match=r"must be an nn.Sequential ending in an nn.Linear .*; got Sequential ending in ReLU"):
        models.split_head(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(TypeError, match=r"got Linear"):
        models.split_head(nn.Linear(2, 2))


def test_build_model_builds_embedding_networks():
    from fastnn import recipes

    fastnn.manual_seed(0)
    model = recipes.build_model("lenet5", (1, 8, 8), 6, embedding_dim=32)
    assert model(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 32)
    with pytest.raises(recipes.RecipeError, match=r"embedding_dim must be an int >= 1 or None; got 0"):
        recipes.build_model("lenet5", (1, 8, 8), 6, embedding_dim=0)
