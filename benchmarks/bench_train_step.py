"""A full training step (forward, softmax-CE loss, backward, SGD-momentum update), fastnn vs
PyTorch CPU, at batch 128: MLP 784-256-10, LeNet-5 and the 4-conv CNN (32-32-pool-64-64-pool-fc128)
on 28x28x1 inputs (the models of issue 5), and ResNet-20 on 32x32x3 (BatchNorm, stride-2 and 1x1
shortcut convolutions, global average pooling: fastnn.models.resnet(20)).

The fastnn step is written as the README writes it, ``model.backward(loss_fn.backward())``: the
input gradient it returns is deferred and never computed (nn.DeferredGradient), as PyTorch skips
it for data without requires_grad.

The PyTorch model is built layer for layer from the fastnn one and starts from the same weights.
Both libraries run with the same thread count (default 2), alternating in one process: each
round times a few steps of one, then of the other (who goes first alternates), after warm-up
(and, with --warmup N, N untimed steps at the start of every round: steady state);
the table shows median ms per step, the speed ratio (median of the rounds' paired ratios, > 1:
fastnn faster), GFLOP/s (3x the forward multiply-adds x 2, the usual count for a training step)
and the fraction of the machine's measured FMA peak.

Memory (--memory, on by default): each library trains the 4-conv CNN (100 steps) and ResNet-20
(40 steps), each in its own subprocess; peak RSS after 20 steps, and RSS growth between steps
10..19 and the last ten (a leak shows there; medians, since RSS swings by a few arrays from step
to step).

    PYTHONPATH=python python benchmarks/bench_train_step.py [--json] [--rounds 9] [--threads 2]
        [--models mlp,lenet5,simple_cnn,resnet20]
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
from harness import MachineLoad, reexec_without_openblas_overrides, wait_until_idle  # noqa: E402

BATCH, CLASSES = 128, 10
MODELS = ("mlp", "lenet5", "simple_cnn", "resnet20")
MEMORY_STEPS = {"simple_cnn": 100, "resnet20": 40}


def input_shape(name: str) -> tuple[int, int, int]:
    """One example's shape: CIFAR's 32x32x3 for ResNet-20, MNIST's 28x28x1 for the others."""
    return (3, 32, 32) if name == "resnet20" else (1, 28, 28)


def build_fastnn(name: str):
    import fastnn
    from fastnn import models

    fastnn.manual_seed(0)
    channels, side, _ = input_shape(name)
    if name == "resnet20":
        return models.resnet(20, channels, CLASSES, side)
    return getattr(models, name)(channels, CLASSES, side)


def to_torch(model):
    """The same network in PyTorch, with copies of fastnn's weights (and running statistics)."""
    from bench_gpu import torch_twin

    return torch_twin(model)


def forward_flops(model, x) -> float:
    """2 x the multiply-adds of one forward pass, from a dry run of a copy of ``model`` that
    records the output of every Conv2d and Linear, nested ones included (Residual blocks;
    fastnn.bench.forward_flops reads a flat Sequential only)."""
    import copy

    from fastnn import nn

    twin = copy.deepcopy(model)
    total = [0.0]

    def counting(layer):
        forward = layer.forward

        def run(inputs):
            y = forward(inputs)
            if isinstance(layer, nn.Conv2d):
                kh, kw = layer.kernel_size
                total[0] += 2.0 * y.size * (layer.in_channels // layer.groups) * kh * kw
            else:
                total[0] += 2.0 * inputs.shape[0] * layer.in_features * layer.out_features
            return y

        return run

    for layer in twin.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            object.__setattr__(layer, "forward", counting(layer))  # on the copy only
    twin(x)
    return total[0]


def fastnn_stepper(model) -> Callable[[Any, Any], float]:
    from fastnn import nn, optim

    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, labels):
        loss = loss_fn(model(x), labels)
        opt.zero_grad()
        model.backward(loss_fn.backward())  # as the README writes it
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


def make_batches(count: int, shape: tuple[int, ...], seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, *shape), dtype=np.float32),
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

    model = build_fastnn(name)
    flops = 3.0 * forward_flops(model, np.zeros((BATCH, *input_shape(name)), np.float32))
    twin = to_torch(model)
    batches = make_batches(4, input_shape(name))
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


def memory_child(library: str, threads: int, name: str) -> None:
    """Trains model ``name`` for MEMORY_STEPS[name] steps in this process; prints JSON with RSS
    figures."""
    model = build_fastnn(name)
    batches = make_batches(2, input_shape(name))
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
    steps = MEMORY_STEPS[name]
    rss = []  # after each step
    for i in range(1, steps + 1):
        step(*batches[i % 2])
        rss.append(rss_bytes())
        if i == 20:
            peak_20 = proc_status_bytes("VmHWM")
    # RSS swings by a few arrays from step to step (malloc returns big blocks to the system and
    # takes them back), so growth compares the medians of steps 10..19 and the last ten.
    early, late = statistics.median(rss[9:19]), statistics.median(rss[-10:])
    json.dump({"steps": steps, "rss_before_steps": before, "peak_rss_20_steps": peak_20, "rss_step_10": rss[9],
               "rss_last_step": rss[-1], "median_rss_steps_10_19": early,
               "median_rss_last_10_steps": late, "growth_10_to_last": late - early}, sys.stdout)


def measure_memory(threads: int, name: str) -> dict[str, Any]:
    result = {}
    for library in ("fastnn", "torch"):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", library,
                              "--threads", str(threads), "--memory-model", name],
                             check=True, capture_output=True, text=True)
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
    parser.add_argument("--memory-models", default=",".join(MEMORY_STEPS),
                        help="models whose peak RSS is measured (each library in its own subprocess)")
    parser.add_argument("--memory-child", choices=("fastnn", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-model", choices=tuple(MEMORY_STEPS), default="simple_cnn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.threads, args.memory_model)
        return 0
    reexec_without_openblas_overrides()
    import fastnn
    import torch
    from fastnn.bench import machine_info, measure_peak

    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    machine_load = MachineLoad()
    peak = measure_peak(args.threads)
    rows = [compare_model(m, args.rounds, args.steps, args.warmup) for m in args.models.split(",")]
    for row in rows:
        row["fastnn_fraction_of_peak"] = row["fastnn_gflops"] / peak
        row["torch_fraction_of_peak"] = row["torch_gflops"] / peak
    memory = None if args.no_memory else {
        name: measure_memory(args.threads, name) for name in args.memory_models.split(",") if name}
    load = machine_load.finish()
    report = {"machine": machine_info(args.threads), "torch": torch.__version__, "threads": args.threads,
              "machine_load": load,
              "batch": BATCH, "rounds": args.rounds, "steps_per_round": args.steps,
              "warmup_steps_per_round": args.warmup, "fma_peak_gflops": peak, "steps": rows,
              "memory": memory}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"training step, batch {BATCH}, {args.threads} threads, FMA peak {peak:.0f} GFLOP/s "
          f"(measured), torch {torch.__version__}")
    print(machine_load.line())
    print(f"{'model':<12} {'fastnn ms':>10} {'torch ms':>10} {'speedup':>8} {'fastnn GF/s':>12} "
          f"{'of peak':>8} {'torch GF/s':>11} {'of peak':>8}")
    for r in rows:
        print(f"{r['model']:<12} {r['fastnn_ms']:>10.2f} {r['torch_ms']:>10.2f} {r['speedup']:>7.2f}x "
              f"{r['fastnn_gflops']:>12.1f} {100 * r['fastnn_fraction_of_peak']:>7.1f}% "
              f"{r['torch_gflops']:>11.1f} {100 * r['torch_fraction_of_peak']:>7.1f}%")
    mib = 1 << 20
    for name, by_library in (memory or {}).items():
        print(f"memory, {name} (MiB): peak RSS after 20 steps | RSS growth steps 10..19 -> last ten of "
              f"{by_library['fastnn']['steps']}")
        for lib, m in by_library.items():
            print(f"  {lib:<7} {m['peak_rss_20_steps'] / mib:8.1f} | {m['growth_10_to_last'] / mib:+8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
