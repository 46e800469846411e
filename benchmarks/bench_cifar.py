"""End to end on real CIFAR-10 images: fastnn vs a PyTorch twin training simple_cnn (the 4-conv
CNN) and ResNet-20 by one recipe, with the same initial weights, batch order and updates.

Data: ../shared/data/cifar10 next to the repository (--data to point elsewhere; the benchmark
skips, saying why, where it is absent). Training images: the 2,000 lossless images of
data_batch_1 and the 9,000 JPEG-decoded test images that are not among the first 1,000 (the JPEG
set is sorted by class, test order within a class, so those are each class's first images there;
checked against the lossless ones by pixel distance); test images: the 1,000 lossless first test
images. --train-samples / --test-samples take the first N (the training order is shuffled once,
seeded, so a prefix mixes both sources).

Recipe (both libraries): per-channel standardisation from the training images, SGD with momentum
0.9, weight decay 5e-4, a fixed learning rate, batch 128 (the remainder dropped), a seeded
permutation per epoch (the same batches for both); the step as the README writes it (``model.backward(loss_fn.backward())``;
``loss.backward()`` in PyTorch). Each epoch runs in segments of --segment-batches batches (10)
that alternate between the libraries (who goes first alternates), so the two sides of a pair
run seconds apart: whole epochs per turn (--segment-batches 0) put tens of seconds between them,
over which this kind of shared host drifts by up to 30%. An epoch's time is the sum of its
segments; the ratio is the median of the per-epoch ratios (> 1: fastnn faster), and the per-epoch
ratios give its run-to-run range. Test accuracy of both after every epoch (untimed) and after the last: they
start equal and apply the same float32 updates, so they should agree within noise; but float32
gradients differ from step 1 (summation orders and algorithms: on ResNet-20 at seed 0's first
batch both libraries' float32 gradients sit up to ~3e-3 from float64 ones in the early layers,
where BatchNorm's backward cancels, fastnn's 1-16x PyTorch's), training amplifies that (the
float32 twins are ~1e-2 apart after 5 steps), and short runs' eval-mode accuracy swings from
epoch to epoch (BatchNorm running statistics lag the weights): the per-epoch accuracies show
how much.

How much is noise: ``--seeds K`` trains each model K times, seed s drawing the initial weights
with ``fastnn.manual_seed(s)`` and the batch order from seed s + 1 (seed 0 is the default run),
and reports per library the mean and standard deviation of the test accuracy after every epoch,
and those of the paired difference fastnn - torch (the same seed's twins). ``--dtype float64``
trains both twins in float64 (fastnn's float64 kernels, ``model.double()`` in PyTorch): computing
the same thing, they then agree to ~1e-10 for many steps (cifar_twin_trace.py follows that step by
step), so any gap left there is a difference in what the libraries compute, not rounding.

    PYTHONPATH=python python benchmarks/bench_cifar.py [--epochs 3] [--train-samples 11000]
        [--test-samples 1000] [--models simple_cnn,resnet20] [--threads 2] [--seeds 1]
        [--dtype float32] [--segment-batches 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MachineLoad, reexec_without_openblas_overrides, wait_until_idle  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPO, "..", "shared", "data", "cifar10")
FILES = ("train_batch1_first1000.npz", "train_batch1_next1000.npz", "test_first1000.npz",
         "test10000_jpeg_classordered.npz")
CLASSES, BATCH = 10, 128
# Mean absolute pixel difference between a lossless image and its JPEG decoding (about 6 on
# average, up to ~12 for one image), against 30+ for different images of one class.
SAME_IMAGE_MAX_DIFF = 20.0
LEARNING_RATES = {"simple_cnn": 0.02, "resnet20": 0.05}


def missing_data(folder: str) -> str | None:
    """Why the data cannot be used, or None."""
    absent = [f for f in FILES if not os.path.isfile(os.path.join(folder, f))]
    if absent:
        return f"CIFAR-10 files not found in {os.path.abspath(folder)}: {', '.join(absent)}"
    return None


def load(folder: str, train_samples: int, test_samples: int, seed: int = 0):
    """(x_train, y_train, x_test, y_test): float32 NCHW standardised by the training images'
    per-channel mean and deviation, int64 labels."""
    import numpy as np

    def read(name):
        with np.load(os.path.join(folder, name)) as f:
            return f["x"], f["y"].astype(np.int64)

    parts = [read(FILES[0]), read(FILES[1])]
    x_test, y_test = read(FILES[2])
    jpeg_x, jpeg_y = read(FILES[3])
    keep = np.ones(len(jpeg_y), bool)
    for c in range(CLASSES):
        in_test = np.flatnonzero(y_test == c)
        of_class = np.flatnonzero(jpeg_y == c)
        first = of_class[:len(in_test)]  # the same images, JPEG-decoded
        diff = np.abs(jpeg_x[first].astype(np.int16) - x_test[in_test].astype(np.int16)).mean(axis=(1, 2, 3))
        if diff.max() > SAME_IMAGE_MAX_DIFF:
            raise SystemExit(f"bench_cifar: the JPEG test set's first images of class {c} are not the lossless "
                             f"test images (mean pixel difference up to {diff.max():.1f}); cannot hold them out")
        keep[first] = False
    parts.append((jpeg_x[keep], jpeg_y[keep]))
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    order = np.random.default_rng(seed).permutation(len(y_train))[:train_samples]
    x_train, y_train = x_train[order], y_train[order]
    x_test, y_test = x_test[:test_samples], y_test[:test_samples]

    def nchw(x):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0

    x_train, x_test = nchw(x_train), nchw(x_test)
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True)
    return ((x_train - mean) / std).astype(np.float32), y_train, ((x_test - mean) / std).astype(np.float32), y_test


def build(name: str, seed: int = 0):
    import fastnn
    from fastnn import models

    fastnn.manual_seed(seed)
    if name == "resnet20":
        return models.resnet(20, 3, CLASSES, 32)
    return models.simple_cnn(3, CLASSES, 32)


def cast_model(model, dtype):
    """``model`` with its parameters and floating-point buffers (BatchNorm's running statistics)
    converted to ``dtype`` in place; the layers then run their kernels for that dtype."""
    import numpy as np

    for p in model.parameters():
        p.data = p.data.astype(dtype)
    for m in model.modules():
        own = [(n, b) for n, b in m.named_buffers() if "." not in n and np.asarray(b).dtype.kind == "f"]
        for n, b in own:
            m.register_buffer(n, b.astype(dtype))
    return model


def batch_orders(samples: int, epochs: int, seed: int = 1) -> list[list[Any]]:
    """Per epoch, the index arrays of its full batches (a short remainder is dropped: a batch of
    one would have no BatchNorm statistics)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(epochs):
        perm = rng.permutation(samples)
        orders.append([perm[i:i + BATCH] for i in range(0, samples - BATCH + 1, BATCH)])
    return orders


class FastnnRun:
    def __init__(self, model, lr: float) -> None:
        from fastnn import nn, optim

        self.model, self.loss_fn = model, nn.SoftmaxCrossEntropy()
        self.opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)

    def train(self, x, y, batches) -> float:
        """Trains on ``batches`` in turn; the sum of their losses times their sizes."""
        model, loss_fn, opt = self.model, self.loss_fn, self.opt
        model.train()
        total = 0.0
        for idx in batches:
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
            total += loss * len(idx)
        return total

    def accuracy(self, x, y) -> float:
        import numpy as np

        self.model.eval()
        hits = sum(int((np.argmax(self.model(x[i:i + 500]), axis=1) == y[i:i + 500]).sum())
                   for i in range(0, len(y), 500))
        return hits / len(y)


class TorchRun:
    def __init__(self, model, lr: float) -> None:
        import torch

        self.torch, self.model = torch, model
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)

    def train(self, x, y, batches) -> float:
        """Trains on ``batches`` in turn; the sum of their losses times their sizes."""
        torch, model, loss_fn, opt = self.torch, self.model, self.loss_fn, self.opt
        model.train()
        total = 0.0
        for idx in batches:
            index = torch.from_numpy(idx)
            loss = loss_fn(model(x[index]), y[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total

    def accuracy(self, x, y) -> float:
        torch = self.torch
        self.model.eval()
        with torch.inference_mode():
            hits = sum(int((self.model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum()) for i in range(0, len(y), 500))
        return hits / len(y)


def twins(name: str, seed: int = 0, dtype: str = "float32"):
    """(fastnn model, its PyTorch twin): the same initial weights, drawn from ``seed``, both in
    ``dtype``."""
    import numpy as np
    from bench_gpu import torch_twin

    model = build(name, seed)
    twin = torch_twin(model)  # from the float32 weights, so both dtypes start from the same values
    if dtype == "float64":
        cast_model(model, np.float64)
        twin = twin.double()
    return model, twin


def segments(batches: list[Any], size: int) -> list[list[Any]]:
    """``batches`` cut into consecutive runs of ``size`` (the last may be shorter); one run of
    all of them for size 0."""
    if size == 0:
        return [batches]
    return [batches[i:i + size] for i in range(0, len(batches), size)]


def compare(name: str, data, epochs: int, seed: int = 0, dtype: str = "float32",
            segment_batches: int = 10) -> dict[str, Any]:
    import torch

    x_train, y_train, x_test, y_test = data
    model, twin = twins(name, seed, dtype)
    runs = {"fastnn": FastnnRun(model, LEARNING_RATES[name]), "torch": TorchRun(twin, LEARNING_RATES[name])}
    inputs = {"fastnn": (x_train, y_train),
              "torch": (torch.from_numpy(x_train), torch.from_numpy(y_train))}
    tests = {"fastnn": (x_test, y_test), "torch": (torch.from_numpy(x_test), torch.from_numpy(y_test))}
    times: dict[str, list[float]] = {"fastnn": [], "torch": []}
    losses: dict[str, list[float]] = {"fastnn": [], "torch": []}
    # Test accuracy after every epoch (not timed): how much it swings from epoch to epoch is
    # the noise the two libraries' final accuracies are compared against.
    accuracies: dict[str, list[float]] = {"fastnn": [], "torch": []}
    turn = 0
    for batches in batch_orders(len(y_train), epochs, seed + 1):
        seconds = {"fastnn": 0.0, "torch": 0.0}
        loss_sums = {"fastnn": 0.0, "torch": 0.0}
        for segment in segments(batches, segment_batches):
            for lib in (("fastnn", "torch") if turn % 2 == 0 else ("torch", "fastnn")):
                wait_until_idle(0.5)  # the other library's spinning workers go to sleep first
                start = time.perf_counter()
                loss_sums[lib] += runs[lib].train(*inputs[lib], segment)
                seconds[lib] += time.perf_counter() - start
            turn += 1
        for lib in runs:
            times[lib].append(seconds[lib])
            losses[lib].append(loss_sums[lib] / sum(len(b) for b in batches))
            accuracies[lib].append(runs[lib].accuracy(*tests[lib]))
    ratios = [t / f for f, t in zip(times["fastnn"], times["torch"])]
    return {"model": name, "seed": seed, "lr": LEARNING_RATES[name], "segment_batches": segment_batches,
            "epoch_seconds": times, "train_loss": losses,
            "epoch_time_ratio": statistics.median(ratios), "epoch_time_ratios": ratios,
            "test_accuracy": {lib: acc[-1] for lib, acc in accuracies.items()},
            "test_accuracy_per_epoch": accuracies}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired(fastnn: list[float], torch: list[float]) -> tuple[float, float, float | None]:
    """Mean and standard deviation of the paired differences fastnn - torch, and the mean over
    its standard error (a paired t statistic; None where the differences do not vary)."""
    mean, std = mean_std([a - b for a, b in zip(fastnn, torch)])
    return mean, std, (mean / (std / math.sqrt(len(fastnn))) if std > 0 else None)


def seed_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's runs over several seeds: per epoch, each library's test accuracy (mean, std)
    and the paired difference fastnn - torch of the same seed's twins (mean, std, paired t:
    |t| well above 2 with several seeds says the gap is systematic); and the paired difference
    of the epoch's mean training loss."""
    def per_epoch(key, lib):
        return [list(a) for a in zip(*(r[key][lib] for r in rows))]

    summary: dict[str, Any] = {"model": rows[0]["model"], "seeds": [r["seed"] for r in rows], "fastnn": [],
                               "torch": [], "difference": [], "paired_t": [], "train_loss_difference": [],
                               "train_loss_paired_t": []}
    for f, t in zip(per_epoch("test_accuracy_per_epoch", "fastnn"), per_epoch("test_accuracy_per_epoch", "torch")):
        summary["fastnn"].append(mean_std(f))
        summary["torch"].append(mean_std(t))
        mean, std, t_stat = paired(f, t)
        summary["difference"].append((mean, std))
        summary["paired_t"].append(t_stat)
    for f, t in zip(per_epoch("train_loss", "fastnn"), per_epoch("train_loss", "torch")):
        mean, std, t_stat = paired(f, t)
        summary["train_loss_difference"].append((mean, std))
        summary["train_loss_paired_t"].append(t_stat)
    return summary


def print_seed_summary(s: dict[str, Any]) -> None:
    def cells(pairs, scale=100.0, digits=1):
        return "  ".join(f"{scale * m:6.{digits}f} ± {scale * sd:5.{digits}f}" for m, sd in pairs)

    def t_cells(values):
        return "  ".join(f"{t:>15.2f}" if t is not None else f"{'-':>15}" for t in values)

    print(f"{s['model']}, seeds {', '.join(map(str, s['seeds']))}: after each epoch, mean ± std over the seeds")
    print(f"  {'test accuracy %, fastnn':<34} {cells(s['fastnn'])}")
    print(f"  {'test accuracy %, torch':<34} {cells(s['torch'])}")
    print(f"  {'accuracy, fastnn - torch (paired)':<34} {cells(s['difference'])}")
    print(f"  {'  paired t':<34} {t_cells(s['paired_t'])}")
    print(f"  {'train loss, fastnn - torch':<34} {cells(s['train_loss_difference'], 1.0, 3)}")
    print(f"  {'  paired t':<34} {t_cells(s['train_loss_paired_t'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of the CIFAR-10 .npz files")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=11000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--models", default="simple_cnn,resnet20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=1,
                        help="train each model with seeds 0..K-1 (initial weights and batch order) and summarise")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the dtype both twins train in")
    parser.add_argument("--segment-batches", type=int, default=10,
                        help="batches per turn of one library before the other takes over (0: whole epochs)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"argument --seeds: must be >= 1; got {args.seeds}")
    if args.segment_batches < 0:
        parser.error(f"argument --segment-batches: must be >= 0; got {args.segment_batches}")
    reason = missing_data(args.data)
    if reason:
        print(f"bench_cifar: skipped: {reason}")
        return 0
    reexec_without_openblas_overrides()
    import fastnn
    import torch
    from fastnn.bench import machine_info

    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    data = load(args.data, args.train_samples, args.test_samples)
    if args.dtype == "float64":
        data = tuple(a.astype("float64") if a.dtype.kind == "f" else a for a in data)
    names = [name for name in args.models.split(",") if name]
    machine_load = MachineLoad()
    rows = []
    for name in names:
        for seed in range(args.seeds):
            rows.append(compare(name, data, args.epochs, seed, args.dtype, args.segment_batches))
            if args.seeds > 1:  # a long run's progress
                acc = rows[-1]["test_accuracy_per_epoch"]
                print(f"bench_cifar: {name} seed {seed}: fastnn {acc['fastnn']}, torch {acc['torch']}", file=sys.stderr)
    load_info = machine_load.finish()
    summaries = [seed_summary([r for r in rows if r["model"] == name]) for name in names] if args.seeds > 1 else []
    report = {"machine": machine_info(args.threads), "torch": torch.__version__, "threads": args.threads,
              "machine_load": load_info,
              "train_samples": len(data[1]), "test_samples": len(data[3]), "epochs": args.epochs,
              "batch": BATCH, "dtype": args.dtype, "runs": rows}
    if summaries:
        report["seed_summaries"] = summaries
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"CIFAR-10, {len(data[1])} training / {len(data[3])} test images, {args.epochs} epochs, batch {BATCH}, "
          f"{args.threads} threads, torch {torch.__version__}" + (f", {args.dtype}" if args.dtype != "float32" else "")
          + (f", seeds 0-{args.seeds - 1}" if summaries else "")
          + (f", turns of {args.segment_batches} batches" if args.segment_batches else ", turns of whole epochs"))
    print(machine_load.line())
    seed = (lambda value: f"{value:>4} ") if summaries else (lambda value: "")  # a column only with --seeds
    print(f"{'model':<11} {seed('seed')}{'fastnn s/epoch':>14} {'torch s/epoch':>13} {'ratio (range)':>16}  "
          "test accuracy per epoch (fastnn | torch)   (ratio: median per-epoch torch/fastnn time)")
    for r in rows:
        t, acc, per_epoch = r["epoch_seconds"], r["test_accuracy_per_epoch"], r["epoch_time_ratios"]
        print(f"{r['model']:<11} {seed(r['seed'])}{statistics.median(t['fastnn']):>14.2f} "
              f"{statistics.median(t['torch']):>13.2f} "
              f"{r['epoch_time_ratio']:>5.2f}x ({min(per_epoch):.2f}-{max(per_epoch):.2f})  "
              f"{' '.join(f'{100 * a:.1f}' for a in acc['fastnn'])} | {' '.join(f'{100 * a:.1f}' for a in acc['torch'])}")
    for summary in summaries:
        print_seed_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
