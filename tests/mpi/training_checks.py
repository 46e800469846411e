"""Launched by tests/test_distributed_mpi.py as ``mpiexec -n 2 python tests/mpi/training_checks.py
OUT.json WORKDIR``: every check that needs several ranks, in one launch (each launch costs an
interpreter start per rank). Rank 0 also runs the single-process twin of each run itself, then
writes the measured numbers to OUT.json; the test asserts on them."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import fastnn
from fastnn import distributed as dist
from fastnn import nn, optim, reference
from fastnn.data import DataLoader

dist.init()
RANK, WORLD = dist.rank(), dist.world_size()
PER_RANK_BATCH, STEPS = 32, 20
BUCKETS: dict[str, int] = {}  # buckets per model in the distributed runs
EARLY: dict[str, int] = {}  # of which started by the backward-done hooks, before the backward ended


def data(n: int = 320, image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 1, 8, 8) if image else (n, 24)).astype(np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))


def cnn() -> nn.Module:
    # BatchNorm in a conv stack and in a residual block, so the containers' hooks and the
    # synchronised statistics are both exercised.
    block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Residual(block), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def train(build, make_optimizer, image: bool, distributed: bool, sync_bn: bool) -> nn.Module:
    fastnn.manual_seed(RANK if distributed else 0)  # ranks start apart: the wrap must make them equal
    model = build()
    if sync_bn:
        model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    net = dist.DistributedDataParallel(model, bucket_mb=0.002) if distributed else model  # several buckets
    if distributed:
        BUCKETS[build.__name__] = len(net._buckets)
    opt = make_optimizer(net.parameters())
    loss_fn = nn.SoftmaxCrossEntropy()
    x, y = data(image=image)
    loader = DataLoader(x=x, y=y, batch_size=PER_RANK_BATCH if distributed else PER_RANK_BATCH * WORLD, shuffle=True,
                        seed=3, prefetch=0, distributed=distributed)
    steps = 0
    while steps < STEPS:
        for xb, yb in loader:
            loss_fn(net(xb), yb)
            opt.zero_grad()
            net.backward_params(loss_fn.backward())
            if distributed:
                EARLY[build.__name__] = net.last_early_buckets
            opt.step()
            steps += 1
            if steps == STEPS:
                break
    return model


def flat(model: nn.Module) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in model.state_dict().values()])


def digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def equivalence() -> dict:
    runs = {
        "mlp_sgd": (mlp, lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3), False, False),
        "cnn_syncbn_sgd": (cnn, lambda p: optim.SGD(p, lr=0.05, momentum=0.9), True, True),
        "mlp_adam": (mlp, lambda p: optim.Adam(p, lr=3e-3), False, False),
    }
    out = {}
    for name, (build, make_optimizer, image, sync_bn) in runs.items():
        model = train(build, make_optimizer, image, True, sync_bn)
        digests = dist.all_gather_object(digest(model))
        if RANK == 0:
            single = train(build, make_optimizer, image, False, False)
            a, b = flat(model), flat(single)
            fastnn.manual_seed(0)
            start = flat(build())  # how far training moved the weights: the difference's scale
            out[name] = {"relative_difference": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
                         "moved": float(np.linalg.norm(b - start) / np.linalg.norm(b)),
                         "ranks_identical": len(set(digests)) == 1}
    return out


def arcface() -> dict:
    """fit with nn.ArcFaceLoss, whose class centres train beside the DDP-wrapped model: 2 ranks x
    32 vs 1 process x 64 (fit broadcasts rank 0's centres and averages their gradients)."""
    def run(distributed: bool) -> tuple[np.ndarray, str]:
        fastnn.manual_seed(RANK if distributed else 0)  # ranks start apart, loss included
        model = nn.Sequential(nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 8))
        loss_fn = nn.ArcFaceLoss(8, 10)
        net = dist.DistributedDataParallel(model) if distributed else model
        opt = optim.SGD([*net.parameters(), *loss_fn.parameters()], lr=0.05, momentum=0.9)
        x, y = data()
        loader = DataLoader(x=x, y=y, batch_size=PER_RANK_BATCH if distributed else PER_RANK_BATCH * WORLD,
                            shuffle=True, seed=3, prefetch=0, distributed=distributed)
        fastnn.train.fit(net, loss_fn, opt, loader, 4, quiet=True)
        return np.concatenate([flat(model), flat(loss_fn)]), digest(model) + digest(loss_fn)

    trained, key = run(True)
    digests = dist.all_gather_object(key)
    if RANK != 0:
        return {}
    single, _ = run(False)
    return {"relative_difference": float(np.linalg.norm(trained - single) / np.linalg.norm(single)),
            "ranks_identical": len(set(digests)) == 1}


def sync_batchnorm() -> dict:
    """2-rank SyncBatchNorm vs the float64 reference on the whole batch (rows split by rank)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6 * WORLD, 3, 5, 5)).astype(np.float32) * 2 + 1
    g = rng.standard_normal(x.shape).astype(np.float32)
    weight, bias = np.array([1.0, 0.5, 2.0], np.float32), np.array([0.1, -0.2, 0.3], np.float32)
    bn = dist.SyncBatchNorm(3)
    bn.weight.data[...], bn.bias.data[...] = weight, bias
    rows = slice(6 * RANK, 6 * RANK + 6)
    y = bn(x[rows])
    dx = bn.backward(g[rows])
    ry, mean, inv_std, r_mean, r_var = reference.batch_norm_train(x, weight, bias, np.zeros(3), np.ones(3))
    rdx, rdw, rdb = reference.batch_norm_backward(g, x, weight, mean, inv_std)
    # Local parameter gradients sum over the ranks to the whole batch's.
    dw_sum, db_sum = dist.sum_across_ranks([bn.weight.grad.astype(np.float64), bn.bias.grad.astype(np.float64)])
    rel = lambda a, b: float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))  # noqa: E731
    errors = dist.all_gather_object({"y": rel(y, ry[rows]), "dx": rel(dx, rdx[rows]), "running_mean": rel(bn.running_mean, r_mean),
                                     "running_var": rel(bn.running_var, r_var), "dweight": rel(dw_sum, rdw),
                                     "dbias": rel(db_sum, rdb)})
    return {k: max(e[k] for e in errors) for k in errors[0]}


def resume(workdir: Path) -> dict:
    """fit with a checkpoint each epoch: stopped after epoch 2 and resumed to 4 vs unbroken."""
    def run(checkpoint: Path, stop_after: int | None, resume_from: Path | None) -> str:
        fastnn.manual_seed(0)
        model = dist.DistributedDataParallel(cnn())
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        x, y = data(image=True)
        loader = DataLoader(x=x, y=y, batch_size=16, shuffle=True, seed=5, prefetch=0, distributed=True)
        val = DataLoader(x=x[:50], y=y[:50], batch_size=16, distributed=True, pad=False)
        stop = [lambda epoch, record: stop_after is not None and epoch == stop_after]
        fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), opt, loader, 4, val_loader=val, checkpoint=checkpoint,
                         resume_from=resume_from, callbacks=stop, quiet=True)
        dist.barrier()  # rank 0 has written the checkpoint before anyone reads it
        return digest(model.module)

    unbroken = run(workdir / "unbroken.fastnn", None, None)
    run(workdir / "broken.fastnn", 2, None)
    resumed = run(workdir / "resumed.fastnn", None, workdir / "broken.fastnn")
    return {"same_as_unbroken": dist.all_gather_object(unbroken == resumed)}


def sharded_evaluation() -> dict:
    fastnn.manual_seed(0)
    model = mlp()
    x, y = data(n=101)
    whole = fastnn.train.evaluate(model, DataLoader(x=x, y=y, batch_size=16), nn.SoftmaxCrossEntropy())
    shard = fastnn.train.evaluate(model, DataLoader(x=x, y=y, batch_size=16, distributed=True, pad=False),
                                  nn.SoftmaxCrossEntropy())
    same_everywhere = len({json.dumps([shard["images"], shard["accuracy"], shard["loss"]])
                           for shard in dist.all_gather_object(shard)}) == 1
    return {"images": shard["images"], "whole_images": whole["images"], "same_on_every_rank": same_everywhere,
            "confusion_equal": bool(np.array_equal(shard["confusion_matrix"], whole["confusion_matrix"])),
            "loss_difference": abs(shard["loss"] - whole["loss"])}


if __name__ == "__main__":
    out_path, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    results = {"world_size": WORLD, "buckets": BUCKETS, "early_buckets": EARLY, "equivalence": equivalence(), "arcface": arcface(), "sync_batchnorm": sync_batchnorm(),
               "resume": resume(workdir), "sharded_evaluation": sharded_evaluation()}
    if RANK == 0:
        out_path.write_text(json.dumps(results, indent=1))
