"""Inference: ``model.eval()`` forward of lenet5, simple_cnn and resnet20 at batch 1 and 256,
fastnn against PyTorch (``torch.inference_mode``, the same weights copied in) and against
onnxruntime (CPU provider, the same thread count) running fastnn's own ONNX export of the model.

Every model gets random BatchNorm statistics and affine parameters first (seeded), so that
folding BatchNorm into the convolutions (fastnn.nn.fuse, onnxruntime's graph optimiser) has
real work to do. Outputs are compared before anything is timed. The timing is harness.py's:
alternating rounds in one process, medians, the speed ratio as the median of paired ratios
(> 1: fastnn faster), the per-pass range in brackets.

``--overhead`` prints, instead, where the time of one batch-1 forward goes: the forward as
fastnn runs it (the eval plan), the layer-by-layer forward (``Sequential.fast_eval = False``),
and the kernel calls alone (the calls one forward makes, recorded and replayed back to back);
the difference ("rest": the Python around the kernels, and the plan's NumPy residual sums) over
the number of layers is the Python time per layer.

    PYTHONPATH=python python benchmarks/bench_inference.py [--peer torch|onnxruntime|both]
        [--threads 2] [--passes 2] [--filter resnet20] [--overhead]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Pair, reexec_without_openblas_overrides  # noqa: E402

MODELS = {  # name: (builder name, kwargs, one example's shape)
    "lenet5": ("lenet5", dict(in_channels=1, num_classes=10, input_size=28), (1, 28, 28)),
    "simple_cnn": ("simple_cnn", dict(in_channels=1, num_classes=10, input_size=28), (1, 28, 28)),
    "resnet20": ("resnet", dict(depth=20, in_channels=3, num_classes=10, input_size=32), (3, 32, 32)),
}
BATCHES = (1, 256)
# float32 on both sides, in different orders of summation (and, where BatchNorm is folded, with
# rounded folded weights): the logits agree to ~1e-6 of their size; 1e-4 leaves room for the
# deepest model's accumulated rounding while still catching any wrong layer.
TOLERANCE = 1e-4


def build(name: str):
    """The fastnn model in eval mode, with random (seeded) BatchNorm statistics."""
    import numpy as np

    import fastnn
    from fastnn import models, nn

    builder, kwargs, _ = MODELS[name]
    fastnn.manual_seed(0)
    model = getattr(models, builder)(**kwargs)
    rng = np.random.default_rng(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = 0.1 * rng.standard_normal(m.num_features)
            m.running_var[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = 0.1 * rng.standard_normal(m.num_features)
    return model.eval()


def to_torch(module):
    """The same network in PyTorch, with copies of fastnn's weights and statistics, in eval mode."""
    import torch
    from fastnn import nn

    class TorchResidual(torch.nn.Module):
        def __init__(self, block, shortcut):
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    def copy(t, m, names):
        with torch.no_grad():
            for attr in names:
                value = getattr(m, attr)
                value = value.data if isinstance(value, nn.Parameter) else value
                getattr(t, attr).copy_(torch.from_numpy(value))
        return t

    m = module
    if isinstance(m, nn.Sequential):
        return torch.nn.Sequential(*[to_torch(child) for child in m])
    if isinstance(m, nn.Residual):
        return TorchResidual(to_torch(m.block), None if m.shortcut is None else to_torch(m.shortcut))
    if isinstance(m, nn.Conv2d):
        t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                            bias=m.bias is not None)
        return copy(t, m, ["weight"] + (["bias"] if m.bias is not None else []))
    if isinstance(m, nn.Linear):
        t = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        return copy(t, m, ["weight"] + (["bias"] if m.bias is not None else []))
    if isinstance(m, nn.BatchNorm2d):
        t = torch.nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
        return copy(t, m, ["weight", "bias", "running_mean", "running_var"])
    if isinstance(m, nn.ReLU):
        return torch.nn.ReLU()
    if isinstance(m, nn.MaxPool2d):
        return torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding)
    if isinstance(m, nn.GlobalAvgPool2d):
        return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    if isinstance(m, nn.Flatten):
        return torch.nn.Flatten(m.start_dim)
    if isinstance(m, (nn.Dropout, nn.Identity)):
        return torch.nn.Identity()  # eval mode
    raise TypeError(f"no PyTorch twin for {type(m).__name__}")


class KernelCalls:
    """Records the calls of fastnn._cpu's functions made while active (a context), to count
    FLOPs and to replay them without the Python around them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable, tuple]] = []

    def __enter__(self) -> "KernelCalls":
        from fastnn import _cpu

        self._saved = {}
        for name in dir(_cpu):
            fn = getattr(_cpu, name)
            if callable(fn) and not name.startswith("_") and name.endswith(("_forward", "_eval")):
                self._saved[name] = fn
                setattr(_cpu, name, self._recorder(fn))
        return self

    def _recorder(self, fn: Callable) -> Callable:
        def record(*args: Any) -> Any:
            self.calls.append((fn, args))
            return fn(*args)

        return record

    def __exit__(self, *exc: Any) -> None:
        from fastnn import _cpu

        for name, fn in self._saved.items():
            setattr(_cpu, name, fn)

    def flops(self) -> float:
        """2 x the multiply-adds of the convolutions and linear layers recorded."""
        total = 0.0
        for fn, args in self.calls:
            if fn.__name__ == "conv2d_forward":
                w = args[1]
                y = fn(*args)
                total += 2.0 * y.size * w.shape[1] * w.shape[2] * w.shape[3]
            elif fn.__name__ == "linear_forward":
                total += 2.0 * args[0].shape[0] * args[1].size
        return total

    def replay(self) -> None:
        for fn, args in self.calls:
            fn(*args)


def record_forward(model, x) -> KernelCalls:
    with KernelCalls() as calls:
        model(x)
    return calls


def pairs_for(peer: str, threads: int) -> list[Pair]:
    import numpy as np

    pairs = []
    for name, (_, _, shape) in MODELS.items():
        model = build(name)
        params_bytes = sum(p.data.nbytes for p in model.parameters())
        if peer == "torch":
            import torch

            torch.set_num_threads(threads)
            twin = to_torch(model).eval()

            def run_peer(x, twin=twin):
                with torch.inference_mode():
                    return twin(torch.from_numpy(x)).numpy()
        else:
            import onnxruntime

            import fastnn.onnx

            path = os.path.join(tempfile.mkdtemp(prefix="fastnn-bench-"), f"{name}.onnx")
            fastnn.onnx.export(model, path, shape)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

            def run_peer(x, session=session):
                return session.run(None, {"input": x})[0]

        for batch in BATCHES:
            def make(batch=batch, shape=shape):
                return (np.random.default_rng(2).random((batch, *shape), dtype=np.float32),)

            x0 = make()[0]
            flops = record_forward(model, x0).flops()
            out_bytes = model(x0).nbytes
            pairs.append(Pair(
                name=f"{name} eval batch {batch}", flops=flops, bytes_moved=params_bytes + x0.nbytes + out_bytes,
                make_inputs=make, fastnn=model, peer=run_peer,
                check=lambda a, b: float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)), tolerance=TOLERANCE))
    return pairs


def layer_count(model) -> int:
    """Modules that compute something (every module but the containers)."""
    from fastnn import nn

    return sum(1 for m in model.modules() if not isinstance(m, (nn.Sequential, nn.Residual)))


def overhead_table(threads: int, rounds: int, calls: int = 50) -> str:
    """Where a batch-1 forward's time goes, per model (see the module docstring). The four
    timings of a model (each path's forward and its kernels replayed) alternate round by round,
    so that a change in the machine's load shifts them all alike; medians over the rounds."""
    import numpy as np

    import fastnn
    from fastnn import nn
    from fastnn.bench import format_table

    fastnn.set_num_threads(threads)

    def set_fast_eval(model, fast: bool) -> None:
        for m in model.modules():  # the flag is per Sequential
            if isinstance(m, nn.Sequential):
                m.fast_eval = fast

    def batch_seconds(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    rows = []
    for name, (_, _, shape) in MODELS.items():
        paths = {}
        for fast in (False, True):  # one model per path: switching would rebuild the plan
            model = build(name)
            set_fast_eval(model, fast)
            x = np.random.default_rng(2).random((1, *shape), dtype=np.float32)
            recorded = record_forward(model, x)
            for _ in range(20):
                model(x)
            paths[fast] = (model, (lambda model=model, x=x: model(x)), recorded)
        times: dict[tuple[bool, str], list[float]] = {(f, k): [] for f in paths for k in ("forward", "kernels")}
        for r in range(rounds):
            order = [(f, k) for f in paths for k in ("forward", "kernels")]
            for fast, kind in (order if r % 2 == 0 else order[::-1]):
                model, forward, recorded = paths[fast]
                times[fast, kind].append(batch_seconds(forward if kind == "forward" else recorded.replay))
        layers = layer_count(paths[True][0])
        for fast, label in ((False, "layer by layer"), (True, "eval plan")):
            forward = statistics.median(times[fast, "forward"])
            kernels = statistics.median(times[fast, "kernels"])
            rest = forward - kernels
            rows.append([f"{name} ({label})", layers, len(paths[fast][2].calls), forward * 1e6, kernels * 1e6,
                         rest * 1e6, rest / layers * 1e6, f"{100 * rest / forward:.0f}%"])
    headers = ["model, batch 1", "layers", "kernel calls", "forward us", "kernels us", "rest us", "rest us/layer",
               "rest share"]
    return format_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    reexec_without_openblas_overrides()
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--peer", choices=("torch", "onnxruntime", "both"), default="both")
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    ours, rest = parser.parse_known_args(argv)
    import fastnn

    fastnn.set_num_threads(ours.threads)
    if ours.overhead:
        print(f"Python overhead of one batch-1 eval forward, {ours.threads} threads (medians of 15 alternating "
              "rounds of 50 calls; kernels: the same kernel calls replayed back to back)")
        print(overhead_table(ours.threads, rounds=15))
        return 0
    from harness import run

    peers = ("torch", "onnxruntime") if ours.peer == "both" else (ours.peer,)
    for peer in peers:
        run(pairs_for(peer, ours.threads), peer, f"eval forward, fastnn vs {peer}",
            rest + ["--threads", str(ours.threads)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
