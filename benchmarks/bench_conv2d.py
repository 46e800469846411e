"""conv2d forward and backward: fastnn against PyTorch (when installed) on LeNet- and VGG-shaped
layers at batch 128, float32.

    PYTHONPATH=python python benchmarks/bench_conv2d.py [--threads 2] [--reps 15] [--batch 128]

Both libraries run in this process with the same thread count, alternating call by call after a
warm-up, and each row reports median milliseconds, GFLOP/s and the ratio torch / fastnn (> 1:
fastnn is faster). The backward pass computes dweight, dbias and, except for a first layer
(whose input needs no gradient in training), dx. Results are checked against each other first.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastnn
from fastnn import ops

# name, (N, C_in, H, W), (C_out, kernel), padding, needs dx
LAYERS = [
    ("lenet conv1 1->6 5x5 28x28 pad2", (1, 28, 28), (6, 5), 2, False),
    ("lenet conv2 6->16 5x5 14x14", (6, 14, 14), (16, 5), 0, True),
    ("vgg 32->32 3x3 28x28 pad1", (32, 28, 28), (32, 3), 1, True),
    ("vgg 64->64 3x3 14x14 pad1", (64, 14, 14), (64, 3), 1, True),
]


def median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench_layer(name, in_shape, out_spec, padding, needs_dx, batch, reps, torch):
    rng = np.random.default_rng(0)
    c_in, h, w = in_shape
    c_out, k = out_spec
    x = rng.standard_normal((batch, c_in, h, w)).astype(np.float32)
    weight = (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    y = ops.conv2d(x, weight, bias, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grad_w, grad_b = np.zeros_like(weight), np.zeros_like(bias)
    h_out, w_out = y.shape[2:]
    fwd_flops = 2.0 * batch * c_out * h_out * w_out * c_in * k * k
    bwd_flops = fwd_flops * (2 if needs_dx else 1)

    def fastnn_fwd():
        ops.conv2d(x, weight, bias, padding=padding)

    def fastnn_bwd():
        ops.conv2d_backward(x, weight, dy, grad_weight=grad_w, grad_bias=grad_b,
                            input_grad=needs_dx, padding=padding)

    runs = {"fastnn fwd": fastnn_fwd, "fastnn bwd": fastnn_bwd}
    if torch is not None:
        F = torch.nn.functional
        xt = torch.from_numpy(x).requires_grad_(needs_dx)
        wt = torch.from_numpy(weight).requires_grad_(True)
        bt = torch.from_numpy(bias).requires_grad_(True)
        dyt = torch.from_numpy(dy)
        yt = F.conv2d(xt, wt, bt, padding=padding)
        rel = np.linalg.norm(yt.detach().numpy() - y) / np.linalg.norm(y)
        assert rel < 1e-4, f"{name}: fastnn and torch disagree (relative error {rel:.2g})"

        def torch_fwd():
            with torch.no_grad():
                F.conv2d(xt, wt, bt, padding=padding)

        def torch_bwd():
            # Forward with autograd, then backward: torch cannot run backward without it.
            F.conv2d(xt, wt, bt, padding=padding).backward(dyt)

        runs["torch fwd"] = torch_fwd
        runs["torch fwd+bwd"] = torch_bwd

    for fn in runs.values():  # warm-up: workspaces, thread pools, caches
        fn(), fn()
    samples = {key: [] for key in runs}
    for _ in range(reps):  # alternate so drifts in machine load hit both libraries alike
        for key, fn in runs.items():
            samples[key].append(median_ms(fn, 1))
    ms = {key: statistics.median(v) for key, v in samples.items()}

    fnn_total = ms["fastnn fwd"] + ms["fastnn bwd"]
    line = (f"{name:34s} fastnn fwd {ms['fastnn fwd']:7.2f} ms ({fwd_flops / ms['fastnn fwd'] / 1e6:5.1f} GF/s)"
            f"  fwd+bwd {fnn_total:7.2f} ms ({(fwd_flops + bwd_flops) / fnn_total / 1e6:5.1f} GF/s)")
    if torch is not None:
        line += (f" | torch fwd {ms['torch fwd']:7.2f} ms  fwd+bwd {ms['torch fwd+bwd']:7.2f} ms"
                 f" | torch/fastnn fwd {ms['torch fwd'] / ms['fastnn fwd']:4.2f}x"
                 f"  fwd+bwd {ms['torch fwd+bwd'] / fnn_total:4.2f}x")
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=fastnn.get_num_threads())
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch not installed: timing fastnn only")
    fastnn.set_num_threads(args.threads)
    info = fastnn.build_info()
    print(f"threads {args.threads}, batch {args.batch}, float32, gemm kernel {info['gemm_kernel_float32']}"
          + (f", torch {torch.__version__}" if torch is not None else ""))
    for layer in LAYERS:
        bench_layer(*layer, args.batch, args.reps, torch)


if __name__ == "__main__":
    main()
