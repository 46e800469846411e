"""fastnn's CUDA kernels against cuBLAS (cupy.matmul) and PyTorch eager on the same GPU.

    python benchmarks/bench_gpu.py [--budget SECONDS] [--quick]

    python benchmarks/bench_gpu.py --dry-run    # no GPU needed: checks the plan on the CPU

Sections, each with its share of the time budget (a section stops at its share and says what it
skipped): GEMM 1024..8192 in exact float32 and TF32 against cuBLAS (cupy.matmul); the
convolution layers of LeNet-5, VGG and ResNet-20, forward and backward (data and weight
gradients), against PyTorch/cuDNN; training steps (forward, loss, backward, SGD with momentum)
at batch 128 and 512 of LeNet-5, the 4-conv CNN (fastnn.models.simple_cnn) and ResNet-20
(fastnn.models.resnet(20)) against PyTorch eager twins built layer by layer from the fastnn
models (same weights). Every timing is checked for correctness first, measured with CUDA events
after warm-up, alternating fastnn and the peer, and reported as the median; ratios are fastnn's
speed over the peer's (> 1: fastnn faster). Prints one Markdown table.

--dry-run runs on the CPU without CuPy or a GPU: it builds every benchmark network and its
PyTorch twin (where torch is installed), checks that they compute the same function, and lists
the cases it would time.
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
except ImportError:  # only --dry-run works without it
    cupy = None

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


def fastnn_conv_calls(x, wt, dy, stride: int, pad: int) -> dict[str, Callable[[], object]]:
    """The timed fastnn calls of one layer: forward, and backward (data and weight gradients)."""
    return {
        "fwd": lambda: ops.conv2d(x, wt, None, stride=stride, padding=pad),
        "bwd": lambda: ops.conv2d_backward(x, wt, dy, stride=stride, padding=pad, bias=False),
    }


def bench_conv(budget: Budget) -> None:
    rng = cupy.random.default_rng(0)
    if HAVE_TORCH:
        torch.backends.cudnn.allow_tf32 = False  # compare exact float32 with exact float32
    for name, n, c, h, w, k, r, stride, pad in CONV_LAYERS:
        if not budget.left():
            add("conv", f"{name} and later", "skipped", "(budget)", None)
            break
        ho, wo = (h + 2 * pad - r) // stride + 1, (w + 2 * pad - r) // stride + 1
        flops = 2.0 * n * ho * wo * k * c * r * r  # per product: forward, data grad, weight grad
        x = rng.standard_normal((n, c, h, w), dtype=cupy.float32)
        wt = rng.standard_normal((k, c, r, r), dtype=cupy.float32)
        dy = rng.standard_normal((n, k, ho, wo), dtype=cupy.float32)
        ours = fastnn_conv_calls(x, wt, dy, stride, pad)
        if not HAVE_TORCH:
            for kind, fn in ours.items():
                t_ours = gpu_time(fn, 10)
                add("conv", f"{name} {kind}", f"{flops * (1 if kind == 'fwd' else 2) / t_ours / 1e12:.2f} TFLOP/s",
                    "no torch", None)
            continue
        tx = torch.as_tensor(x, device="cuda").requires_grad_(True)
        tw = torch.as_tensor(wt, device="cuda").requires_grad_(True)
        tdy = torch.as_tensor(dy, device="cuda")
        ty = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad)
        peer = {
            "fwd": lambda: torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad),
            "bwd": lambda: torch.autograd.grad(ty, (tx, tw), tdy, retain_graph=True),
        }
        # Correctness first: forward output, and both gradients.
        checks = [(ours["fwd"](), ty.detach())]
        dx, dw, _ = ours["bwd"]()
        checks += list(zip((dx, dw), peer["bwd"]()))
        errors = [rel_error(a, cupy.asarray(b)) for a, b in checks]
        if max(errors) > 1e-4:
            add("conv", f"{name}", f"WRONG {max(errors):.1e}", "", None)
            continue
        for kind in ("fwd", "bwd"):
            t_ours, t_peer = alternate(ours[kind], peer[kind], 10)
            work = flops * (1 if kind == "fwd" else 2)
            add("conv", f"{name} {kind} vs cuDNN", f"{work / t_ours / 1e12:.2f} TFLOP/s",
                f"{work / t_peer / 1e12:.2f} TFLOP/s", t_peer / t_ours)


# ---- training steps --------------------------------------------------------------------------
def fastnn_models() -> dict[str, Callable[[], nn.Module]]:
    """The benchmark networks: LeNet-5 on 28x28x1, the 4-conv CNN and ResNet-20 on 32x32x3."""
    from fastnn import models

    return {
        "LeNet-5": lambda: models.lenet5(in_channels=1, num_classes=10, input_size=28),
        "CNN 4-conv": lambda: models.simple_cnn(in_channels=3, num_classes=10, input_size=32),
        "ResNet-20": lambda: models.resnet(20, in_channels=3, num_classes=10, input_size=32),
    }


def input_shape(name: str) -> tuple[int, ...]:
    return (1, 28, 28) if name == "LeNet-5" else (3, 32, 32)


def torch_twin(module: nn.Module):
    """The same network in PyTorch, layer by layer, with the same weights (on the CPU; .cuda()
    it). Raises TypeError for a layer it does not know."""
    tnn = torch.nn

    class TwinResidual(tnn.Module):
        def __init__(self, block, shortcut):
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    def tensor(a):
        return torch.as_tensor(np.array(a.get() if hasattr(a, "get") else a, dtype=np.float32))

    def convert(m: nn.Module):
        kind = type(m).__name__
        if kind == "Sequential":
            return tnn.Sequential(*[convert(c) for c in m])
        if kind == "Residual":
            return TwinResidual(convert(m.block), None if m.shortcut is None else convert(m.shortcut))
        if kind == "Conv2d":
            t = tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                           bias=m.bias is not None)
        elif kind == "Linear":
            t = tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            t = getattr(tnn, kind)(m.num_features, eps=m.eps, momentum=m.momentum)
            t.running_mean.copy_(tensor(m.running_mean))
            t.running_var.copy_(tensor(m.running_var))
        elif kind == "ReLU":
            return tnn.ReLU()
        elif kind in ("MaxPool2d", "AvgPool2d"):
            return getattr(tnn, kind)(m.kernel_size, m.stride, m.padding)
        elif kind == "GlobalAvgPool2d":
            return tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
        elif kind == "Flatten":
            return tnn.Flatten(m.start_dim)
        elif kind == "Dropout":
            return tnn.Dropout(m.p)
        else:
            raise TypeError(f"torch_twin: no PyTorch twin for {kind}")
        with torch.no_grad():
            t.weight.copy_(tensor(m.weight.data))
            if getattr(m, "bias", None) is not None:
                t.bias.copy_(tensor(m.bias.data))
        return t

    return convert(module)


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
            model = build()
            twin = torch_twin(model) if HAVE_TORCH else None  # before .to("cuda"): same weights
            model.to("cuda")
            loss_fn = nn.SoftmaxCrossEntropy()
            opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x, y = cupy.asarray(x_host), cupy.asarray(y_host)

            def fastnn_step():
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                model.backward_params(loss_fn.backward())  # as fit() does: no gradient for the data
                opt.step()
                return loss

            t_ours = step_time(fastnn_step, 3.0)
            peer, ratio = "no torch", None
            if twin is not None:
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
                twin = twin.cuda().train()
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


def dry_run(quick: bool) -> int:
    """The plan, checked on the CPU: every network builds, runs a forward and a training step,
    and (with torch) its twin computes the same logits from the same weights."""
    failures = 0
    for name, build in fastnn_models().items():
        fastnn.manual_seed(0)
        model = build()
        x = np.random.default_rng(0).standard_normal((2, *input_shape(name))).astype(np.float32)
        model.eval()
        logits = model(x)
        line = f"  train  {name:12s} params {sum(p.size for p in model.parameters()):>9,}  logits {logits.shape}"
        if torch is not None:
            twin = torch_twin(model).eval()
            with torch.no_grad():
                err = float(np.linalg.norm(twin(torch.as_tensor(x)).numpy() - logits) / np.linalg.norm(logits))
            line += f"  torch twin rel. error {err:.1e}"
            failures += err > 1e-4
        model.train()
        loss_fn = nn.SoftmaxCrossEntropy()
        loss_fn(model(x), np.array([0, 1]))
        model.backward_params(loss_fn.backward())
        print(line, flush=True)
    for name, n, c, h, w, k, r, stride, pad in CONV_LAYERS:  # batch 1 on the CPU: the calls work
        ho, wo = (h + 2 * pad - r) // stride + 1, (w + 2 * pad - r) // stride + 1
        x, wt, dy = np.ones((1, c, h, w), np.float32), np.ones((k, c, r, r), np.float32), np.ones((1, k, ho, wo), np.float32)
        calls = fastnn_conv_calls(x, wt, dy, stride, pad)
        y, (dx, dw, _) = calls["fwd"](), calls["bwd"]()
        assert y.shape == dy.shape and dx.shape == x.shape and dw.shape == wt.shape, name
        print(f"  conv   {name:16s} batch {n}: ({n}, {c}, {h}, {w}) -> ({n}, {k}, {ho}, {wo}), forward and backward")
    sizes = [1024, 2048] if quick else [1024, 2048, 4096, 8192]
    print(f"  gemm   {sizes} exact float32 and TF32 vs cuBLAS")
    print("dry run: " + ("FAILED (a torch twin differs)" if failures else "ok"))
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=200.0, help="seconds for all sections together")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--dry-run", action="store_true", help="check the plan on the CPU (no GPU needed)")
    parser.add_argument("--cupy-tf32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dry_run:
        sys.exit(dry_run(args.quick))
    if cupy is None or not fastnn.cuda.is_available():
        sys.exit(f"bench_gpu.py needs CuPy and a GPU: {fastnn.cuda.unavailable_reason()} (--dry-run runs without)")
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
