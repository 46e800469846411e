"""Data-parallel training on MPI: scaling from 1 to 2 ranks, all-reduce time and overlap, the
loopback all-reduce bandwidth, and a cost model projected to 8 / 64 / 512 ranks.

    python benchmarks/bench_distributed.py            # launches the 1- and 2-rank runs itself
    python benchmarks/bench_distributed.py --json out.json

Each rank runs 1 thread, at equal global batch (64: 64 per rank on 1 rank, 32 on 2), on
synthetic data, for the 4-conv CNN (simple_cnn, 28x28x1) and ResNet-20 (32x32x3), SGD with
momentum. Per configuration: median step time over the timed steps (after warm-up), global
images/s, and on 2 ranks with the default 1 MiB buckets and with one bucket sent after the
backward (bucket_mb=0): the time a step waits for its sums at the end of the backward
(``DistributedDataParallel.last_wait_seconds``, which also holds the other rank's lateness), the
time the same all-reduces take alone (blocking, right after), and the exposed communication: the
step's time less that of the same step without communication (``no_sync``), the three modes
alternating step by step. Hidden = 1 - exposed / alone. The bandwidth is MPI_Allreduce of
float32 buffers from 4 KiB to 64 MiB, reported as ring bus bandwidth 2(N-1)/N x bytes / time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = {"simple_cnn": (1, 28), "resnet20": (3, 32)}
GLOBAL_BATCH = 64
# What the cost model assumes beyond what is measured here (say so with the numbers):
RESNET50_GRADIENT_BYTES = 25.6e6 * 4  # 25.6 M float32 parameters
RESNET50_STEP_SECONDS = 0.20  # one V100-class GPU, batch 64, fp32 (forward + backward)
LINKS = {"10 Gb/s (TCP, 25 us per message)": (10e9 / 8, 25e-6),
         "100 Gb/s (RDMA, 3 us per message)": (100e9 / 8, 3e-6)}
BACKWARD_SHARE = 2 / 3  # the backward is about two thirds of a step's compute


def _step(ddp, opt, loss_fn, x, y, comm, sync: bool) -> float:
    """One training step, started together on every rank; its time is the slowest rank's."""
    import contextlib

    comm.Barrier()
    start = time.perf_counter()
    with contextlib.nullcontext() if sync else ddp.no_sync():
        loss_fn(ddp(x), y)
        opt.zero_grad()
        ddp.backward_params(loss_fn.backward())
        opt.step()
    return max(comm.allgather(time.perf_counter() - start))


def _allreduce_alone(ddp, comm) -> float:
    """The step's all-reduces again, blocking, with nothing else running."""
    from mpi4py import MPI

    comm.Barrier()
    start = time.perf_counter()
    for bucket in ddp._buckets:
        comm.Allreduce(MPI.IN_PLACE, bucket.buffer, op=MPI.SUM)
    return max(comm.allgather(time.perf_counter() - start))


def _worker(steps: int, warmup: int) -> dict:
    import numpy as np

    import fastnn
    from fastnn import distributed as dist
    from fastnn import models, nn, optim
    from mpi4py import MPI

    dist.init()
    fastnn.set_num_threads(1)
    comm, rank, world = dist.communicator(), dist.rank(), dist.world_size()
    out: dict = {"world_size": world, "models": {}}
    for name, (channels, size) in MODELS.items():
        per_rank = GLOBAL_BATCH // world
        rng = np.random.default_rng(rank)
        x = rng.standard_normal((per_rank, channels, size, size)).astype(np.float32)
        y = rng.integers(0, 10, per_rank)
        loss_fn = nn.SoftmaxCrossEntropy()
        runs = {}
        for bucket_mb in (1.0, 0.0):  # one model per bucket size: each DDP hooks its own model's layers
            fastnn.manual_seed(0)
            model = models.simple_cnn(channels, 10, size) if name == "simple_cnn" else models.resnet(20, channels, 10, size)
            ddp = dist.DistributedDataParallel(model, bucket_mb=bucket_mb)
            runs[bucket_mb] = (ddp, optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9))
        # The modes alternate step by step, so a busy spell of the shared machine hits them alike.
        modes = {"overlapped (bucket_mb=1)": (runs[1.0], True), "one bucket (bucket_mb=0)": (runs[0.0], True),
                 "no communication (no_sync)": (runs[1.0], False)}
        samples: dict[str, dict[str, list[float]]] = {m: {"step": [], "wait": [], "alone": []} for m in modes}
        for step in range(warmup + steps):
            for mode, ((ddp, opt), sync) in modes.items():
                elapsed = _step(ddp, opt, loss_fn, x, y, comm, sync)
                if step >= warmup:
                    samples[mode]["step"].append(elapsed)
                    samples[mode]["wait"].append(max(comm.allgather(ddp.last_wait_seconds)) if sync else 0.0)
                    samples[mode]["alone"].append(_allreduce_alone(ddp, comm) if sync and world > 1 else 0.0)
        for mode, ((ddp, _), sync) in modes.items():
            if world == 1 and mode != "no communication (no_sync)":
                continue  # one rank never communicates: its baseline is the plain step
            median = {k: statistics.median(v) for k, v in samples[mode].items()}
            out["models"][f"{name} {mode}" if world > 1 else name] = {
                "step_seconds": median["step"], "images_per_second": GLOBAL_BATCH / median["step"],
                "buckets": len(ddp._buckets), "gradient_bytes": sum(p.size * 4 for p in ddp.parameters()),
                "wait_seconds": median["wait"], "allreduce_alone_seconds": median["alone"]}
    if world > 1:
        out["bandwidth"] = []
        for exponent in range(12, 27, 2):  # 4 KiB .. 64 MiB
            buffer = np.ones(2**exponent // 4, dtype=np.float32)
            repeats = max(3, min(200, 2**22 // 2**exponent * 8))
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            comm.Barrier()
            begin = time.perf_counter()
            for _ in range(repeats):
                comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            seconds = max(comm.allgather((time.perf_counter() - begin) / repeats))
            out["bandwidth"].append({"bytes": 2**exponent, "seconds": seconds,
                                     "bus_gb_per_s": 2 * (world - 1) / world * 2**exponent / seconds / 1e9})
        tiny = np.ones(2, dtype=np.float32)
        comm.Barrier()
        begin = time.perf_counter()
        for _ in range(1000):
            comm.Allreduce(MPI.IN_PLACE, tiny, op=MPI.SUM)
        out["latency_seconds"] = max(comm.allgather((time.perf_counter() - begin) / 1000))
    return out if rank == 0 else {}


def ring_allreduce_seconds(ranks: int, gradient_bytes: float, bucket_bytes: float, bandwidth: float,
                           latency: float) -> float:
    """Ring all-reduce of the gradient in buckets: per bucket 2(N-1)/N x bytes / bandwidth (the
    reduce-scatter and the all-gather each move (N-1)/N of it) + 2(N-1) message latencies."""
    buckets = max(1, -(-int(gradient_bytes) // int(bucket_bytes)))
    return 2 * (ranks - 1) / ranks * gradient_bytes / bandwidth + buckets * 2 * (ranks - 1) * latency


def efficiency(compute: float, comm: float, hidden_window: float) -> float:
    """Step-time efficiency when ``hidden_window`` seconds of the communication overlap compute."""
    return compute / (compute + max(0.0, comm - hidden_window))


def project(resnet20_step: float) -> list[dict]:
    rows = []
    cases = {"ResNet-20 (1 MiB buckets)": (0.27e6 * 4, 2**20, resnet20_step),
             "ResNet-50-sized (1 MiB buckets)": (RESNET50_GRADIENT_BYTES, 2**20, RESNET50_STEP_SECONDS),
             "ResNet-50-sized (25 MiB buckets)": (RESNET50_GRADIENT_BYTES, 25 * 2**20, RESNET50_STEP_SECONDS)}
    for case, (grad_bytes, bucket, step) in cases.items():
        for link, (bandwidth, latency) in LINKS.items():
            for ranks in (8, 64, 512):
                comm = ring_allreduce_seconds(ranks, grad_bytes, bucket, bandwidth, latency)
                rows.append({"case": case, "link": link, "ranks": ranks, "allreduce_ms": 1e3 * comm,
                             "no_overlap": efficiency(step, comm, 0.0),
                             "overlap": efficiency(step, comm, BACKWARD_SHARE * step)})
    return rows


def _launch(ranks: int, steps: int, warmup: int) -> dict:
    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    if not Path(mpiexec).exists():
        mpiexec = shutil.which("mpiexec") or "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_LAUNCHER": "fork"}
    done = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", "--steps", str(steps),
                           "--warmup", str(warmup)], capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if args.worker:
        result = _worker(args.steps, args.warmup)
        if result:
            print(json.dumps(result), flush=True)
        return
    load = os.getloadavg()
    one, two = _launch(1, args.steps, args.warmup), _launch(2, args.steps, args.warmup)
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"{'model, mode':<44}{'ranks':>6}{'step ms':>9}{'img/s':>7}{'speedup':>9}{'effic.':>7}"
          f"{'exposed ms':>11}{'alone ms':>9}{'wait ms':>8}")
    for name in MODELS:
        base = one["models"][name]
        print(f"{name:<44}{1:>6}{1e3 * base['step_seconds']:>9.1f}{base['images_per_second']:>7.0f}")
        quiet = two["models"][f"{name} no communication (no_sync)"]
        for key, r in two["models"].items():
            if not key.startswith(name + " "):
                continue
            speedup = r["images_per_second"] / base["images_per_second"]
            # Exposed: what communicating adds to the step over the same step without it.
            exposed = r["step_seconds"] - quiet["step_seconds"]
            print(f"{key:<44}{2:>6}{1e3 * r['step_seconds']:>9.1f}{r['images_per_second']:>7.0f}{speedup:>8.2f}x"
                  f"{speedup / 2:>7.0%}{1e3 * exposed:>11.2f}{1e3 * r['allreduce_alone_seconds']:>9.2f}"
                  f"{1e3 * r['wait_seconds']:>8.2f}  ({r['buckets']} bucket(s), {r['gradient_bytes'] / 2**20:.2f} MiB)")
    print(f"\nloopback MPI_Allreduce, 2 ranks (latency of 8 bytes: {1e6 * two['latency_seconds']:.1f} us)")
    for b in two["bandwidth"]:
        print(f"  {b['bytes'] / 2**10:>8.0f} KiB  {1e6 * b['seconds']:>9.1f} us  bus {b['bus_gb_per_s']:>6.2f} GB/s")
    # ResNet-20's compute at the per-rank batch of the projection (32) is the 2-rank step less its wait.
    projection = project(two["models"]["resnet20 no communication (no_sync)"]["step_seconds"])
    print("\nprojected scaling efficiency, ring all-reduce (no overlap / backward fully overlapped)")
    for row in projection:
        print(f"  {row['case']:<34}{row['link']:<36}{row['ranks']:>5} ranks  all-reduce {row['allreduce_ms']:>8.1f} ms"
              f"  {row['no_overlap']:>5.0%} / {row['overlap']:>5.0%}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "one": one, "two": two,
                                               "projection": projection}, indent=1))


if __name__ == "__main__":
    main()
