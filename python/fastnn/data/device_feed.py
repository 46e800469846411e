"""Host-to-GPU batch transfer for ``DataLoader(device="cuda")``.

Each host batch is copied into one of two pinned (page-locked) host buffers, then to freshly
allocated CuPy arrays by an asynchronous copy on a dedicated, non-blocking copy stream. The
copy of batch k + 1 is queued before batch k is handed out, so it runs while the model computes
on batch k (double buffering). Ordering, stream by stream:

- the copy stream waits for an event recorded on the compute stream (the caller's current
  stream) when the batch's device arrays were allocated: CuPy's pool may hand out memory the
  compute stream is still reading;
- the compute stream waits for the copy's event before the batch is handed out, so kernels
  queued on it never read a half-copied batch (the host thread itself does not wait);
- a pinned buffer is overwritten only after the copy that last read it has finished (its event
  synchronised on the host);
- when the consumer stops early (a ``break``, an exception in the training loop, a
  NonFiniteLossError), batch k + 1's copy is still in flight: closing the generator waits for it
  on the host before the feed lets go of it. Otherwise its device arrays would go back to CuPy's
  pool, and its pinned slot to the pinned pool, while the copy still writes or reads them.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any, Iterable, Iterator

import numpy as np


class _PinnedSlot:
    """Pinned host memory for one batch (x and y), grown on demand, and the event of the last
    copy that read it."""

    def __init__(self) -> None:
        self.memory: Any = None
        self.nbytes = 0
        self.copied: Any = None  # cupy.cuda.Event of the last copy out of this slot

    def stage(self, cupy: Any, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        """Copies ``arrays`` into the slot; returns their pinned views."""
        if self.copied is not None:
            self.copied.synchronize()  # the GPU has finished reading the previous batch
        # 256-byte aligned offsets for each array in one allocation.
        offsets, total = [], 0
        for a in arrays:
            offsets.append(total)
            total += -(-a.nbytes // 256) * 256
        if total > self.nbytes:
            self.memory, self.nbytes = cupy.cuda.alloc_pinned_memory(total), total
        views = []
        for a, offset in zip(arrays, offsets):
            view = np.frombuffer(self.memory, dtype=a.dtype, count=a.size, offset=offset).reshape(a.shape)
            np.copyto(view, a)
            views.append(view)
        return views


class _Feeder:
    def __init__(self, cupy: Any) -> None:
        self.cupy = cupy
        self.copy_stream = cupy.cuda.Stream(non_blocking=True)
        self.slots = (_PinnedSlot(), _PinnedSlot())
        self.count = 0

    def start_copy(self, batch: tuple[np.ndarray, ...]) -> tuple[tuple[Any, ...], Any]:
        """Queues the copy of ``batch`` to the GPU; returns the device arrays and the copy's
        event (not yet safe to read on other streams)."""
        cupy = self.cupy
        slot = self.slots[self.count % 2]
        self.count += 1
        pinned = slot.stage(cupy, batch)
        device = tuple(cupy.empty(a.shape, dtype=a.dtype) for a in pinned)  # on the compute stream
        self.copy_stream.wait_event(cupy.cuda.get_current_stream().record())
        for dst, src in zip(device, pinned):  # asynchronous: the source is pinned
            dst.data.copy_from_host_async(src.ctypes.data_as(ctypes.c_void_p), src.nbytes, self.copy_stream)
        slot.copied = self.copy_stream.record()
        return device, slot.copied

    def hand_out(self, device: tuple[Any, ...], copied: Any) -> tuple[Any, ...]:
        self.cupy.cuda.get_current_stream().wait_event(copied)
        return device


def to_gpu_async(batches: Iterable[tuple[np.ndarray, ...]], device_index: int | None = None) -> Iterator[tuple[Any, ...]]:
    """The batches of ``batches`` as CuPy arrays on the current GPU (or GPU ``device_index``),
    copied ahead by one batch; see the module docstring."""
    import cupy

    context = cupy.cuda.Device(device_index) if device_index is not None else contextlib.nullcontext()
    iterator = iter(batches)
    pending = None  # (device arrays, copy event) queued but not yet handed out
    try:
        with context:
            feeder = _Feeder(cupy)
            first = next(iterator, None)
            if first is None:
                return
            pending = feeder.start_copy(first)
        for batch in iterator:
            with context:
                ahead = feeder.start_copy(batch)  # batch k + 1 copies while batch k computes
                ready = feeder.hand_out(*pending)
            pending = ahead
            yield ready
        with context:
            ready = feeder.hand_out(*pending)
        pending = None
        yield ready
    finally:
        # Runs on generator close too (the consumer's loop ended by break or exception): the copy
        # queued ahead must finish before its arrays and pinned slot can be reused.
        if pending is not None:
            with context:
                pending[1].synchronize()
