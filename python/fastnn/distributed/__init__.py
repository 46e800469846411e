"""Data-parallel training across processes and machines on MPI (mpi4py): the process group
(:func:`init`, :func:`rank`, :func:`world_size`, :func:`barrier`, metric reductions),
:class:`DistributedDataParallel` and :class:`SyncBatchNorm`. The sharded loader is
``fastnn.data.DataLoader(..., distributed=True)``.

Launch a script with ``mpiexec -n 4 python train.py``; it calls :func:`init` first. mpi4py is an
optional extra (``pip install "fastnn[mpi]"``), imported by :func:`init` only. docs/DISTRIBUTED.md
has the whole story: the API, the sampler's padding rule, failure behaviour, the cost model and
what is untested (the GPU path through NCCL).
"""

from __future__ import annotations

from fastnn.distributed.ddp import DistributedDataParallel, bucket_plan
from fastnn.distributed.group import (abort, all_gather_object, all_reduce, barrier, broadcast_object, communicator,
                                      init, is_initialized, is_main_process, local_world_size, rank,
                                      sum_across_ranks, world_size)
from fastnn.distributed.sync_batchnorm import SyncBatchNorm

__all__ = ["DistributedDataParallel", "SyncBatchNorm", "abort", "all_gather_object", "all_reduce",
           "barrier", "broadcast_object", "bucket_plan", "communicator", "init", "is_initialized", "is_main_process",
           "local_world_size", "rank", "sum_across_ranks", "world_size"]
