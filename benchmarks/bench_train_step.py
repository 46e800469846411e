"""A full training step (forward, softmax-CE loss, backward, SGD-momentum update), fastnn vs
PyTorch CPU, on the models of issue 5 at batch 128 with 28x28 inputs:
MLP 784-256-10, LeNet-5 and the 4-conv CNN (32-32-pool-64-64-pool-fc128).

The PyTorch model is built layer for layer from the fastnn one and starts from the same weights.
Both libraries run with the same thread count (default 2), alternating in one process: each
round times a few steps of one, then of the other (who goes first alternates), after warm-up
(and, with --warmup N, N untimed steps at the start of every round: steady state);
the table shows median ms per step, the speed ratio (median of the rounds' paired ratios, > 1:
fastnn faster), GFLOP/s (3x the forward multiply-adds x 2, the usual count for a training step)
and the fraction of the machine's measured FMA peak.

Memory (--memory, on by default): each library trains the 4-conv CNN in its own subprocess;
peak RSS after 20 steps, and RSS growth between step 10 and step 100 (a leak shows there;
medians of steps 10..19 and 91..100, since RSS swings by a few arrays from step to step).

    PYTHONPATH=python python benchmarks/bench_train_step.py [--json] [--rounds 9] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import reexec_without_openblas_overrides, wait_until_idle  # noqa: E402

BATCH, SIDE, CLASSES = 128, 28, 10
MODELS = ("mlp", "lenet5", "simple_cnn")


def build_fastnn(name: str):
    import fastnn
    from fastnn import models

    fastnn.manual_seed(0)
    return getattr(models, name)(1, CLASSES, SIDE)


def to_torch(model):
    """The same network in PyTorch, with copies of fastnn's weights."""
    import torch
    from fastnn import nn

    layers = []
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            t = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                layer.padding, layer.dilation, layer.groups, bias=layer.bias is not None)
        elif isinstance(layer, nn.Linear):
            t = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        elif isinstance(layer, nn.ReLU):
            t = torch.nn.ReLU()
        elif isinstance(layer, nn.MaxPool2d):
            t = torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        elif isinstance(layer, nn.Flatten):
            t = torch.nn.Flatten()
        else:
            raise TypeError(f"no PyTorch twin for {type(layer).__name__}")
        if hasattr(t, "weight"):
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(layer.weight.data))
                if layer.bias is not None:
                    t.bias.copy_(torch.from_numpy(layer.bias.data))
        layers.append(t)
    return torch.nn.Sequential(*layers)


def fastnn_stepper(model) -> Callable[[Any, Any], float]:
    from fastnn import nn, optim

    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, labels):
        loss = loss_fn(model(x), labels)
        opt.zero_grad()
        model.backward_params(loss_fn.backward())  # as PyTorch: no gradient for the data
        opt.step()
        return float(loss)

    return step


def torch_stepper(model) -> Callable[[Any, Any], float]:
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, labels):
        loss = loss_fn(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def make_batches(count: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, 1, SIDE, SIDE), dtype=np.float32),
             rng.integers(0, CLASSES, BATCH)) for _ in range(count)]


def time_steps(step, batches, steps: int, warmup: int) -> float:
    wait_until_idle(0.5)  # let the other library's spinning workers go to sleep first
    # Untimed steps first: after the idle wait this library's threads (and, on a VM, its
    # second vCPU) are asleep, and the first steps run up to ~1.5x slower on both sides; a
    # training loop runs its steps back to back.
    for i in range(warmup):
        step(*batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(steps):
        step(*batches[i % len(batches)])
    return (time.perf_counter() - start) / steps


def compare_model(name: str, rounds: int, steps: int, warmup: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from fastnn import bench as fastnn_bench

    model = build_fastnn(name)
    flops = 3.0 * fastnn_bench.forward_flops(model, np.zeros((BATCH, 1, SIDE, SIDE), np.float32))
    twin = to_torch(model)
    batches = make_batches(4)
    torch_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    fast, peer = fastnn_stepper(model), torch_stepper(twin)
    # Correctness before timing: the first step's losses agree (same weights, same batch).
    loss_fastnn, loss_torch = fast(*batches[0]), peer(*torch_batches[0])
    for _ in range(3):  # warm-up (workspaces, momentum buffers, thread pools)
        fast(*batches[0])
        peer(*torch_batches[0])
    fast_times, peer_times, ratios = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            f = time_steps(fast, batches, steps, warmup)
            p = time_steps(peer, torch_batches, steps, warmup)
        else:
            p = time_steps(peer, torch_batches, steps, warmup)
            f = time_steps(fast, batches, steps, warmup)
        fast_times.append(f)
        peer_times.append(p)
        ratios.append(p / f)
    f_med, p_med = statistics.median(fast_times), statistics.median(peer_times)
    return {"model": name, "flops_per_step": flops, "fastnn_ms": f_med * 1e3, "torch_ms": p_med * 1e3,
            "speedup": statistics.median(ratios), "fastnn_gflops": flops / f_med / 1e9,
            "torch_gflops": flops / p_med / 1e9, "first_loss_fastnn": loss_fastnn,
            "first_loss_torch": loss_torch}


def proc_status_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process from /proc/self/status. getrusage's ru_maxrss
    would not do: it survives execve, so a child would report its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_bytes() -> int:
    return proc_status_bytes("VmRSS")


def memory_child(library: str, threads: int) -> None:
    """Trains the 4-conv CNN for 100 steps in this process; prints JSON with RSS figures."""
    model = build_fastnn("simple_cnn")
    batches = make_batches(2)
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        model = to_torch(model)
        batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
        step = torch_stepper(model)
    else:
        import fastnn

        fastnn.set_num_threads(threads)
        step = fastnn_stepper(model)
    before = rss_bytes()
    rss = []  # after each step
    for i in range(1, 101):
        step(*batches[i % 2])
        rss.append(rss_bytes())
        if i == 20:
            peak_20 = proc_status_bytes("VmHWM")
    # RSS swings by a few arrays from step to step (malloc returns big blocks to the system and
    # takes them back), so growth compares the medians of steps 10..19 and 91..100.
    early, late = statistics.median(rss[9:19]), statistics.median(rss[90:100])
    json.dump({"rss_before_steps": before, "peak_rss_20_steps": peak_20, "rss_step_10": rss[9],
               "rss_step_100": rss[99], "median_rss_steps_10_19": early,
               "median_rss_steps_91_100": late, "growth_10_to_100": late - early}, sys.stdout)


def measure_memory(threads: int) -> dict[str, Any]:
    result = {}
    for library in ("fastnn", "torch"):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", library,
                              "--threads", str(threads)], check=True, capture_output=True, text=True)
        result[library] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds; medians over them")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed steps before each round's timed ones (steady state)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory-child", choices=("fastnn", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.threads)
        return 0
    reexec_without_openblas_overrides()
    import fastnn
    import torch
    from fastnn.bench import machine_info, measure_peak

    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    peak = measure_peak(args.threads)
    rows = [compare_model(m, args.rounds, args.steps, args.warmup) for m in args.models.split(",")]
    for row in rows:
        row["fastnn_fraction_of_peak"] = row["fastnn_gflops"] / peak
        row["torch_fraction_of_peak"] = row["torch_gflops"] / peak
    memory = None if args.no_memory else measure_memory(args.threads)
    report = {"machine": machine_info(args.threads), "torch": torch.__version__, "threads": args.threads,
              "batch": BATCH, "rounds": args.rounds, "steps_per_round": args.steps,
              "warmup_steps_per_round": args.warmup, "fma_peak_gflops": peak, "steps": rows,
              "memory_simple_cnn": memory}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"training step, batch {BATCH}, {args.threads} threads, FMA peak {peak:.0f} GFLOP/s "
          f"(measured), torch {torch.__version__}")
    print(f"{'model':<12} {'fastnn ms':>10} {'torch ms':>10} {'speedup':>8} {'fastnn GF/s':>12} "
          f"{'of peak':>8} {'torch GF/s':>11} {'of peak':>8}")
    for r in rows:
        print(f"{r['model']:<12} {r['fastnn_ms']:>10.2f} {r['torch_ms']:>10.2f} {r['speedup']:>7.2f}x "
              f"{r['fastnn_gflops']:>12.1f} {100 * r['fastnn_fraction_of_peak']:>7.1f}% "
              f"{r['torch_gflops']:>11.1f} {100 * r['torch_fraction_of_peak']:>7.1f}%")
    if memory:
        mib = 1 << 20
        print("memory, 4-conv CNN (MiB): peak RSS after 20 steps | RSS growth step 10 -> 100")
        for lib, m in memory.items():
            print(f"  {lib:<7} {m['peak_rss_20_steps'] / mib:8.1f} | {m['growth_10_to_100'] / mib:+8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
