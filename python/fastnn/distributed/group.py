"""The process group of a distributed run: MPI's world communicator, through mpi4py.

mpi4py is imported by :func:`init` only, so neither ``import fastnn`` nor ``import
fastnn.distributed`` loads it. After ``init()`` an exception that nobody catches, on any rank,
prints that rank's traceback and ends the whole job with ``MPI_Abort`` (what ``python -m
mpi4py`` arranges): without it, under MPICH, the other ranks would wait in their next collective
forever.

Reductions of metrics sum in rank order on every rank (an all-gather, then the same sum
everywhere), so every rank gets bitwise the same numbers whatever the MPI's reduction order.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Sequence

import numpy as np

_comm: Any = None  # mpi4py's communicator once init() ran
_previous_hooks: tuple[Any, Any] | None = None

_ABORT_DRAIN_SECONDS = 0.5  # abort(): time for the launcher to forward the last output


def _require(what: str) -> Any:
    if _comm is None:
        raise RuntimeError(f"fastnn.distributed.{what}: the process group is not initialised; call "
                           "fastnn.distributed.init() first (and launch with mpiexec -n <ranks> python ...)")
    return _comm


def init(abort_on_exception: bool = True, comm: Any = None) -> None:
    """Joins the MPI job this process was started in (``mpiexec -n 4 python train.py``; a plain
    ``python train.py`` is a job of one rank). Idempotent.

    Args:
        abort_on_exception: install the hooks that turn an uncaught exception on any rank (main
            thread or another thread) into its traceback on stderr and ``MPI_Abort`` of the whole
            job, instead of a hang of the other ranks.
        comm: an mpi4py communicator to run on (default ``MPI.COMM_WORLD``).

    ImportError, saying what to install, when mpi4py is missing.
    """
    global _comm
    if _comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("fastnn.distributed.init: mpi4py is not installed: pip install 'fastnn[mpi]' (mpi4py "
                          "and the MPICH wheels), or pip install mpi4py built against your cluster's MPI "
                          f"({e})") from e
    _comm = MPI.COMM_WORLD if comm is None else comm
    if abort_on_exception:
        _install_abort_hooks()


def is_initialized() -> bool:
    """Whether :func:`init` ran in this process."""
    return _comm is not None


def rank() -> int:
    """This process's rank, 0 ... world_size() - 1 (RuntimeError before :func:`init`)."""
    return int(_require("rank").Get_rank())


def world_size() -> int:
    """The number of processes in the job (RuntimeError before :func:`init`)."""
    return int(_require("world_size").Get_size())


def local_world_size() -> int:
    """The number of ranks on this machine (they share its cores)."""
    from mpi4py import MPI

    node = _require("local_world_size").Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(node.Get_size())
    finally:
        node.Free()


def is_main_process() -> bool:
    """True on rank 0, and in a process that never called :func:`init` (it is the whole job):
    what writes files and prints."""
    return _comm is None or _comm.Get_rank() == 0


def barrier() -> None:
    """Waits until every rank has reached this call."""
    _require("barrier").Barrier()


def communicator() -> Any:
    """The mpi4py communicator (for collectives fastnn does not wrap)."""
    return _require("communicator")


def broadcast_object(value: Any, root: int = 0) -> Any:
    """``root``'s ``value`` (any picklable object) on every rank."""
    return _require("broadcast_object").bcast(value, root=root)


def all_gather_object(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    return _require("all_gather_object").allgather(value)


def _host(value: Any) -> Any:
    return value.get() if hasattr(value, "__cuda_array_interface__") else value


def sum_across_ranks(values: Sequence[Any]) -> list[Any]:
    """Element-wise sums over the ranks of ``values``, a list of numbers or NumPy arrays (CuPy
    arrays come back as NumPy); None marks a value this rank does not have (it counts as
    nothing; a value that is None on every rank stays None). The sums run in rank order on every
    rank, so all ranks get bitwise the same result: use it for metrics (loss sums, correct
    counts, confusion matrices)."""
    gathered = all_gather_object([_host(v) for v in values])
    totals: list[Any] = []
    for i in range(len(values)):
        present = [g[i] for g in gathered if g[i] is not None]
        if not present:
            totals.append(None)
            continue
        total = present[0].copy() if isinstance(present[0], np.ndarray) else present[0]
        for v in present[1:]:
            total = total + v
        totals.append(total)
    return totals


def all_reduce(array: Any, op: str = "sum") -> Any:
    """A NumPy array reduced element-wise over the ranks (``op``: "sum", "max", "min" or
    "mean"), as a new array on every rank. For metrics whose bitwise agreement matters use
    :func:`sum_across_ranks`; this is the MPI reduction, sized for large arrays."""
    from mpi4py import MPI

    ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "mean": MPI.SUM}
    if op not in ops:
        raise ValueError(f"fastnn.distributed.all_reduce: argument 'op' must be one of {', '.join(ops)}; got {op!r}")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"fastnn.distributed.all_reduce: argument 'array' must be a NumPy array; got "
                        f"{type(array).__name__}")
    result = np.ascontiguousarray(array).copy()
    _require("all_reduce").Allreduce(MPI.IN_PLACE, result, op=ops[op])
    if op == "mean":
        result = result / world_size()
    return result


def abort(message: str, code: int = 1) -> None:
    """Prints ``message`` (naming this rank) on stderr and ends every rank of the job now."""
    comm = _require("abort")
    sys.stderr.write(f"{message.rstrip()}\n")
    sys.stderr.write(f"fastnn.distributed: rank {comm.Get_rank()} of {comm.Get_size()} failed; aborting the job "
                     "(MPI_Abort) so that the other ranks do not wait for it\n")
    sys.stderr.flush()
    sys.stdout.flush()
    # The launcher forwards each rank's output from a pipe, and an abort can overtake what is
    # still in it (MPICH's mpiexec dropped the traceback on a loaded machine): give it a moment.
    time.sleep(_ABORT_DRAIN_SECONDS)
    comm.Abort(code)
    os._exit(code)  # not reached: MPI_Abort ends the process


def _install_abort_hooks() -> None:
    global _previous_hooks
    if _previous_hooks is not None:
        return
    _previous_hooks = (sys.excepthook, threading.excepthook)
    previous_main, previous_thread = _previous_hooks

    def main_hook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        previous_main(kind, error, tb)  # the usual traceback first
        abort(f"fastnn.distributed: uncaught {kind.__name__}: {error}")

    def thread_hook(args: Any) -> None:
        previous_thread(args)
        if args.exc_type is not SystemExit:
            abort(f"fastnn.distributed: uncaught {args.exc_type.__name__} in thread "
                  f"{getattr(args.thread, 'name', '?')}: {args.exc_value}")

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
