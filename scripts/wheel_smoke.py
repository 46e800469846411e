"""Smoke test of an installed fastnn (run it from outside the source tree): import, the build
facts, one training step on the CPU (and on the GPU where the CUDA backend can run), and the CLI's
`info` where the package has one. Exits non-zero on any failure."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np

import fastnn
from fastnn import nn, optim


def training_step_changes_the_weights(device: str) -> float:
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to(device)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 8)).astype(np.float32), rng.integers(0, 3, 32)
    if device == "cuda":
        import cupy

        x, y = cupy.asarray(x), cupy.asarray(y)
    before = model[0].weight.data.copy()
    loss_fn, opt = nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = loss_fn(model(x), y)
    opt.zero_grad()
    model.backward(loss_fn.backward())
    opt.step()
    assert np.isfinite(loss), loss
    assert float(abs(model[0].weight.data - before).max()) > 0, "the step did not move the weights"
    return loss


def main() -> None:
    where = pathlib.Path(fastnn.__file__).resolve().parent
    assert "site-packages" in where.parts or "dist-packages" in where.parts, f"fastnn imported from {where}"
    info = fastnn.build_info()
    print(f"fastnn {fastnn.__version__} from {where}: simd={info['simd']}, openmp={info['openmp']}, "
          f"cuda built={info['cuda']['built']}, available={info['cuda']['available']}")
    print(f"cpu training step: loss {training_step_changes_the_weights('cpu'):.4f}")
    if fastnn.cuda.is_available():
        print(f"gpu training step: loss {training_step_changes_the_weights('cuda'):.4f}")
    if importlib.util.find_spec("fastnn.__main__") is not None:
        subprocess.run([sys.executable, "-m", "fastnn", "info"], check=True)
    else:
        print(fastnn.build_info())
    print("wheel smoke test: ok")


if __name__ == "__main__":
    main()
