"""fastnn's CUDA kernels against cuBLAS (cupy.matmul) and PyTorch eager on the same GPU.

    python benchmarks/bench_gpu.py [--budget SECONDS] [--quick]

Sections, each with its share of the time budget (a section stops at its share and says what it
skipped): GEMM 1024..8192 in exact float32 and TF32; the convolution layers of LeNet-5, VGG and
ResNet-20 (through fastnn.ops.conv2d where it exists, else as the implicit-GEMM products they
amount to); training steps (forward, loss, backward, SGD) at batch 128 and 512 of the networks
fastnn can build. Every timing is checked for correctness first, measured with CUDA events after
warm-up, alternating fastnn and the peer, and reported as the median; ratios are fastnn's speed
over the peer's (> 1: fastnn faster). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Callable

import numpy as np

import fastnn
from fastnn import nn, ops, optim

try:
    import cupy
except ImportError:  # pragma: no cover - the script needs a GPU machine
    sys.exit("bench_gpu.py needs CuPy and a GPU")

try:
    import torch

    HAVE_TORCH = torch.cuda.is_available()
except ImportError:
    torch, HAVE_TORCH = None, False

ROWS: list[tuple[str, str, str, str, str]] = []  # section, case, fastnn, peer, ratio


def gpu_time(fn: Callable[[], object], reps: int = 10, warmup: int = 3) -> float:
    """Median seconds of fn() on the GPU (CUDA events on CuPy's current stream)."""
    for _ in range(warmup):
        fn()
    times = []
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    for _ in range(reps):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def alternate(a: Callable[[], object], b: Callable[[], object], reps: int) -> tuple[float, float]:
    """Medians of a and b timed in alternating rounds (the GPU's clocks drift; this shares it)."""
    ta, tb = [], []
    for _ in range(3):
        ta.append(gpu_time(a, reps))
        tb.append(gpu_time(b, reps))
    return float(np.median(ta)), float(np.median(tb))


def add(section: str, case: str, ours: str, peer: str, ratio: float | None) -> None:
    ROWS.append((section, case, ours, peer, "" if ratio is None else f"{ratio:.2f}"))
    print(f"  {section:8s} {case:42s} fastnn {ours:>16s}  peer {peer:>16s}  {ROWS[-1][4]}", flush=True)


def rel_error(a, b) -> float:
    a, b = cupy.asnumpy(a).astype(np.float64), cupy.asnumpy(b).astype(np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> bool:
        return time.monotonic() < self.end


# ---- GEMM ------------------------------------------------------------------------------------
def cupy_tf32_gemm_times(sizes: list[int]) -> dict[int, float]:
    """cuBLAS TF32 timings from a child process: CuPy reads CUPY_TF32 when it is imported."""
    env = dict(os.environ, CUPY_TF32="1")
    out = subprocess.run([sys.executable, __file__, "--cupy-tf32", ",".join(map(str, sizes))],
                         env=env, capture_output=True, text=True, timeout=120)
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()} if out.returncode == 0 else {}


def bench_gemm(sizes: list[int], budget: Budget) -> None:
    tf32_peer = cupy_tf32_gemm_times(sizes)
    rng = cupy.random.default_rng(0)
    for n in sizes:
        if not budget.left():
            add("gemm", f"{n}^3 and larger", "skipped", "(budget)", None)
            break
        a = rng.standard_normal((n, n), dtype=cupy.float32)
        b = rng.standard_normal((n, n), dtype=cupy.float32)
        flops = 2.0 * n**3
        reps = 20 if n <= 2048 else 5
        for precision in ("highest", "high"):
            fastnn.set_matmul_precision(precision)
            try:
                ours = ops.matmul(a, b)
                err = rel_error(ours, cupy.matmul(a, b))
                limit = 1e-5 if precision == "highest" else 5e-3
                if err > limit:
                    add("gemm", f"{n}^3 {precision}", f"WRONG {err:.1e}", "", None)
                    continue
                if precision == "highest":
                    t_ours, t_peer = alternate(lambda: ops.matmul(a, b), lambda: cupy.matmul(a, b), reps)
                else:
                    t_ours, t_peer = gpu_time(lambda: ops.matmul(a, b), reps), tf32_peer.get(n)
            finally:
                fastnn.set_matmul_precision("highest")
            label = "fp32" if precision == "highest" else "tf32"
            peer = f"{flops / t_peer / 1e12:.1f} TFLOP/s" if t_peer else "n/a"
            add("gemm", f"{n}^3 {label} vs cuBLAS", f"{flops / t_ours / 1e12:.1f} TFLOP/s", peer,
                t_peer / t_ours if t_peer else None)


# ---- convolution layers ----------------------------------------------------------------------
# (name, batch, C_in, H, W, C_out, kernel, stride, padding)
CONV_LAYERS = [
    ("LeNet conv1", 128, 1, 28, 28, 6, 5, 1, 2),
    ("LeNet conv2", 128, 6, 14, 14, 16, 5, 1, 0),
    ("VGG conv 64", 64, 64, 32, 32, 64, 3, 1, 1),
    ("VGG conv 256", 64, 256, 8, 8, 256, 3, 1, 1),
    ("ResNet-20 16", 128, 16, 32, 32, 16, 3, 1, 1),
    ("ResNet-20 32/2", 128, 16, 32, 32, 32, 3, 2, 1),
    ("ResNet-20 64", 128, 64, 8, 8, 64, 3, 1, 1),
]


def bench_conv(budget: Budget) -> None:
    has_conv = hasattr(ops, "conv2d")
    rng = cupy.random.default_rng(0)
    for name, n, c, h, w, k, r, stride, pad in CONV_LAYERS:
        if not budget.left():
            add("conv", f"{name} and later", "skipped", "(budget)", None)
            break
        ho, wo = (h + 2 * pad - r) // stride + 1, (w + 2 * pad - r) // stride + 1
        flops = 2.0 * n * ho * wo * k * c * r * r
        x = rng.standard_normal((n, c, h, w), dtype=cupy.float32)
        wt = rng.standard_normal((k, c, r, r), dtype=cupy.float32)
        if has_conv:
            ours = lambda: ops.conv2d(x, wt, None, stride=stride, padding=pad)  # noqa: E731
            case = f"{name} fwd"
        else:  # the implicit GEMM the layer amounts to: (N*Ho*Wo, C*R*R) @ (C*R*R, K)
            cols = rng.standard_normal((n * ho * wo, c * r * r), dtype=cupy.float32)
            wm = wt.reshape(k, -1)
            ours = lambda: ops.matmul(cols, wm, trans_b=True)  # noqa: E731
            case = f"{name} as GEMM"
        if HAVE_TORCH:
            tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(wt, device="cuda")
            torch.backends.cudnn.allow_tf32 = False  # compare exact float32 with exact float32
            peer = lambda: torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad)  # noqa: E731
            if has_conv:
                err = rel_error(ours(), cupy.asarray(peer()))
                if err > 1e-4:
                    add("conv", case, f"WRONG {err:.1e}", "", None)
                    continue
            t_ours, t_peer = alternate(ours, peer, 10)
            add("conv", f"{case} vs torch", f"{flops / t_ours / 1e12:.2f} TFLOP/s",
                f"{flops / t_peer / 1e12:.2f} TFLOP/s", t_peer / t_ours)
        else:
            t_ours = gpu_time(ours, 10)
            add("conv", case, f"{flops / t_ours / 1e12:.2f} TFLOP/s", "no torch", None)


# ---- training steps --------------------------------------------------------------------------
def fastnn_models() -> dict[str, Callable[[], nn.Module]]:
    """The benchmark networks fastnn can build with the layers it has (28x28x1 or 32x32x3 in)."""
    models: dict[str, Callable[[], nn.Module]] = {
        "MLP 784-512-256-10": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                                                    nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)),
    }
    if all(hasattr(nn, name) for name in ("Conv2d", "MaxPool2d")):
        models["LeNet-5"] = lambda: nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10))
        models["CNN 4-conv"] = lambda: nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10))
    models_module = getattr(fastnn, "models", None)
    if models_module is not None and hasattr(models_module, "resnet20"):
        models["ResNet-20"] = models_module.resnet20
    return models


def input_shape(name: str) -> tuple[int, ...]:
    return (1, 28, 28) if name in ("LeNet-5", "MLP 784-512-256-10") else (3, 32, 32)


def torch_model(name: str):
    """The same network in PyTorch (None where it has no twin here)."""
    tnn = torch.nn
    if name.startswith("MLP"):
        return tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 512), tnn.ReLU(), tnn.Linear(512, 256), tnn.ReLU(),
                              tnn.Linear(256, 10))
    if name == "LeNet-5":
        return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
                              tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
                              tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    if name == "CNN 4-conv":
        return tnn.Sequential(tnn.Conv2d(3, 32, 3, padding=1), tnn.ReLU(), tnn.Conv2d(32, 32, 3, padding=1), tnn.ReLU(),
                              tnn.MaxPool2d(2), tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(),
                              tnn.Conv2d(64, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                              tnn.Linear(64 * 8 * 8, 256), tnn.ReLU(), tnn.Linear(256, 10))
    return None


def step_time(step: Callable[[], object], seconds: float) -> float:
    """Median wall time of whole training steps (each ends in a loss read, i.e. a sync)."""
    for _ in range(3):
        step()
    times: list[float] = []
    end = time.monotonic() + seconds
    while len(times) < 5 or (time.monotonic() < end and len(times) < 50):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_training(batches: list[int], budget: Budget) -> None:
    for name, build in fastnn_models().items():
        for batch in batches:
            if not budget.left():
                add("train", f"{name} b{batch} and later", "skipped", "(budget)", None)
                return
            rng = np.random.default_rng(0)
            x_host = rng.standard_normal((batch, *input_shape(name))).astype(np.float32)
            y_host = rng.integers(0, 10, batch)
            fastnn.manual_seed(0)
            model = build().to("cuda")
            loss_fn = nn.SoftmaxCrossEntropy()
            opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x, y = cupy.asarray(x_host), cupy.asarray(y_host)

            def fastnn_step():
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                model.backward(loss_fn.backward())
                opt.step()
                return loss

            t_ours = step_time(fastnn_step, 3.0)
            peer, ratio = "no torch", None
            twin = torch_model(name) if HAVE_TORCH else None
            if twin is not None:
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
                twin = twin.cuda()
                topt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
                tx, ty = torch.as_tensor(x_host, device="cuda"), torch.as_tensor(y_host, device="cuda")
                tloss = torch.nn.CrossEntropyLoss()

                def torch_step():
                    loss = tloss(twin(tx), ty)
                    topt.zero_grad()
                    loss.backward()
                    topt.step()
                    return loss.item()  # the same sync per step as fastnn's float loss

                t_peer = step_time(torch_step, 3.0)
                peer, ratio = f"{t_peer * 1e3:.2f} ms", t_peer / t_ours
            add("train", f"{name} batch {batch} step", f"{t_ours * 1e3:.2f} ms", peer, ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=200.0, help="seconds for all sections together")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--cupy-tf32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cupy_tf32:  # child mode: cuBLAS TF32 GEMM timings as JSON
        result = {}
        for n in map(int, args.cupy_tf32.split(",")):
            a = cupy.random.default_rng(0).standard_normal((n, n), dtype=cupy.float32)
            result[n] = gpu_time(lambda: cupy.matmul(a, a), 20 if n <= 2048 else 5)
        print(json.dumps(result))
        return
    info = fastnn.cuda.info()
    device = info["devices"][0] if info.get("devices") else {}
    print(f"# fastnn {fastnn.__version__} on {device.get('name', '?')} (sm_{''.join(map(str, device.get('compute_capability', ())))}), "
          f"CUDA runtime {info.get('runtime_version')}, driver {info.get('driver_version')}, CuPy {info.get('cupy')}, "
          f"torch {torch.__version__ if torch is not None else 'absent'}", flush=True)
    sizes = [1024, 2048] if args.quick else [1024, 2048, 4096, 8192]
    shares = {"gemm": 0.35, "conv": 0.2, "train": 0.45}
    sections = [("gemm", lambda b: bench_gemm(sizes, b)), ("conv", bench_conv),
                ("train", lambda b: bench_training([128] if args.quick else [128, 512], b))]
    for name, run in sections:
        try:
            run(Budget(args.budget * shares[name]))
        except Exception as e:  # one broken section must not hide the others' numbers
            add(name, "error", type(e).__name__, str(e)[:60], None)
    print("\n| section | case | fastnn | peer (cuBLAS / PyTorch) | speed ratio |")
    print("| --- | --- | --- | --- | --- |")
    for row in ROWS:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
