"""``fastnn info``: version, compiler, SIMD level, threads, the CUDA backend and GPUs, Python and
the optional extras (``--json`` for all of :func:`fastnn.build_info`)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
from typing import Any

import numpy as np

import fastnn


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds ``info`` and its options to the subcommands ``sub``."""
    info = sub.add_parser("info", help="version, compiler, SIMD level, threads, CUDA backend and GPUs")
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=run)
    return info


def _cuda_rows() -> list[tuple[str, str]]:
    """What `info` says about the GPU side: the CUDA backend (built or not, for which GPU
    architectures) and each GPU (name, compute capability, memory), or why there is none."""
    from fastnn import cuda

    try:
        facts = cuda.info()
    except Exception as e:  # a driver problem is information here, not a crash
        return [("CUDA backend", f"unusable ({e})")]
    if not facts["built"]:
        return [("CUDA backend", "not built (a CPU-only install; docs/GPU.md: FASTNN_CUDA=ON pip install .)")]
    archs = ", ".join(cuda._arch_text(a) for a in str(facts["architectures"]).replace(";", " ").split())
    driver = f"driver {facts['driver_version']}" if facts.get("driver_version") else "no driver"
    rows = [("CUDA backend", f"built for {archs} (CUDA runtime {facts['runtime_version']}, {driver})")]
    for gpu in facts["devices"]:
        major, minor = gpu["compute_capability"]
        rows.append((f"GPU {gpu['index']}", f"{gpu['name']}, compute capability {major}.{minor}, "
                                            f"{gpu['total_memory'] / 2**30:.1f} GiB, {gpu['multiprocessors']} SMs"))
    if not facts["available"]:
        rows.append(("GPU", f"not usable: {facts['reason']}" if facts["devices"] else f"none ({facts['reason']})"))
    return rows


def _mpi_facts() -> dict[str, Any]:
    """The MPI library mpi4py runs on and this job's world size (1 outside mpiexec), or why there
    is none: what `fastnn train --distributed` would use."""
    if importlib.util.find_spec("mpi4py") is None:
        return {"available": False, "reason": "mpi4py is not installed (pip install 'fastnn[mpi]')"}
    try:
        import mpi4py
        from mpi4py import MPI

        library = MPI.Get_library_version().strip().splitlines()[0]
        return {"available": True, "library": " ".join(library.split()), "mpi4py": mpi4py.__version__,
                "world_size": MPI.COMM_WORLD.Get_size()}
    except Exception as e:  # a broken MPI install is information here, not a crash
        return {"available": False, "reason": f"mpi4py is installed but MPI did not start: {e}"}


def _mpi_text(facts: dict[str, Any]) -> str:
    if not facts["available"]:
        return facts["reason"]
    return f"{facts['library']} (mpi4py {facts['mpi4py']}), world size {facts['world_size']}"


def run(args: argparse.Namespace) -> int:
    """Runs ``fastnn info``; returns the exit status."""
    info = fastnn.build_info()
    extras = {name: importlib.util.find_spec(module) is not None
              for name, module in (("scikit-learn", "sklearn"), ("tqdm", "tqdm"), ("matplotlib", "matplotlib"))}
    rows = [("fastnn", info.get("version", fastnn.__version__)),
            ("compiler", f"{info.get('compiler')} ({info.get('build_type')}), OpenMP {info.get('openmp')}"),
            ("SIMD", f"{info.get('simd')} in use (CPU supports {info.get('simd_detected')})"),
            ("GEMM kernel", f"{info.get('gemm_kernel_float32')} (float32)"),
            ("CPU matmul", f"{info['cpu_matmul_precision']['precision']} (set_matmul_precision"
                           f"({info['cpu_matmul_precision']['setting']!r})); under 'medium': "
                           f"{info['cpu_matmul_precision_medium']['precision']}, "
                           f"{info['cpu_matmul_precision_medium']['reason']}"),
            ("threads", str(info.get("threads"))),
            *_cuda_rows(),
            ("MPI", _mpi_text(mpi := _mpi_facts())),
            ("python", f"{platform.python_version()}, NumPy {np.__version__}"),
            ("extras", ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in extras.items()))]
    if args.json:
        print(json.dumps({**info, "extras": extras, "mpi": mpi}, indent=2, default=str))  # info["cuda"]: fastnn.cuda.info()
    else:
        for key, value in rows:
            print(f"{key + ':':<14}{value}")
    return 0
