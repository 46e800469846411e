"""fastnn's own micro-benchmarks: ``python -m fastnn bench`` (or ``fastnn.bench.main(argv)``).

Runs from an installed wheel, without the repository or PyTorch: GEMM, the linear layer's
forward and backward, the convolutions of LeNet-5 and the 4-conv CNN forward and backward,
fused softmax-cross-entropy, and one training step of the MLP, LeNet-5 and the 4-conv CNN on
MNIST-sized batches (the models of the README's speed comparison), each reported in time per
call, GFLOP/s and as a fraction of this machine's measured FMA peak.

This module is also the timing core of the repository's side-by-side benchmarks
(benchmarks/harness.py), so both measure the same way:
- inputs rotate over several copies (together larger than the L2 caches) so repeated calls do
  not find their operands in cache;
- a calibrated batch of calls follows one warm-up call, each call timed on its own with a
  monotonic clock; a round's result is the median call;
- several rounds are taken and the median is reported (machines here are shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

import fastnn
from fastnn import _cpu, nn, ops, optim


@dataclass
class Case:
    """One benchmark: ``run(*inputs)`` on inputs from ``make_inputs()``."""

    name: str
    flops: float  # floating-point operations per call; 0 when the op is not FLOP-bound
    make_inputs: Callable[[], tuple]
    run: Callable[..., Any]
    note: str = ""


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)  # per call, one entry per round

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def rotating_inputs(make_inputs: Callable[[], tuple], min_bytes: int = 64 << 20, max_sets: int = 16) -> list[tuple]:
    """Copies of the inputs, enough to exceed ``min_bytes`` together (at most ``max_sets``)."""
    first = make_inputs()
    size = sum(x.nbytes for x in first if isinstance(x, np.ndarray)) or 1
    count = max(1, min(max_sets, math.ceil(min_bytes / size)))
    return [first] + [make_inputs() for _ in range(count - 1)]


def calibrate(run: Callable[..., Any], input_sets: Sequence[tuple], seconds: float) -> int:
    """Calls per timed batch so that one batch lasts about ``seconds``."""
    start = time.perf_counter()
    run(*input_sets[0])
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, min(100_000, int(seconds / once)))


def time_batch(run: Callable[..., Any], input_sets: Sequence[tuple], calls: int) -> float:
    """Median seconds per call over ``calls`` calls, cycling through the input sets, after a
    warm-up call. Each call is timed on its own: on a shared machine the OS now and then
    pauses a thread for milliseconds, and the median ignores the few calls that hit such a
    pause, where a batch total would not."""
    run(*input_sets[-1])
    n = len(input_sets)
    clock = time.perf_counter
    times = []
    for i in range(calls):
        start = clock()
        run(*input_sets[i % n])
        times.append(clock() - start)
    return statistics.median(times)


def measure_peak(threads: int, seconds: float = 0.2, repeats: int = 3) -> float:
    """The machine's float32 FMA peak in GFLOP/s at the SIMD level in use: the best of a few
    short probes (12 independent FMA chains per thread; see fastnn/csrc/cpu/peak.h), since
    other load on a shared machine only ever lowers a probe."""
    return max(_cpu.fma_peak_gflops(threads, seconds) for _ in range(repeats))


def gflops(flops: float, seconds: float) -> float | None:
    return flops / seconds / 1e9 if flops and seconds > 0 else None


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; floats get 3 significant digits, None prints as '-'."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in text])


def machine_info(threads: int) -> dict[str, Any]:
    info = fastnn.build_info()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "simd": info["simd"],
        "gemm_kernel_float32": info["gemm_kernel_float32"],
        "fastnn": info["version"],
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ---- fastnn's own cases -----------------------------------------------------------------------


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def gemm_case(m: int, k: int, n: int) -> Case:
    rng = _rng()

    def make():
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        return a, b, np.empty((m, n), np.float32)

    return Case(f"matmul {m}x{k}x{n}", 2.0 * m * k * n, make, lambda a, b, c: ops.matmul(a, b, out=c))


def linear_case(batch: int, in_features: int, out_features: int) -> Case:
    rng = _rng()

    def make():
        x = rng.standard_normal((batch, in_features), dtype=np.float32)
        w = rng.standard_normal((out_features, in_features), dtype=np.float32) * 0.05
        b = rng.standard_normal(out_features, dtype=np.float32)
        dy = rng.standard_normal((batch, out_features), dtype=np.float32)
        return x, w, b, dy, np.zeros_like(w), np.zeros_like(b)

    def run(x, w, b, dy, dw, db):
        ops.linear(x, w, b)
        ops.linear_backward(x, w, dy, grad_weight=dw, grad_bias=db)

    # forward, dx and dweight: three GEMMs of 2 * batch * in * out flops
    return Case(f"linear fwd+bwd {batch}x{in_features}->{out_features}", 6.0 * batch * in_features * out_features, make, run)


def softmax_xent_case(batch: int, classes: int) -> Case:
    rng = _rng()

    def make():
        logits = rng.standard_normal((batch, classes), dtype=np.float32)
        return logits, rng.integers(0, classes, batch)

    return Case(f"softmax-xent fwd+bwd {batch}x{classes}", 0.0, make,
                lambda logits, labels: ops.softmax_cross_entropy(logits, labels), note="memory-bound")


def mlp_step_case(batch: int, sizes: Sequence[int]) -> Case:
    """Forward, loss, backward and an SGD-momentum update of an MLP with ReLUs."""
    fastnn.manual_seed(0)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = _rng()

    def make():
        x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
        return x, rng.integers(0, sizes[-1], batch)

    def step(x, labels):
        loss_fn(model(x), labels)
        opt.zero_grad()
        model.backward_params(loss_fn.backward())  # as PyTorch: no gradient for the data
        opt.step()

    # The usual training-step count, 3x the forward's (as benchmarks/bench_train_step.py),
    # though backward_params skips the first layer's input gradient.
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    name = "mlp step " + "-".join(map(str, sizes)) + f" batch {batch}"
    return Case(name, 6.0 * batch * weights, make, step)


def conv2d_case(batch: int, in_channels: int, side: int, out_channels: int, kernel: int, padding: int) -> Case:
    """Forward (with the fused ReLU, as nn.Sequential runs it) and backward (input, weight and
    bias gradients) of one convolution with stride 1 on square images."""
    rng = _rng()
    out_side = side + 2 * padding - kernel + 1

    def make():
        x = rng.standard_normal((batch, in_channels, side, side), dtype=np.float32)
        w = rng.standard_normal((out_channels, in_channels, kernel, kernel), dtype=np.float32) * 0.1
        b = rng.standard_normal(out_channels, dtype=np.float32)
        dy = rng.standard_normal((batch, out_channels, out_side, out_side), dtype=np.float32)
        return x, w, b, dy, np.zeros_like(w), np.zeros_like(b)

    def run(x, w, b, dy, dw, db):
        ops.conv2d(x, w, b, padding=padding, relu=True)
        ops.conv2d_backward(x, w, dy, grad_weight=dw, grad_bias=db, padding=padding)

    macs = batch * out_channels * out_side * out_side * in_channels * kernel * kernel
    name = f"conv2d fwd+bwd {batch}x{in_channels}x{side}x{side} -> {out_channels}@{kernel}x{kernel}"
    return Case(name, 6.0 * macs, make, run)  # forward, dx and dweight: 2 flops per multiply-add each


def forward_flops(model: nn.Sequential, x: np.ndarray) -> float:
    """2 x the multiply-adds of one forward pass of a flat Sequential, from a dry run."""
    flops = 0.0
    for layer in model:
        y = layer(x)
        if isinstance(layer, nn.Conv2d):
            kh, kw = layer.kernel_size
            flops += 2.0 * y.size * (layer.in_channels // layer.groups) * kh * kw
        elif isinstance(layer, nn.Linear):
            flops += 2.0 * x.shape[0] * layer.in_features * layer.out_features
        x = y
    return flops


def model_step_case(name: str, batch: int, side: int = 28, channels: int = 1, classes: int = 10) -> Case:
    """One training step (forward, loss, backward, SGD-momentum update) of the model
    ``fastnn.models.<name>`` (``"lenet5"``, ``"simple_cnn"``, ...) on a batch of images."""
    from fastnn import models

    fastnn.manual_seed(0)
    model = getattr(models, name)(channels, classes, side)
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = _rng()

    def make():
        x = rng.standard_normal((batch, channels, side, side), dtype=np.float32)
        return x, rng.integers(0, classes, batch)

    def step(x, labels):
        loss_fn(model(x), labels)
        opt.zero_grad()
        model.backward_params(loss_fn.backward())
        opt.step()

    flops = 3.0 * forward_flops(model.eval(), np.zeros((batch, channels, side, side), np.float32))
    model.train()
    return Case(f"{name} step {channels}x{side}x{side} batch {batch}", flops, make, step)


def default_cases(quick: bool = False) -> list[Case]:
    """The cases ``python -m fastnn bench`` runs (``quick``: fewer GEMMs and convolutions)."""
    cases = [gemm_case(128, 784, 256), gemm_case(128, 256, 10), gemm_case(512, 512, 512)]
    if not quick:
        cases += [gemm_case(1024, 1024, 1024), gemm_case(32, 800, 3136), gemm_case(6272, 25, 32)]
    cases += [linear_case(128, 784, 256)]
    # The convolutions of the 4-conv CNN on 28x28 images (and LeNet-5's second one).
    cases += [conv2d_case(128, 32, 28, 32, 3, 1), conv2d_case(128, 64, 14, 64, 3, 1)]
    if not quick:
        cases += [conv2d_case(128, 1, 28, 32, 3, 1), conv2d_case(128, 32, 14, 64, 3, 1),
                  conv2d_case(128, 6, 14, 16, 5, 0)]
    cases += [softmax_xent_case(128, 10), mlp_step_case(128, [784, 256, 10]),
              model_step_case("lenet5", 128), model_step_case("simple_cnn", 128)]
    return cases


def run_cases(cases: Sequence[Case], rounds: int, seconds: float) -> list[tuple[Case, Timing]]:
    results = []
    for case in cases:
        inputs = rotating_inputs(case.make_inputs)
        calls = calibrate(case.run, inputs, seconds)
        timing = Timing()
        for _ in range(rounds):
            timing.seconds.append(time_batch(case.run, inputs, calls))
        results.append((case, timing))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastnn bench",
        description="Time fastnn's kernels on this machine: seconds per call, GFLOP/s and the "
        "fraction of the measured float32 FMA peak.",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: fastnn's setting)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case; the median is reported")
    parser.add_argument("--seconds", type=float, default=0.1, help="length of one timed round")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    parser.add_argument("--filter", default="", help="only cases whose name contains this text")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    threads = fastnn.get_num_threads()

    cases = [c for c in default_cases(args.quick) if args.filter in c.name]
    peak = measure_peak(threads)
    results = run_cases(cases, args.rounds, args.seconds)

    rows = []
    for case, timing in results:
        rate = gflops(case.flops, timing.median)
        rows.append({
            "case": case.name,
            "ms": timing.median * 1e3,
            "gflops": rate,
            "fraction_of_peak": rate / peak if rate else None,
            "note": case.note,
        })
    machine = machine_info(threads)
    if args.json:
        json.dump({"machine": machine, "fma_peak_gflops": peak, "results": rows}, sys.stdout, indent=2)
        print()
        return 0
    print(f"fastnn {machine['fastnn']} on {machine['cpu']}: {threads} threads, {machine['simd']} "
          f"({machine['gemm_kernel_float32']}), measured FMA peak {peak:.0f} GFLOP/s")
    print(format_table(["case", "ms", "GFLOP/s", "of peak", "note"],
                       [[r["case"], r["ms"], r["gflops"],
                         None if r["fraction_of_peak"] is None else f"{100 * r['fraction_of_peak']:.0f}%",
                         r["note"]] for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
