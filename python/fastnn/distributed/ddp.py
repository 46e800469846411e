"""DistributedDataParallel: data-parallel training with gradients averaged over the ranks.

Every rank holds the whole model and runs it on its own shard of each global batch. At wrap time
rank 0's parameters and buffers are broadcast, so all ranks start equal. During backward the
gradients are summed over the ranks in fixed-size buckets, in the reverse order of
``model.parameters()`` (about the order backward finishes them): as soon as the layers a bucket
covers have run their backward (the containers' backward-done hook, nn.container), the bucket's
gradients are copied into one flat array and a non-blocking ``MPI_Iallreduce`` starts, so the
exchange overlaps the backward of the earlier layers. Buckets start strictly in index order, the
same order on every rank, as MPI's non-blocking collectives require. When the model's backward
returns, the remaining buckets start, all are waited for, multiplied by 1 / world_size (the same
float32 operation on the same sums on every rank) and copied back into ``.grad``. Every rank then
holds bitwise the same averaged gradient, and after the optimiser step the same parameters.

MPICH makes no progress on a non-blocking collective between MPI calls (no progress thread by
default), so each backward-done hook also tests the outstanding requests: that drives them on.

On the GPU (CuPy parameters) the buckets are CuPy arrays summed by NCCL (cupy.cuda.nccl) on a
stream of their own, ordered after the gradients by CUDA events. That path is untested: no GPU
cluster was at hand (docs/DISTRIBUTED.md).
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from typing import Any, Iterator

import numpy as np

from fastnn._backend import Array, is_cupy_array
from fastnn.distributed import group
from fastnn.nn.container import register_backward_done_hook
from fastnn.nn.module import Module, Parameter


def bucket_plan(sizes_bytes: list[int], dtypes: list[Any], bucket_bytes: int) -> list[list[int]]:
    """Parameter indices grouped into buckets: taken in reverse order, a bucket closes once it
    holds ``bucket_bytes`` or more, or before a parameter of another dtype. A parameter larger
    than ``bucket_bytes`` makes a bucket of its own. Every index appears exactly once."""
    buckets: list[list[int]] = []
    current: list[int] = []
    filled = 0
    for i in reversed(range(len(sizes_bytes))):
        if current and (filled >= bucket_bytes or np.dtype(dtypes[i]) != np.dtype(dtypes[current[0]])):
            buckets.append(current)
            current, filled = [], 0
        current.append(i)
        filled += sizes_bytes[i]
    if current:
        buckets.append(current)
    return buckets


class _MpiTransport:
    """Buckets as NumPy arrays, summed in place by MPI_Iallreduce."""

    def __init__(self, comm: Any) -> None:
        from mpi4py import MPI

        self._mpi, self._comm = MPI, comm

    def empty(self, size: int, dtype: Any, like: Array) -> Array:
        return np.empty(size, dtype=dtype)

    def start(self, buffer: Array) -> Any:
        return self._comm.Iallreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def progress(self, requests: list[Any]) -> None:
        if requests:
            self._mpi.Request.Testall(requests)

    def wait(self, requests: list[Any]) -> None:
        self._mpi.Request.Waitall(requests)


class _NcclTransport:
    """Buckets as CuPy arrays, summed by NCCL on a stream of their own (untested: see the module
    docstring). The NCCL communicator's id travels from rank 0 over MPI."""

    def __init__(self, comm: Any) -> None:
        import cupy

        try:
            from cupy.cuda import nccl
        except ImportError as e:
            raise RuntimeError("fastnn.distributed.DistributedDataParallel: parameters on the GPU need NCCL through "
                               f"cupy.cuda.nccl, which this CuPy lacks ({e}); install CuPy with NCCL") from e

        self._cupy, self._nccl = cupy, nccl
        uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        uid = comm.bcast(uid, root=0)
        self._communicator = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def empty(self, size: int, dtype: Any, like: Array) -> Array:
        return self._cupy.empty(size, dtype=dtype)

    def start(self, buffer: Array) -> Any:
        # The sum may only start once the compute stream has written the bucket.
        self._stream.wait_event(self._cupy.cuda.get_current_stream().record())
        self._communicator.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self._types[buffer.dtype],
                                     self._nccl.NCCL_SUM, self._stream.ptr)
        return self._stream.record()

    def progress(self, requests: list[Any]) -> None:
        pass  # NCCL runs on its stream by itself

    def wait(self, requests: list[Any]) -> None:
        current = self._cupy.cuda.get_current_stream()
        for done in requests:
            current.wait_event(done)


class _Bucket:
    __slots__ = ("params", "offsets", "buffer", "waiting", "handle")

    def __init__(self, params: list[Parameter], buffer: Array) -> None:
        self.params = params
        self.offsets = np.cumsum([0] + [p.size for p in params]).tolist()
        self.buffer = buffer
        self.waiting = len(params)  # parameters whose gradient is not final yet this step
        self.handle: Any = None

    def fill(self) -> None:
        """The parameters' gradients into the flat buffer (zeros for one unused on this rank:
        it contributes nothing to the sum)."""
        for p, start, stop in zip(self.params, self.offsets, self.offsets[1:]):
            if p.grad is None:
                self.buffer[start:stop] = 0
            else:
                self.buffer[start:stop] = p.grad.reshape(-1)

    def average_back(self, ranks: int) -> None:
        """The summed buffer times 1 / ranks, copied back into the gradients."""
        self.buffer *= self.buffer.dtype.type(1.0 / ranks)
        for p, start, stop in zip(self.params, self.offsets, self.offsets[1:]):
            averaged = self.buffer[start:stop].reshape(p.shape)
            if p.grad is None:
                p.grad = averaged.copy()
            else:
                p.grad[...] = averaged


def _broadcast_arrays(comm: Any, arrays: list[Array]) -> None:
    """Rank 0's ``arrays`` into every rank's, in place (CuPy arrays through the host: a few small
    copies, at wrap time and per step)."""
    for array in arrays:
        if is_cupy_array(array):
            import cupy

            host = array.get()
            comm.Bcast(host, root=0)
            array[...] = cupy.asarray(host)
        else:
            comm.Bcast(array, root=0)


class DistributedDataParallel(Module):
    """Wraps ``module`` for data-parallel training over the ranks of :mod:`fastnn.distributed`
    (PyTorch's ``DistributedDataParallel``, on MPI). Use it where the model was used::

        fastnn.distributed.init()
        model = DistributedDataParallel(model)          # rank 0's weights on every rank
        opt = optim.SGD(model.parameters(), lr=0.1)
        for x, y in DataLoader(train, 32, shuffle=True, seed=0, distributed=True):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            model.backward_params(loss_fn.backward())  # returns with .grad averaged over ranks
            opt.step()

    Args:
        module: the model (a :class:`fastnn.nn.Module`), the same on every rank.
        bucket_mb: the size of a gradient bucket in MiB (default 1: fastnn's models have 0.1 to a
            few MiB of gradients, so smaller buckets than PyTorch's 25 are what lets them
            overlap). 0 puts every gradient in one bucket, sent after the backward (no overlap).
        broadcast_buffers: copy rank 0's buffers (BatchNorm's running statistics) to every rank
            before each training forward, as PyTorch does, so that the ranks stay identical with
            local batch statistics.

    ``backward`` / ``backward_params`` return once every gradient is the average over the ranks:
    the optimiser's ``step()`` needs nothing more. Inside :meth:`no_sync` they only accumulate
    locally (gradient accumulation); the next backward outside it averages the sums.
    ``state_dict`` / ``load_state_dict`` / ``named_parameters`` are the wrapped module's, without
    a prefix, so checkpoints move freely between distributed and single-process runs.
    """

    def __init__(self, module: Module, bucket_mb: float = 1.0, broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError("fastnn.distributed.DistributedDataParallel: argument 'module' must be a "
                            f"fastnn.nn.Module; got {type(module).__name__}")
        if isinstance(bucket_mb, bool) or not isinstance(bucket_mb, (int, float)) or not (
                math.isfinite(bucket_mb) and bucket_mb >= 0):
            raise ValueError("fastnn.distributed.DistributedDataParallel: argument 'bucket_mb' must be a finite "
                             f"number >= 0; got {bucket_mb!r}")
        comm = group._require("DistributedDataParallel")
        object.__setattr__(self, "module", module)  # not a registered child: no "module." prefix in names
        self.bucket_mb = float(bucket_mb)
        self.broadcast_buffers = bool(broadcast_buffers)
        self.world_size = comm.Get_size()
        params = list(module.parameters())
        on_gpu = bool(params) and is_cupy_array(params[0].data)
        self._transport = _NcclTransport(comm) if on_gpu and self.world_size > 1 else _MpiTransport(comm)
        self._sync = True
        self.last_wait_seconds = 0.0  # time the last synchronised backward spent waiting for the sums
        self.last_early_buckets = 0  # buckets it started before the model's backward returned
        self._broadcast_state(module)
        sizes = [p.size * p.dtype.itemsize for p in params]
        bucket_bytes = int(self.bucket_mb * 2**20) if self.bucket_mb > 0 else sum(sizes) + 1
        self._buckets = [
            _Bucket([params[i] for i in indices],
                    self._transport.empty(sum(params[i].size for i in indices), params[indices[0]].dtype,
                                          params[indices[0]].data))
            for indices in bucket_plan(sizes, [p.dtype for p in params], bucket_bytes)
        ]
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        # A parameter's gradient is final once every module holding it has finished its backward.
        self._holders = {id(p): sum(1 for m in module.modules() for q in m._parameters.values() if q is p)
                         for p in params}
        self._holders_below = {id(m): [h for h in m.modules() if h._parameters] for m in module.modules()}
        myself = weakref.ref(self)  # the hook table must not keep the wrapper (and the model) alive

        def hook(m: Module) -> None:
            wrapper = myself()
            if wrapper is not None:
                wrapper._module_done(m)

        for m in module.modules():
            register_backward_done_hook(m, hook)
        self._start_step()

    # The wrapped module stands in for the wrapper in everything but forward / backward.
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """The wrapped module's modules (the wrapper itself is not one of them)."""
        return self.module.named_modules(prefix)

    def train(self, mode: bool = True) -> "DistributedDataParallel":
        """Training mode of the wrapped module."""
        self.module.train(mode)
        object.__setattr__(self, "training", bool(mode))
        return self

    def __getstate__(self) -> dict:
        """Refuses: the wrapper holds an MPI communicator (copy or save ``.module``)."""
        raise TypeError("fastnn.distributed.DistributedDataParallel cannot be copied or pickled (it holds an MPI "
                        "communicator); copy or save its .module")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped module's forward (after rank 0's buffers are copied to every rank, in
        training mode with ``broadcast_buffers``)."""
        if self.training and self.broadcast_buffers and self.world_size > 1:
            self._broadcast_state(self.module, parameters=False)
        return self.module(*args, **kwargs)

    def backward(self, grad_out: Array) -> Array:
        """The wrapped module's backward, with the gradients averaged over the ranks on return."""
        self._start_step()
        grad_in = self.module.backward(grad_out)
        self._finish_step()
        return grad_in

    def backward_params(self, grad_out: Array) -> None:
        """Parameter gradients only (see :meth:`Module.backward_params`), averaged over the ranks
        on return."""
        self._start_step()
        self.module.backward_params(grad_out)
        self._finish_step()

    def sync_gradients(self) -> None:
        """Averages the wrapped module's gradients over the ranks now (blocking), through the
        same buckets: for a module whose backward runs outside the wrapper, such as a loss with
        parameters of its own (``fit`` wraps one this way)."""
        self._start_step()
        self._finish_step()

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backwards inside accumulate gradients locally without talking to the other ranks."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def extra_repr(self) -> str:
        """The world size, the buckets and the wrapped module's type."""
        return (f"world_size={self.world_size}, buckets={len(self._buckets)}, bucket_mb={self.bucket_mb:g}, "
                f"module={type(self.module).__name__}")

    # ------------------------------------------------------------------------------------------

    def _broadcast_state(self, module: Module, parameters: bool = True) -> None:
        if self.world_size == 1:
            return
        arrays = [p.data for p in module.parameters()] if parameters else []
        _broadcast_arrays(group.communicator(), arrays + [b for _, b in module.named_buffers()])

    def _start_step(self) -> None:
        self._stepping = True  # hooks count only between _start_step and _finish_step
        self._done: set[int] = set()
        self._remaining = dict(self._holders)
        for bucket in self._buckets:
            bucket.waiting, bucket.handle = len(bucket.params), None
        self._next = 0  # the first bucket not started yet

    def _module_done(self, module: Module) -> None:
        # Outside a step (a deferred input gradient computed later runs the leading layers'
        # backward) the buckets are already summed: nothing to do.
        if not self._sync or self.world_size == 1 or not self._stepping:
            return
        for holder in self._holders_below.get(id(module), ()):
            if id(holder) in self._done:
                continue
            self._done.add(id(holder))
            for p in holder._parameters.values():
                key = id(p)
                if key not in self._remaining:
                    continue
                self._remaining[key] -= 1
                if self._remaining[key] == 0:
                    self._bucket_of[key].waiting -= 1
        while self._next < len(self._buckets) and self._buckets[self._next].waiting == 0:
            self._start_bucket(self._buckets[self._next])
        self._transport.progress([b.handle for b in self._buckets[:self._next]])

    def _start_bucket(self, bucket: _Bucket) -> None:
        bucket.fill()
        bucket.handle = self._transport.start(bucket.buffer)
        self._next += 1

    def _finish_step(self) -> None:
        self._stepping = False
        if not self._sync or self.world_size == 1:
            return
        self.last_early_buckets = self._next
        while self._next < len(self._buckets):
            self._start_bucket(self._buckets[self._next])
        begin = time.perf_counter()
        self._transport.wait([b.handle for b in self._buckets])
        self.last_wait_seconds = time.perf_counter() - begin
        for bucket in self._buckets:
            bucket.average_back(self.world_size)
            bucket.handle = None
