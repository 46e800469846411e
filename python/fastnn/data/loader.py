"""DataLoader: mini-batches of an in-memory dataset, seeded, optionally prepared ahead in a
background thread.

Randomness is a pure function of (seed, epoch, batch): the order of epoch ``e`` comes from a
generator seeded with ``(seed, e)`` and the augmentation of batch ``b`` from one seeded with
``(seed, e, b)``. So a run repeats exactly, prefetching cannot change what a batch holds, and
the loader's whole state is two integers (``state_dict()``), which makes resuming exact.

With ``device="cuda"`` the batches arrive as CuPy arrays: each is staged in pinned host memory
and copied to the GPU asynchronously on a copy stream of its own (fastnn.data.device_feed), so
the next batch's copy overlaps the current batch's compute.

With ``distributed=True`` each rank of a distributed run (fastnn.distributed) reads its shard of
the same seeded epoch order, PyTorch's DistributedSampler rule: the order is padded by repeating
its start until its length divides by the world size (or, with ``drop_last``, cut down to that),
and rank r takes positions r, r + W, r + 2W, ... So batch b of every rank together is batch b of
the single-process run with a W times larger batch (the padding aside).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import numpy as np

from fastnn._device import parse_device
from fastnn.random import default_generator

Batch = tuple[np.ndarray, np.ndarray]

# Keys passed to np.random.default_rng have a fixed length so that the key of an epoch's order
# and the key of a batch's augmentation can never coincide (SeedSequence pads short keys).
_ORDER, _AUGMENT, _SHARD_AUGMENT = 0, 1, 2


class _Arrays:
    """The dataset behind ``DataLoader(x=..., y=...)``: two arrays of the same length, of any
    rank (features or images), indexed together."""

    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = np.asarray(x), np.asarray(y)
        if self.x.ndim < 1 or self.y.ndim < 1 or len(self.x) != len(self.y):
            raise ValueError(
                f"fastnn.data.DataLoader: arguments 'x' and 'y' must have the same number of rows; got shapes "
                f"{self.x.shape} and {self.y.shape}"
            )

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: Any) -> Batch:
        return self.x[index], self.y[index]


def _check_dataset(dataset: Any) -> None:
    """TypeError for what is not a dataset, saying what to pass instead (a tuple or list of
    arrays, or a bare array, would otherwise fail later with an obscure indexing error)."""
    hint = ("pass an ArrayDataset (fastnn.data.ArrayDataset(x, y)), or the arrays themselves as x= and y= "
            "(DataLoader(x=x, y=y, batch_size=...))")
    if isinstance(dataset, (tuple, list)):
        raise TypeError(f"fastnn.data.DataLoader: argument 'dataset' must be a dataset; got a {type(dataset).__name__} "
                        f"of {len(dataset)} items: {hint}")
    if isinstance(dataset, np.ndarray) or hasattr(dataset, "__cuda_array_interface__"):
        raise TypeError(f"fastnn.data.DataLoader: argument 'dataset' must be a dataset of (x, y) pairs; got one array "
                        f"of shape {tuple(dataset.shape)}: {hint}")
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"fastnn.data.DataLoader: argument 'dataset' must support len() and indexing by an index "
                        f"array; got {type(dataset).__name__}: {hint}")


class DataLoader:
    """Iterates ``(x, y)`` batches of ``dataset`` (anything with ``len()`` whose indexing by an
    index array returns ``(x, y)`` arrays, e.g. :class:`ArrayDataset`), or of the arrays ``x``
    and ``y`` given by keyword: ``DataLoader(x=images, y=labels, batch_size=64)``.

    Args:
        batch_size: images per batch; the last one is smaller unless ``drop_last``.
        shuffle: a fresh permutation every epoch (each ``iter()`` is one epoch).
        seed: base seed of the order and augmentation; None draws one from fastnn's global
            generator, so ``fastnn.manual_seed`` governs it.
        transform: a batch transform called as ``transform(x, rng)`` (see fastnn.data.transforms).
        prefetch: batches prepared ahead in a background thread (0: prepare on demand).
        x, y: keyword-only, the data as two arrays of the same length (instead of ``dataset``).
        device: ``"cpu"`` (NumPy batches) or ``"cuda"`` / ``"cuda:<index>"``: CuPy batches on
            that GPU, copied asynchronously from pinned host memory, double-buffered (the copy
            of batch k + 1 runs while batch k is used). RuntimeError here when the CUDA backend
            is not available.
        distributed: read only this rank's shard of each epoch (see the module docstring);
            ``batch_size`` is then per rank. ``drop_last`` also cuts the order to a multiple of
            the world size instead of padding it. The rank and world size come from
            fastnn.distributed (after its ``init()``) unless ``rank`` and ``world_size`` are given.
        pad: with ``distributed`` and without ``drop_last``, False gives each rank its positions
            of the unpadded order (shards differ in length by at most one): every sample exactly
            once, for sharded evaluation.

    Batches are C-contiguous float32 images and int64 labels, fresh arrays each time, identical
    on every device (only where they live differs).
    """

    def __init__(self, dataset: Any = None, batch_size: int | None = None, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None,
                 transform: Callable[..., np.ndarray] | None = None, prefetch: int = 2, device: str = "cpu",
                 *, x: Any = None, y: Any = None, distributed: bool = False, rank: int | None = None,
                 world_size: int | None = None, pad: bool = True) -> None:
        if (x is None) != (y is None):
            raise TypeError("fastnn.data.DataLoader: pass both 'x' and 'y', or a dataset")
        if x is not None:
            if dataset is not None:
                raise TypeError("fastnn.data.DataLoader: pass either a dataset or x= and y=, not both")
            dataset = _Arrays(x, y)
        elif dataset is None:
            raise TypeError("fastnn.data.DataLoader: missing argument 'dataset' (or x= and y=)")
        _check_dataset(dataset)
        if batch_size is None:
            raise TypeError("fastnn.data.DataLoader: missing argument 'batch_size'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"fastnn.data.DataLoader: argument 'batch_size' must be a positive int; got {batch_size!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"fastnn.data.DataLoader: argument 'prefetch' must be an int >= 0; got {prefetch!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"fastnn.data.DataLoader: argument 'seed' must be a non-negative int or None; got {seed!r}")
        self.device, self._device_index = parse_device(device, "fastnn.data.DataLoader")
        if self.device == "cuda":
            from fastnn import cuda

            cuda.require_available(f"fastnn.data.DataLoader(device={device!r})")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.prefetch = int(prefetch)
        self.seed = int(seed) if seed is not None else int(default_generator().integers(2**63))
        self.epoch = 0
        self.distributed, self.pad = bool(distributed), bool(pad)
        self.rank, self.world_size = _shard_position(self.distributed, rank, world_size)

    def _shard_length(self) -> int:
        """The number of samples this rank reads per epoch (all of them when not distributed)."""
        n, ranks = len(self.dataset), self.world_size
        if not self.distributed:
            return n
        if self.drop_last:
            return n // ranks
        if self.pad:
            return -(-n // ranks)
        return len(range(self.rank, n, ranks))

    def __len__(self) -> int:
        n = self._shard_length()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """Where the loader stands: its seed and the number of epochs already started."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def _order(self, epoch: int) -> np.ndarray:
        """The epoch's index permutation (the natural order without shuffling)."""
        if not self.shuffle:
            return np.arange(len(self.dataset))
        return np.random.default_rng([self.seed, epoch, _ORDER, 0]).permutation(len(self.dataset))

    def _shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's positions of the epoch's ``order``: padded by repeating its start to a
        multiple of the world size (cut to one with ``drop_last``; left alone with ``pad=False``),
        then every world_size-th entry from this rank's."""
        if not self.distributed:
            return order
        n, ranks = len(order), self.world_size
        if self.drop_last:
            order = order[:n // ranks * ranks]
        elif self.pad and n % ranks:
            order = np.concatenate([order, np.resize(order, ranks - n % ranks)])  # repeats order's start
        return order[self.rank::ranks]

    def _batch(self, epoch: int, order: np.ndarray, b: int) -> Batch:
        # Indexing by an index array copies, so a batch never shares memory with the dataset
        # (a caller modifying a batch in place cannot corrupt the data).
        x, y = self.dataset[order[b * self.batch_size:(b + 1) * self.batch_size]]
        if self.transform is not None:
            # Each rank augments its part of global batch b with a stream of its own.
            key = ([self.seed, epoch, _AUGMENT, b] if self.world_size == 1
                   else [self.seed, epoch, _SHARD_AUGMENT, b * self.world_size + self.rank])
            x = self.transform(x, np.random.default_rng(key))
        return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64)

    def __iter__(self) -> Iterator[Batch]:
        # The epoch counter moves when iteration is asked for (not at the first next()), so
        # state_dict() taken after a finished epoch points at the next one.
        epoch = self.epoch
        self.epoch += 1
        order = self._shard(self._order(epoch))
        make = lambda b: self._batch(epoch, order, b)  # noqa: E731
        if self.prefetch == 0:
            batches = (make(b) for b in range(len(self)))
        else:
            batches = _prefetched(make, len(self), self.prefetch)
        if self.device == "cuda":
            from fastnn.data.device_feed import to_gpu_async

            return to_gpu_async(batches, self._device_index)
        return batches

    def __repr__(self) -> str:
        return (f"DataLoader(n={len(self.dataset)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, transform={self.transform!r}, prefetch={self.prefetch}, "
                f"device={self.device_name!r}"
                + (f", distributed=True, rank={self.rank}, world_size={self.world_size}, pad={self.pad}"
                   if self.distributed else "") + ")")

    @property
    def device_name(self) -> str:
        """Where batches arrive: "cpu", "cuda" or "cuda:<index>"."""
        return self.device if self._device_index is None else f"{self.device}:{self._device_index}"


def _shard_position(distributed: bool, rank: Any, world_size: Any) -> tuple[int, int]:
    """(rank, world size) of a distributed loader: given, or fastnn.distributed's; (0, 1) otherwise."""
    if not distributed:
        if rank is not None or world_size is not None:
            raise ValueError("fastnn.data.DataLoader: arguments 'rank' and 'world_size' apply with distributed=True only")
        return 0, 1
    if world_size is None or rank is None:
        if rank is not None or world_size is not None:
            raise ValueError("fastnn.data.DataLoader: give both 'rank' and 'world_size', or neither (then they come "
                             "from fastnn.distributed)")
        from fastnn import distributed as dist

        if not dist.is_initialized():
            raise RuntimeError("fastnn.data.DataLoader: distributed=True needs fastnn.distributed.init() first (or "
                               "explicit rank= and world_size=)")
        return dist.rank(), dist.world_size()
    for name, value, low in (("world_size", world_size, 1), ("rank", rank, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"fastnn.data.DataLoader: argument '{name}' must be an int >= {low}; got {value!r}")
    if rank >= world_size:
        raise ValueError(f"fastnn.data.DataLoader: argument 'rank' must be < world_size ({world_size}); got {rank}")
    return int(rank), int(world_size)


def _prefetched(make: Callable[[int], Batch], count: int, depth: int) -> Iterator[Batch]:
    """Yields make(0), make(1), ... computed by a worker thread up to ``depth`` batches ahead.
    The worker's exceptions re-raise in the consumer; abandoning the iterator stops the worker."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in range(count):
                if not put(("batch", make(b))):
                    return
            put(("end", None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(("error", e))

    worker = threading.Thread(target=work, name="fastnn-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
