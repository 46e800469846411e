"""Launched by tests/test_distributed_mpi.py as ``mpiexec -n 2 python tests/mpi/failing_rank.py
raise|kill|cli``: rank 1 fails while rank 0 waits for it in a collective. The job must end (non-zero
status), quickly, with rank 1's message; without fastnn's abort hook, MPICH would leave rank 0
waiting forever."""

import os
import signal
import sys
import time

from fastnn import distributed as dist

dist.init()
if dist.rank() == 1:
    time.sleep(0.2)  # rank 0 is in the barrier by now
    if sys.argv[1] == "raise":
        raise ValueError("rank one failed on purpose")
    os.kill(os.getpid(), signal.SIGKILL)
dist.barrier()
print("rank 0 passed the barrier: the failure did not end the job", flush=True)
