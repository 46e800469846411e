"""Side-by-side timing of fastnn against a peer library (NumPy/OpenBLAS, PyTorch) in one process.

How a comparison is measured (the timing core is fastnn.bench, shared with `python -m fastnn
bench`):
- correctness first: both results are compared before anything is timed;
- inputs rotate over copies larger than the caches together, so neither side finds its operands
  in cache from the previous call;
- fastnn and the peer alternate, round by round (which one goes first alternates too), each
  round a calibrated batch after a warm-up call; the table shows medians over the rounds, and
  the speed ratio is the median of the rounds' paired ratios;
- before each batch the harness waits until the process is idle (its CPU time stops growing):
  OpenBLAS and OpenMP worker threads spin for up to a few hundred milliseconds after a call,
  and would otherwise steal the cores from the other library's threads (on a 2-core machine
  that can halve the other side's speed);
- GFLOP/s are set against the machine's FMA peak, measured here (fastnn.bench.measure_peak),
  and against a roofline: min(peak, arithmetic intensity x measured memory bandwidth).

OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE when it loads; on these machines they
make it pick slower kernels or blocks, so `reexec_without_openblas_overrides()` (call it before
importing NumPy) restarts the benchmark without them. It touches only the benchmark's process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def reexec_without_openblas_overrides() -> None:
    """Restarts this script without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE when either is set."""
    found = [name for name in OPENBLAS_OVERRIDES if name in os.environ]
    if found and "numpy" not in sys.modules:
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
        print(f"harness: restarting without {', '.join(found)} (they slow OpenBLAS here)", file=sys.stderr)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


@dataclass
class Pair:
    """One comparison: fastnn and a peer computing the same thing from the same inputs."""

    name: str
    flops: float  # per call
    bytes_moved: float  # the least memory traffic a call needs (operands read once, result written)
    make_inputs: Callable[[], tuple]
    fastnn: Callable[..., Any]
    peer: Callable[..., Any]
    check: Callable[[Any, Any], float]  # relative difference of the two results
    tolerance: float


@dataclass
class Row:
    name: str
    fastnn_s: float  # median over rounds
    peer_s: float
    ratio: float  # speed of fastnn relative to the peer (> 1: faster): median of per-round ratios
    ratio_low: float  # lowest and highest per-pass ratio
    ratio_high: float
    flops: float
    roofline_gflops: float
    difference: float
    quiet: bool | None  # whether the machine was otherwise idle when the case started


def openblas_info() -> dict[str, Any]:
    """Which OpenBLAS NumPy runs, its kernel family (e.g. SkylakeX) and thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"note": "threadpoolctl not installed: OpenBLAS kernel unknown"}
    for pool in threadpool_info():
        if pool.get("internal_api") == "openblas":
            return {k: pool.get(k) for k in ("version", "architecture", "num_threads", "threading_layer")}
    return {"note": "NumPy does not use OpenBLAS here"}


def limit_peer_threads(threads: int):
    """A context that gives the BLAS the same thread count as fastnn (when threadpoolctl is there)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def measure_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Streaming copy bandwidth in GB/s (bytes read + bytes written), best of a few copies."""
    import numpy as np

    src = np.ones(megabytes << 18, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def wait_until_idle(max_seconds: float, interval: float = 0.01) -> float:
    """Sleeps until this process used under 10% of one core over `interval` (spinning worker
    threads have gone to sleep), at most `max_seconds`; returns the time waited."""
    start = time.perf_counter()
    while True:
        cpu = time.process_time()
        time.sleep(interval)
        waited = time.perf_counter() - start
        if time.process_time() - cpu < 0.1 * interval or waited >= max_seconds:
            return waited


def machine_busy_fraction(interval: float = 1.0) -> float | None:
    """Fraction of all CPUs busy over `interval` seconds (Linux /proc/stat; None elsewhere)."""

    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


class MachineLoad:
    """Other processes' load around a benchmark run (1 s of /proc/stat and the load average,
    before and after): these machines are shared, and a busy run's ratios are not comparable
    with a quiet one's. Create it before the run, call :meth:`finish` after it."""

    def __init__(self) -> None:
        self.record = {"busy_fraction_before": machine_busy_fraction(), "load_average_before": os.getloadavg()}

    def finish(self) -> dict:
        """The record, with the after values: what the JSON report stores."""
        self.record.update(busy_fraction_after=machine_busy_fraction(), load_average_after=os.getloadavg())
        return self.record

    def line(self) -> str:
        """The record as one line of a printed report."""
        r = self.record
        return (f"machine load: {100 * (r['busy_fraction_before'] or 0):.0f}% busy before, "
                f"{100 * (r['busy_fraction_after'] or 0):.0f}% after; load average "
                f"{r['load_average_before'][0]:.2f} -> {r['load_average_after'][0]:.2f}")


def wait_for_quiet_machine(max_seconds: float, log=sys.stderr) -> bool:
    """Waits (at most max_seconds) until other processes leave the CPUs >= 95% idle, so a case
    is not timed while a neighbour compiles; True when the machine was quiet."""
    deadline = time.perf_counter() + max_seconds
    while True:
        busy = machine_busy_fraction()
        if busy is None or busy <= 0.05:
            return True
        if time.perf_counter() >= deadline:
            print(f"  (machine still {100 * busy:.0f}% busy after {max_seconds:.0f} s: timing anyway)", file=log)
            return False


@dataclass
class Samples:
    """One case's measurements, pooled over passes."""

    fastnn: list[float]
    peer: list[float]
    pass_ratios: list[float]  # median paired ratio of each pass
    difference: float = 0.0
    quiet: bool | None = None


def measure_pair(pair: Pair, samples: Samples, rounds: int, seconds: float, max_settle: float) -> None:
    """One pass over a case: correctness check, then `rounds` alternating rounds."""
    from fastnn.bench import calibrate, rotating_inputs, time_batch

    inputs = rotating_inputs(pair.make_inputs)
    ours = pair.fastnn(*inputs[0])
    ours = ours.copy() if hasattr(ours, "copy") else ours
    samples.difference = max(samples.difference, pair.check(ours, pair.peer(*inputs[0])))
    if not samples.difference <= pair.tolerance:
        raise AssertionError(f"{pair.name}: fastnn and the peer differ by {samples.difference:.3g} > {pair.tolerance:g}")
    sides = [(pair.fastnn, []), (pair.peer, [])]
    calls = [calibrate(fn, inputs, seconds) for fn, _ in sides]
    for r in range(rounds):
        for index in ((0, 1) if r % 2 == 0 else (1, 0)):
            fn, times = sides[index]
            wait_until_idle(max_settle)
            times.append(time_batch(fn, inputs, calls[index]))
    samples.fastnn += sides[0][1]
    samples.peer += sides[1][1]
    samples.pass_ratios.append(statistics.median(t / o for o, t in zip(sides[0][1], sides[1][1])))


def compare(pairs: Sequence[Pair], peak_gflops: float, bandwidth_gbs: float, rounds: int, passes: int,
            seconds: float, max_settle: float, max_quiet_wait: float, log=sys.stderr) -> list[Row]:
    """Runs every case `passes` times (the whole list each pass, so a case's rounds are spread
    over time rather than caught in one slow phase of a shared machine) and pools the rounds."""
    samples = {pair.name: Samples([], [], []) for pair in pairs}
    for number in range(passes):
        for pair in pairs:
            quiet = wait_for_quiet_machine(max_quiet_wait, log) if max_quiet_wait > 0 else None
            s = samples[pair.name]
            s.quiet = quiet if s.quiet is None else (s.quiet and quiet)
            measure_pair(pair, s, rounds, seconds, max_settle)
            print(f"  pass {number + 1}: {pair.name}: ratio {s.pass_ratios[-1]:.2f}", file=log, flush=True)
    rows = []
    for pair in pairs:
        s = samples[pair.name]
        # Each round's two batches ran back to back, so their ratio cancels slow drifts in the
        # machine's speed (other tenants, clock changes) that the separate medians keep.
        ratios = [theirs / ours for ours, theirs in zip(s.fastnn, s.peer)]
        intensity = pair.flops / pair.bytes_moved
        rows.append(Row(pair.name, statistics.median(s.fastnn), statistics.median(s.peer), statistics.median(ratios),
                        min(s.pass_ratios), max(s.pass_ratios), pair.flops,
                        min(peak_gflops, intensity * bandwidth_gbs), s.difference, s.quiet))
    return rows


def table(rows: Sequence[Row], peer: str, peak_gflops: float) -> str:
    from fastnn.bench import format_table

    def pct(x: float) -> str:
        return f"{100 * x:.0f}%"

    body = []
    for r in rows:
        ours, theirs = r.flops / r.fastnn_s / 1e9, r.flops / r.peer_s / 1e9
        bound = "memory" if r.roofline_gflops < peak_gflops else "compute"
        name = r.name if r.quiet is not False else r.name + " (busy)"
        spread = f" ({r.ratio_low:.2f}-{r.ratio_high:.2f})" if r.ratio_high > r.ratio_low else ""
        body.append([name, r.fastnn_s * 1e3, r.peer_s * 1e3, ours, theirs, f"{r.ratio:.2f}x{spread}",
                     pct(ours / peak_gflops), pct(theirs / peak_gflops),
                     f"{r.roofline_gflops:.0f} ({bound})", pct(ours / r.roofline_gflops)])
    headers = ["case", "fastnn ms", f"{peer} ms", "fastnn GF/s", f"{peer} GF/s", "speed ratio",
               "fastnn %peak", f"{peer} %peak", "roofline GF/s", "fastnn %roof"]
    return format_table(headers, body)


def run(pairs: Sequence[Pair], peer: str, description: str, argv: Sequence[str] | None = None) -> int:
    """Parses the common options, measures and prints the table (or JSON)."""
    import fastnn
    from fastnn.bench import machine_info, measure_peak

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides (default: fastnn's)")
    parser.add_argument("--rounds", type=int, default=11, help="alternating rounds per case and pass")
    parser.add_argument("--passes", type=int, default=1,
                        help="times to run the whole case list; rounds are pooled, per-pass ratios shown as a range")
    parser.add_argument("--seconds", type=float, default=0.05, help="length of one timed batch")
    parser.add_argument("--max-settle", type=float, default=2.0,
                        help="longest wait before a batch for the other library's spinning threads to go idle")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="longest wait before each case for other processes to leave the CPUs idle (0: none)")
    parser.add_argument("--filter", default="", help="only cases whose name contains this text")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    threads = fastnn.get_num_threads()
    selected = [p for p in pairs if args.filter in p.name]

    with limit_peer_threads(threads):
        if args.quiet_wait > 0:
            wait_for_quiet_machine(args.quiet_wait)
        peak = measure_peak(threads)
        bandwidth = measure_bandwidth()
        blas = openblas_info()
        print(f"{description}: {threads} threads, FMA peak {peak:.0f} GFLOP/s, copy bandwidth "
              f"{bandwidth:.1f} GB/s, OpenBLAS {blas}", file=sys.stderr)
        rows = compare(selected, peak, bandwidth, args.rounds, args.passes, args.seconds, args.max_settle,
                       args.quiet_wait)

    machine = machine_info(threads)
    if args.json:
        json.dump({
            "machine": machine, "openblas": blas, "fma_peak_gflops": peak, "copy_bandwidth_gbs": bandwidth,
            "settings": {"rounds": args.rounds, "passes": args.passes, "seconds": args.seconds, "max_settle": args.max_settle,
                         "quiet_wait": args.quiet_wait},
            "results": [{
                "case": r.name, "flops": r.flops, "fastnn_seconds": r.fastnn_s, f"{peer}_seconds": r.peer_s,
                "fastnn_gflops": r.flops / r.fastnn_s / 1e9, f"{peer}_gflops": r.flops / r.peer_s / 1e9,
                "speed_ratio": r.ratio, "speed_ratio_per_pass": [r.ratio_low, r.ratio_high],
                "roofline_gflops": r.roofline_gflops, "difference": r.difference,
                "machine_quiet": r.quiet,
            } for r in rows],
        }, sys.stdout, indent=2)
        print()
        return 0
    print(f"fastnn {machine['fastnn']} ({machine['gemm_kernel_float32']}) vs {peer} on {machine['cpu']}, "
          f"{threads} threads; OpenBLAS {blas.get('version', '?')} kernel {blas.get('architecture', '?')}")
    print(f"measured FMA peak {peak:.0f} GFLOP/s, copy bandwidth {bandwidth:.1f} GB/s; medians of "
          f"{args.passes} x {args.rounds} alternating rounds; speed ratio = {peer} time / fastnn time "
          "(median of per-round ratios; per-pass range in brackets)")
    print(table(rows, peer, peak))
    return 0
