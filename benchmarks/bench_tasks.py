"""The verification / identification recipe, trained by fastnn and by a PyTorch twin of it with
the same initial weights, the same batches in the same order and the same learning rate at every
step, then scored by the same evaluation code (fastnn.cli.tasks.open_set): do the two reach the
same open-set and closed-set numbers, within the noise between seeds?

Recipe (the one issue 13 measured in PyTorch): the 4-conv CNN (simple_cnn) ending in a 64-d
embedding, ArcFace s=16 m=0.3, one-cycle SGD (momentum 0.9, Nesterov, weight decay 5e-4,
peak lr 0.05), batch 128, 8 epochs, on classes 0-5; classes 6-9 are the unseen identities.
Data: the real MNIST test set (10,000 images) from ../shared/data/mnist when it is there, split
80/20 stratified into training and test images; else the bundled 8x8 digits.

    python benchmarks/bench_tasks.py [--seeds 0 1] [--epochs 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

import fastnn
from fastnn import data, nn, recipes
from fastnn.cli.tasks import task_for
from fastnn.cli.tasks.open_set import _identification_scores, _normalized, _verification_scores

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def load(which: str) -> tuple[data.ArrayDataset, data.ArrayDataset, str]:
    if which == "mnist" and (MNIST / "t10k-images-idx3-ubyte.gz").exists():
        from fastnn.data.mnist import read_idx

        x = read_idx(MNIST / "t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
        y = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
        full = data.ArrayDataset(x, y, classes=[str(c) for c in range(10)])
        train, test = data.stratified_split(full, 0.2, seed=0)
        return train, test, "MNIST test set (10,000 real images: 8,000 train / 2,000 test)"
    train, test = data.digits()
    return train, test, "digits (1,797 8x8 images bundled with scikit-learn)"


def torch_arcface(embeddings, weight, labels, s: float, m: float):
    """ArcFace as insightface writes it (easy_margin=False), in PyTorch."""
    import torch
    import torch.nn.functional as F

    cos = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1, 1)
    sin = torch.sqrt((1.0 - cos * cos).clamp(0, 1))
    phi = cos * math.cos(m) - sin * math.sin(m)
    phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
    one_hot = F.one_hot(labels, weight.shape[0]).to(cos.dtype)
    return F.cross_entropy(s * (one_hot * phi + (1 - one_hot) * cos), labels)


def run_seed(seed: int, epochs: int, train_all: data.ArrayDataset, test_all: data.ArrayDataset) -> dict:
    import torch

    from bench_gpu import torch_twin

    config = {"task": "identification", "eval_classes": ["6", "7", "8", "9"], "seed": seed, "enroll": 5,
              "unknown_classes": 0, "dataset": "bench"}
    task = task_for(config)
    train, test = task.select(train_all, test_all, config)
    unseen = task.unseen
    mean, std = train.x.mean(axis=(0, 2, 3)).tolist(), train.x.std(axis=(0, 2, 3)).tolist()
    normalize = data.Normalize(mean, std)
    shape, classes = train.x.shape[1:], train.num_classes

    fastnn.manual_seed(seed)
    model = recipes.build_model("simple_cnn", shape, classes, embedding_dim=64)
    loss = nn.ArcFaceLoss(64, classes, s=16.0, m=0.3)
    twin = torch_twin(model)
    twin_weight = torch.nn.Parameter(torch.from_numpy(np.array(loss.weight.data, dtype=np.float32)))
    params = [*model.parameters(), *loss.parameters()]
    opt = recipes.build_optimizer("sgd", params, 0.05, 5e-4)
    loader = data.DataLoader(train, 128, shuffle=True, seed=seed, transform=normalize)
    schedule = recipes.build_schedule("onecycle", opt, epochs, len(loader))
    group = opt.param_groups[0]
    twin_opt = torch.optim.SGD([*twin.parameters(), twin_weight], lr=group["lr"], momentum=group["momentum"],
                               nesterov=group["nesterov"], weight_decay=group["weight_decay"])
    seconds = {"fastnn": 0.0, "PyTorch": 0.0}
    for _ in range(epochs):
        for x, y in loader:
            lr = group["lr"]
            t0 = time.perf_counter()
            loss(model(x), y)
            opt.zero_grad()
            model.backward_params(loss.backward())
            opt.step()
            t1 = time.perf_counter()
            for g in twin_opt.param_groups:
                g["lr"] = lr
            twin_opt.zero_grad()
            torch_arcface(twin(torch.from_numpy(x)), twin_weight, torch.from_numpy(y), 16.0, 0.3).backward()
            twin_opt.step()
            t2 = time.perf_counter()
            seconds["fastnn"] += t1 - t0
            seconds["PyTorch"] += t2 - t1
            schedule.step()

    def embed_fastnn(dataset):
        model.eval()
        return _normalized(model(normalize(dataset.x)))

    def embed_torch(dataset):
        twin.eval()
        with torch.no_grad():
            return _normalized(twin(torch.from_numpy(normalize(dataset.x))).numpy())

    results = {}
    for name, embed in (("fastnn", embed_fastnn), ("PyTorch", embed_torch)):
        from fastnn.tasks import identification_split

        e_unseen, e_test = embed(unseen), embed(test)
        open_v = _verification_scores(e_unseen, unseen.y, 6000, seed)["report"]
        closed_v = _verification_scores(e_test, test.y, 6000, seed)["report"]
        split = identification_split(unseen.y, 5, 0, seed=seed)
        open_i = _identification_scores(e_unseen[split.probes], unseen.y[split.probes], e_unseen[split.gallery],
                                        unseen.y[split.gallery], 0)
        results[name] = {"open AUC": open_v["auc"], "open EER": open_v["eer"], "open rank-1": open_i["rank1"],
                         "closed AUC": closed_v["auc"], "closed EER": closed_v["eer"],
                         "train seconds": seconds[name]}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", choices=["mnist", "digits"], default="mnist")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_tasks: PyTorch is not installed (pip install torch==2.13.0); nothing to compare")
        return 0
    torch.set_num_threads(args.threads)
    fastnn.set_num_threads(args.threads)
    train, test, what = load(args.data)
    print(f"{what}; simple_cnn -> 64-d, ArcFace s=16 m=0.3, one-cycle SGD, batch 128, {args.epochs} epochs, "
          f"classes 0-5 trained, 6-9 unseen; {args.threads} threads")
    keys = ["open AUC", "open EER", "open rank-1", "closed AUC", "closed EER", "train seconds"]
    print("| seed | metric | fastnn | PyTorch twin |\n|---|---|---|---|")
    for seed in args.seeds:
        results = run_seed(seed, args.epochs, train, test)
        for key in keys:
            f, t = results["fastnn"][key], results["PyTorch"][key]
            fmt = "{:.1f}" if key == "train seconds" else "{:.4f}"
            print(f"| {seed} | {key} | {fmt.format(f)} | {fmt.format(t)} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
