"""Does the DataLoader's prefetch thread keep the kernels fed on CIFAR-shaped data with the CLI's
augmentation?

Synthetic CIFAR-10 (3x32x32 float32 images in [0, 1], 10 classes, batch 128) goes through the
exact transform `python -m fastnn train --dataset cifar10 --augment` uses (random crop with 4
pixels of padding, random horizontal flip, per-channel normalisation) into training steps
(forward, loss, backward, SGD-momentum update) of the CLI's CIFAR models. For each model the
script measures, in one process, alternating round by round:

- ``prepare``: ms to make one augmented batch alone (the loader with prefetch=0, no training);
- ``step``: ms per training step on batches made beforehand (the kernels never wait);
- ``loop``: ms per step of the real loop, the loader's prefetch thread preparing batches while
  the kernels run (prefetch=2, the default), and the ms per step the loop waited in ``next()``
  for a batch: ``waiting`` is that wait as a fraction of the loop's step time;
- ``serial``: the same loop with prefetch=0 (no thread: preparation and compute one after the
  other), for comparison.

The cost of feeding is (loop - step) / loop: waiting for batches plus the kernels slowed by the
preparing thread taking a core. Medians over the rounds.

    PYTHONPATH=python python benchmarks/bench_loader.py [--rounds 5] [--steps 12] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import reexec_without_openblas_overrides, wait_until_idle  # noqa: E402

BATCH, CLASSES = 128, 10


def synthetic_cifar(n: int, seed: int = 0):
    import numpy as np
    from fastnn import data

    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    return data.ArrayDataset(x, rng.integers(0, CLASSES, n))


def cli_transform(dataset):
    """The transform of `fastnn train --dataset cifar10 --augment` (fastnn.cli.train._loaders)."""
    from fastnn import data, recipes

    normalize = data.Normalize(dataset.x.mean(axis=(0, 2, 3)).tolist(), dataset.x.std(axis=(0, 2, 3)).tolist())
    return data.Compose(recipes.dataset_recipe("cifar10").augmentation() + [normalize])


def stepper(name: str):
    import fastnn
    from fastnn import nn, recipes

    fastnn.manual_seed(0)
    model = recipes.build_model(name, (3, 32, 32), CLASSES)
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = recipes.build_optimizer("sgd", model.parameters())

    def step(x, y):
        loss_fn(model(x), y)
        opt.zero_grad()
        model.backward_params(loss_fn.backward())
        opt.step()

    return step


def measure(step, dataset, transform, steps: int, prefetch: int, seed: int) -> tuple[float, float]:
    """(ms per step, ms per step waiting in next()) over ``steps`` steps of a fresh epoch."""
    from fastnn import data

    loader = data.DataLoader(dataset, BATCH, shuffle=True, seed=seed, transform=transform, prefetch=prefetch)
    it = iter(loader)
    step(*next(it))  # the loader's thread starts and the first batch is made: not steady state
    waited = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        x, y = next(it)
        waited += time.perf_counter() - t
        step(x, y)
    total = time.perf_counter() - start
    it.close()
    return 1e3 * total / steps, 1e3 * waited / steps


def prepare_ms(dataset, transform, batches: int, seed: int) -> float:
    from fastnn import data

    it = iter(data.DataLoader(dataset, BATCH, shuffle=True, seed=seed, transform=transform, prefetch=0))
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    it.close()
    return 1e3 * elapsed / batches


def step_ms(step, batches, steps: int) -> float:
    step(*batches[-1])
    start = time.perf_counter()
    for i in range(steps):
        step(*batches[i % len(batches)])
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> int:
    reexec_without_openblas_overrides()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp,simple_cnn,resnet20", help="the CLI's models to train")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: fastnn's, all cores)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import fastnn

    if args.threads:
        fastnn.set_num_threads(args.threads)
    dataset = synthetic_cifar(BATCH * (args.steps + 2) * 2)
    transform = cli_transform(dataset)
    from fastnn import data

    ready = list(data.DataLoader(dataset, BATCH, shuffle=True, seed=99, transform=transform, prefetch=0))[:8]
    results = []
    for name in args.models.split(","):
        step = stepper(name)
        rounds: dict[str, list[float]] = {k: [] for k in ("prepare", "step", "loop", "waiting_ms", "serial")}
        for r in range(args.rounds):
            wait_until_idle(0.5)
            rounds["prepare"].append(prepare_ms(dataset, transform, args.steps, seed=r))
            wait_until_idle(0.5)
            rounds["step"].append(step_ms(step, ready, args.steps))
            wait_until_idle(0.5)
            loop, waited = measure(step, dataset, transform, args.steps, prefetch=2, seed=r)
            rounds["loop"].append(loop)
            rounds["waiting_ms"].append(waited)
            wait_until_idle(0.5)
            rounds["serial"].append(measure(step, dataset, transform, args.steps, prefetch=0, seed=r)[0])
        med = {k: statistics.median(v) for k, v in rounds.items()}
        med["waiting"] = statistics.median(w / t for w, t in zip(rounds["waiting_ms"], rounds["loop"]))
        med["feeding_cost"] = statistics.median((t - s) / t for t, s in zip(rounds["loop"], rounds["step"]))
        results.append({"model": name, **med})

    machine = {"threads": fastnn.get_num_threads(), "logical_cpus": os.cpu_count(), "simd": fastnn.build_info()["simd"],
               "batch": BATCH, "rounds": args.rounds, "steps": args.steps}
    if args.json:
        print(json.dumps({"machine": machine, "results": results}, indent=2))
        return 0
    print(f"batch {BATCH} of 3x32x32 with crop(pad 4) + flip + normalize; {machine['threads']} kernel threads on "
          f"{machine['logical_cpus']} logical CPUs ({machine['simd']}); medians of {args.rounds} rounds x "
          f"{args.steps} steps, ms per batch")
    print(f"{'model':<12}{'prepare':>9}{'step':>9}{'loop':>9}{'waiting':>9}{'cost':>8}{'serial':>9}")
    for r in results:
        print(f"{r['model']:<12}{r['prepare']:>9.1f}{r['step']:>9.1f}{r['loop']:>9.1f}{100 * r['waiting']:>8.1f}%"
              f"{100 * r['feeding_cost']:>7.1f}%{r['serial']:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
