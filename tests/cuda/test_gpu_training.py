"""The whole training path on the GPU: the digits MLP of tests/test_train_digits.py trained on
CuPy arrays (model.to("cuda"), SGD with momentum through the multi-tensor kernel) must reach the
CPU run's accuracy, and so must a CNN with batch norm, pooling and dropout trained through
fit/evaluate(device="cuda") and DataLoader(device="cuda"); the CLI trains and evaluates with
--device cuda; moving a model and its optimizer between devices keeps training going."""

from __future__ import annotations

import pytest
from conftest import skip_without_gpu

skip_without_gpu()

import cupy  # noqa: E402
import numpy as np  # noqa: E402

import fastnn
from conftest import to_cpu, to_gpu
from fastnn import nn, optim

pytest.importorskip("sklearn", reason="scikit-learn (the 'digits' extra) ships the data")


def _train(device: str, epochs: int = 20) -> float:
    from fastnn.data import digits

    fastnn.manual_seed(0)
    train, test = digits(seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    move = to_gpu if device == "cuda" else (lambda a: a)
    x_train, y_train, x_test = move(train.x), move(train.y), move(test.x)
    order = np.random.default_rng(0)
    for _ in range(epochs):
        perm = order.permutation(len(train))
        for i in range(0, len(train), 64):
            idx = move(perm[i : i + 64])
            loss_fn(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
    model.eval()
    return float((to_cpu(model(x_test).argmax(1)) == test.y).mean())


def test_gpu_training_matches_cpu_accuracy():
    gpu, cpu = _train("cuda"), _train("cpu")
    # Same seeds and batches; GPU and CPU round differently, so accuracy may differ by a few
    # test images (360 of them), not more.
    assert gpu >= 0.95, f"GPU test accuracy {gpu:.3f}"
    assert abs(gpu - cpu) <= 0.02, f"GPU {gpu:.3f} vs CPU {cpu:.3f}"


def test_model_and_optimizer_state_move_between_devices(rng):
    model = nn.Linear(4, 3)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    model(x)
    model.backward(g)
    opt.step()  # state created on the CPU
    twin = nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    twin_opt = optim.Adam(twin.parameters(), lr=1e-2)
    twin_opt.load_state_dict(opt.state_dict())

    assert model.to("cuda") is model
    assert isinstance(model.weight.data, cupy.ndarray) and isinstance(model.weight.grad, cupy.ndarray)
    opt.zero_grad()
    model(to_gpu(x))
    model.backward(to_gpu(g))
    opt.step()  # the state follows the parameters to the GPU
    assert all(isinstance(s["exp_avg"], cupy.ndarray) for s in opt.state.values())

    twin_opt.zero_grad()
    twin(x)
    twin.backward(g)
    twin_opt.step()
    model.to("cpu")
    assert isinstance(model.weight.data, np.ndarray)
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-7)
    # A CPU state dict loads into a GPU model and back.
    model.to("cuda").load_state_dict(twin.state_dict())
    np.testing.assert_array_equal(to_cpu(model.weight.data), twin.weight.data)


def _cnn() -> nn.Module:
    # Every GPU layer family in one network: conv, batch norm, ReLU, max and average pooling,
    # dropout, linear.
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 2 * 2, 10))


def _fit_cnn(device: str) -> tuple[float, float]:
    from fastnn.data import DataLoader, digits

    fastnn.manual_seed(0)
    train, test = digits(seed=0)
    model = _cnn()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(train, 64, shuffle=True, seed=0, device=device)
    history = fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 8, quiet=True, device=device)
    assert all(isinstance(p.data, cupy.ndarray if device == "cuda" else np.ndarray) for p in model.parameters())
    result = fastnn.train.evaluate(model, DataLoader(test, 256, device=device), nn.SoftmaxCrossEntropy(),
                                   device=device)
    return history["train_loss"][-1], result["accuracy"]


def test_gpu_cnn_with_batchnorm_pooling_dropout_matches_cpu():
    (gpu_loss, gpu_acc), (cpu_loss, cpu_acc) = _fit_cnn("cuda"), _fit_cnn("cpu")
    # The same seeds, batches and dropout masks on both devices; only rounding differs, so the
    # runs agree to a few test images (360) and the final training loss to a few percent.
    assert gpu_acc >= 0.93, f"GPU test accuracy {gpu_acc:.3f}"
    assert abs(gpu_acc - cpu_acc) <= 0.02, f"GPU {gpu_acc:.3f} vs CPU {cpu_acc:.3f}"
    assert abs(gpu_loss - cpu_loss) <= 0.1 * cpu_loss + 1e-3, f"loss GPU {gpu_loss:.4f} vs CPU {cpu_loss:.4f}"


def test_cli_trains_and_evaluates_on_the_gpu(tmp_path, monkeypatch, capsys):
    from fastnn.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "simple_cnn", "--epochs", "2", "--device", "cuda", "--out", "run"]) == 0
    import json

    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # Two epochs of the default CNN reach ~35% on the CPU: well above chance (10%).
    assert report["device"] == "cuda" and report["final"]["test_accuracy"] >= 0.2
    assert main(["eval", "run/checkpoint.fastnn", "--device", "cuda"]) == 0
    assert "accuracy" in capsys.readouterr().out
