"""Step by step, do fastnn and its PyTorch twin compute the same training run? bench_cifar.py's
recipe (same initial weights, batches, SGD momentum 0.9, weight decay 5e-4) run as four twins:
fastnn and PyTorch, each in float32 and float64. PyTorch's float64 run is the reference; every
few steps each other run's distance from it is printed:

- loss: |training loss - reference loss| of that step's batch;
- params: ||p - p_ref|| / ||p_ref|| over all parameters concatenated;
- running stats: the same over all BatchNorm running means and variances;
- eval logits: max |logit - ref| / max |ref| of the eval-mode (running statistics) forward on
  the first --test-samples test images, and the fraction of them whose argmax agrees.

After the last step, each float32 run is also checked at its own weights against float64
arithmetic (eval logits, one batch's gradients): float32-only kernel paths, which the float64
twins do not take, are checked there without any trajectory in between.

If fastnn computes what PyTorch computes (forward, backward, BatchNorm's running statistics and
eval mode, the optimiser), its float64 run stays within float64 rounding of the reference, grown
by training (~1e-10 after tens of steps), while any difference of recipe shows as a distance
many orders larger. The float32 runs show how fast each library's own float32 rounding is
amplified: if fastnn's float32 run strays from the reference no faster than PyTorch's own, the
float32 twins' parting is rounding, not a difference in what they compute.

    PYTHONPATH=python python benchmarks/cifar_twin_trace.py [--model resnet20] [--steps 60]
        [--every 5] [--seed 0] [--test-samples 256] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cifar import (BATCH, DEFAULT_DATA, LEARNING_RATES, FastnnRun, TorchRun, batch_orders, load,  # noqa: E402
                         missing_data, twins)

REFERENCE = "torch float64"
COMPARED = ("fastnn float64", "fastnn float32", "torch float32")


class Twin:
    """One of the four runs: its training loop (bench_cifar's), data in its dtype and a reader
    of its state as float64 NumPy arrays."""

    def __init__(self, library: str, model, lr: float, data) -> None:
        import numpy as np
        import torch

        self.library = library
        x_train, y_train, x_test, _ = data
        if library == "fastnn":
            dtype = next(iter(model.parameters())).data.dtype
            self.run = FastnnRun(model, lr)
            self.x, self.y, self.x_test = x_train.astype(dtype), y_train, x_test.astype(dtype)
        else:
            dtype = next(model.parameters()).dtype
            self.run = TorchRun(model, lr)
            self.x = torch.from_numpy(x_train).to(dtype)
            self.y, self.x_test = torch.from_numpy(y_train), torch.from_numpy(x_test).to(dtype)
        self.np = np

    def step(self, batch) -> float:
        return self.run.epoch(self.x, self.y, [batch])

    def params_and_stats(self):
        """(all parameters, all floating-point buffers), each concatenated into one float64 vector."""
        np, model = self.np, self.run.model
        if self.library == "fastnn":
            params = [np.asarray(p.data, np.float64).ravel() for p in model.parameters()]
            stats = [np.asarray(b, np.float64).ravel() for _, b in model.named_buffers() if b.dtype.kind == "f"]
        else:
            params = [p.detach().double().numpy().ravel() for p in model.parameters()]
            stats = [b.double().numpy().ravel() for _, b in model.named_buffers() if b.dtype.is_floating_point]
        return np.concatenate(params), np.concatenate(stats or [np.zeros(0)])  # a model may have no BatchNorm

    def eval_logits(self):
        np, model = self.np, self.run.model
        model.eval()
        if self.library == "fastnn":
            out = np.asarray(model(self.x_test), np.float64)
        else:
            import torch

            with torch.inference_mode():
                out = model(self.x_test).double().numpy()
        model.train()
        return out


def distances(run: Twin, ref: Twin, loss: float, ref_loss: float) -> dict[str, float]:
    np = run.np
    p, s = run.params_and_stats()
    p_ref, s_ref = ref.params_and_stats()
    logits, logits_ref = run.eval_logits(), ref.eval_logits()
    return {"loss": abs(loss - ref_loss),
            "params": float(np.linalg.norm(p - p_ref) / np.linalg.norm(p_ref)),
            "running_stats": float(np.linalg.norm(s - s_ref) / np.linalg.norm(s_ref)) if s_ref.size else float("nan"),
            "eval_logits": float(np.abs(logits - logits_ref).max() / np.abs(logits_ref).max()),
            "eval_argmax_agree": float(np.mean(logits.argmax(1) == logits_ref.argmax(1)))}


def trace(model_name: str, data, steps: int, every: int, seed: int = 0) -> list[dict[str, Any]]:
    """The distances of the COMPARED runs from the REFERENCE after steps 1, every + 1, ... and
    after the last step."""
    lr = LEARNING_RATES[model_name]
    runs: dict[str, Twin] = {}
    for dtype in ("float32", "float64"):
        model, twin = twins(model_name, seed, dtype)
        runs[f"fastnn {dtype}"] = Twin("fastnn", model, lr, data)
        runs[f"torch {dtype}"] = Twin("torch", twin, lr, data)
    per_epoch = batch_orders(len(data[1]), epochs=-(-steps // (len(data[1]) // BATCH)), seed=seed + 1)
    batches = [b for epoch in per_epoch for b in epoch][:steps]
    rows = []
    for s, batch in enumerate(batches):
        losses = {name: run.step(batch) for name, run in runs.items()}
        if s % every == 0 or s == len(batches) - 1:
            ref = runs[REFERENCE]
            rows.append({"step": s + 1, **{name: distances(runs[name], ref, losses[name], losses[REFERENCE])
                                           for name in COMPARED}})
    last = batches[-1]
    return rows, {name: same_weights_check(runs[name], last) for name in ("fastnn float32", "torch float32")}


def same_weights_check(run: Twin, batch) -> dict[str, float]:
    """The float32 run's own kernels against float64 arithmetic at the weights it has reached
    (no trajectory involved): its eval logits against those of a float64 PyTorch copy of its
    parameters and running statistics, and its gradients of one training batch against the
    copy's. Large errors here would be a float32-only kernel fault that the float64 twins
    cannot show (fastnn's float32 convolutions take other paths: Winograd, AVX2 blocking)."""
    import copy

    import torch
    from bench_gpu import torch_twin

    np, model = run.np, run.run.model
    reference = (torch_twin(model) if run.library == "fastnn" else copy.deepcopy(model)).double()
    logits = run.eval_logits()
    reference.eval()
    with torch.no_grad():
        logits_ref = reference(torch.as_tensor(np.asarray(run.x_test), dtype=torch.float64)).numpy()
    x, y = run.x[batch], run.y[batch]
    model.train()
    if run.library == "fastnn":
        loss_fn = run.run.loss_fn
        loss_fn(model(x), y)
        run.run.opt.zero_grad()
        model.backward(loss_fn.backward())
        grads = [np.asarray(p.grad, np.float64) for p in model.parameters()]
    else:
        run.run.opt.zero_grad()
        run.run.loss_fn(model(x), y).backward()
        grads = [p.grad.double().numpy() for p in model.parameters()]
    reference.train()
    xr = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    torch.nn.functional.cross_entropy(reference(xr), torch.as_tensor(np.asarray(y))).backward()
    grads_ref = [p.grad.numpy() for p in reference.parameters()]
    per_param = [np.linalg.norm(g - r) / np.linalg.norm(r) for g, r in zip(grads, grads_ref)]
    return {"eval_logits": float(np.abs(logits - logits_ref).max() / np.abs(logits_ref).max()),
            "eval_argmax_agree": float(np.mean(logits.argmax(1) == logits_ref.argmax(1))),
            "grad_median": float(np.median(per_param)), "grad_max": float(np.max(per_param))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of the CIFAR-10 .npz files")
    parser.add_argument("--model", choices=sorted(LEARNING_RATES), default="resnet20")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-samples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.steps < 1 or args.every < 1:
        parser.error(f"--steps and --every must be >= 1; got {args.steps} and {args.every}")
    reason = missing_data(args.data)
    if reason:
        print(f"cifar_twin_trace: skipped: {reason}")
        return 0
    import fastnn
    import torch

    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    data = load(args.data, 11000, args.test_samples)
    rows, same_weights = trace(args.model, data, args.steps, args.every, args.seed)
    if args.json:
        json.dump({"model": args.model, "seed": args.seed, "reference": REFERENCE, "torch": torch.__version__,
                   "threads": args.threads, "rows": rows, "same_weights": same_weights}, sys.stdout, indent=2)
        print()
        return 0
    print(f"{args.model}, seed {args.seed}: distance from the {REFERENCE} run after each step "
          "(loss: absolute; params, running stats, eval logits: relative; agree: eval argmax)")
    print(f"{'step':>4}  " + "  ".join(f"{name:<45}" for name in COMPARED))
    print(f"{'':>4}  " + "  ".join(f"{'loss':>8} {'params':>8} {'stats':>8} {'logits':>8} {'agree':>6}"
                                   for _ in COMPARED))
    for r in rows:
        print(f"{r['step']:>4}  " + "  ".join(
            f"{d['loss']:8.1e} {d['params']:8.1e} {d['running_stats']:8.1e} {d['eval_logits']:8.1e} "
            f"{d['eval_argmax_agree']:6.3f}" for d in (r[name] for name in COMPARED)))
    print(f"At step {rows[-1]['step']}, each float32 run against float64 PyTorch at its own weights: eval logits "
          "(relative, argmax agreement); one batch's parameter gradients (relative, median and max over parameters)")
    for name, d in same_weights.items():
        print(f"  {name:<15} logits {d['eval_logits']:.1e}, agree {d['eval_argmax_agree']:.3f}; "
              f"gradients {d['grad_median']:.1e} median, {d['grad_max']:.1e} max")
    return 0


if __name__ == "__main__":
    sys.exit(main())
