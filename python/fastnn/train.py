"""The training loop: :func:`fit`, :func:`evaluate` and the :class:`History` they record.

``fit`` runs epochs of forward, loss, backward and optimizer step over a DataLoader, shows a
progress bar (tqdm, on an interactive terminal) with the running loss, accuracy and images per
second, evaluates on a validation loader after each epoch, can save a checkpoint after each
epoch, and stops with :class:`NonFiniteLossError` (naming the epoch, step and checkpoint to
resume from) the moment the loss stops being finite, before the bad step reaches the weights.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np

from fastnn import metrics
from fastnn._backend import is_cupy_array
from fastnn._device import parse_device, to_device

Callback = Callable[[int, dict], Any]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite. The message names the epoch and step, what was
    non-finite, and the checkpoint to resume from, if one was saved.

    The same facts are attributes, for callers that phrase their own advice (the CLI names its
    flags): ``loss``, ``epoch``, ``step``, ``steps`` (per epoch); ``source``: ``"inputs"`` when
    the batch's inputs held NaN or infinity, ``"outputs"`` when the inputs were finite but the
    model's outputs were not (the weights diverged), ``"loss"`` when only the loss was;
    ``checkpoint`` and ``saved_epoch``: the last good state's file and epoch (None when none was
    saved yet).
    """

    def __init__(self, message: str, *, loss: float = math.nan, epoch: int = 0, step: int = 0, steps: int = 0,
                 source: Literal["inputs", "outputs", "loss"] = "loss", checkpoint: Path | None = None, saved_epoch: int | None = None) -> None:
        super().__init__(message)
        self.loss, self.epoch, self.step, self.steps = loss, epoch, step, steps
        self.source, self.checkpoint, self.saved_epoch = source, checkpoint, saved_epoch


class History:
    """Per-epoch records (dicts of metrics) of a :func:`fit` run.

    ``history["val_accuracy"]`` is that metric over the epochs, ``history[-1]`` the last
    record; ``state_dict()`` / ``load_state_dict()`` store it in checkpoints.
    """

    def __init__(self, records: Iterable[dict] = ()) -> None:
        self.records: list[dict] = [dict(r) for r in records]
        self.stopped_early: bool = False  # set by fit when early stopping ended the run

    def best_epoch(self, monitor: str = "val_loss") -> int | None:
        """The epoch whose record has the best ``monitor`` value (the lowest for a key ending in
        ``loss``, else the highest; the earliest on a tie), or None when no record has it."""
        best = None
        for r in self.records:
            value = r.get(monitor)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if best is None or _better(value, best[1], monitor):
                best = (r["epoch"], value)
        return None if best is None else best[0]

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return [r.get(key) for r in self.records]
        return self.records[key]

    def __len__(self) -> int:
        return len(self.records)

    def state_dict(self) -> dict[str, list[dict]]:
        """The records, for a checkpoint."""
        return {"records": [dict(r) for r in self.records]}

    def load_state_dict(self, state: dict[str, list[dict]]) -> None:
        """Puts back records saved by :meth:`state_dict`."""
        self.records = [dict(r) for r in state["records"]]

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        return f"History(epochs={len(self)}, last={last})"


def _distributed_group() -> Any:
    """fastnn.distributed when this process is a rank of a distributed run (its init() ran),
    else None; never imports it (nor mpi4py)."""
    group = sys.modules.get("fastnn.distributed")
    return group if group is not None and group.is_initialized() else None


def _is_main_process() -> bool:
    """Whether this process prints and writes files: rank 0, or the only process."""
    group = _distributed_group()
    return group is None or group.rank() == 0


def _summed_over_shards(loader: Any, values: list[Any]) -> list[Any]:
    """``values`` summed over the ranks when ``loader`` reads one shard of a distributed run (the
    same numbers on every rank); as they are otherwise."""
    group = _distributed_group()
    if group is None or not getattr(loader, "distributed", False):
        return values
    return group.sum_across_ranks(values)


def _minimised(monitor: str) -> bool:
    return monitor.endswith("loss")


def _better(value: float, than: float, monitor: str) -> bool:
    return value < than if _minimised(monitor) else value > than


def _progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr, or None (disabled, or tqdm not installed)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True)


def _use_device(model: Any, device: str | None, where: str) -> tuple[str, int | None] | None:
    """Moves ``model`` to ``device`` (None: leave it where it is); returns the parsed device.
    RuntimeError naming ``where`` when the device is "cuda" and the CUDA backend cannot run."""
    if device is None:
        return None
    kind, index = parse_device(device, where)
    if kind == "cuda":
        from fastnn import cuda

        cuda.require_available(f"{where}(device={device!r})")
    model.to(device)
    return kind, index


def _trained_loss(loss_fn: Any) -> Any:
    """``loss_fn`` when it has parameters of its own (ArcFaceLoss's class centres), else None.
    Such a loss is trained with the model: it goes to the model's device, and its state is saved,
    resumed and kept with the best epoch alongside the model's (under the checkpoint key "loss")."""
    parameters = getattr(loss_fn, "parameters", None)
    return loss_fn if callable(parameters) and any(True for _ in parameters()) else None


def _loss_gradient_sync(model: Any, trained_loss: Any) -> Callable[[], None] | None:
    """In a distributed run whose model is a DistributedDataParallel, a loss with parameters of
    its own (ArcFace's class centres) starts from rank 0's parameters and has its gradients
    averaged over the ranks after each backward, as DDP averages the model's: returns the
    averaging step. None otherwise."""
    group = _distributed_group()
    if group is None or trained_loss is None or not isinstance(model, group.DistributedDataParallel):
        return None
    return group.DistributedDataParallel(trained_loss, bucket_mb=0).sync_gradients


def _batches_on(loader: Iterable, device: tuple[str, int | None] | None) -> Iterable:
    """The loader's (x, y) batches on ``device``: as they come when already there (a
    ``DataLoader(device=...)`` copies asynchronously), else copied (synchronously)."""
    if device is None:
        return loader
    return ((to_device(x, *device), to_device(y, *device)) for x, y in loader)


def evaluate(model: Any, loader: Iterable, loss_fn: Any = None, k: int = 3, device: str | None = None) -> dict[str, Any]:
    """Runs ``model`` in eval mode over ``loader`` and returns ``{"accuracy", "top_k",
    "top_k_accuracy", "loss" (mean over images; None without ``loss_fn``), "confusion_matrix"
    ((K, K) int64, rows = true class), "images", "seconds"}``. The model's train/eval mode is
    restored afterwards.

    ``device`` ("cpu", "cuda", "cuda:<index>"; None: wherever the model is) moves the model
    there and runs the forward passes and the loss there, batches moved as needed; the metrics
    are computed on the host from the predictions copied back."""
    placement = _use_device(model, device, "fastnn.train.evaluate")
    if placement is not None and _trained_loss(loss_fn) is not None:
        loss_fn.to(device)
    was_training = getattr(model, "training", True)
    loss_was_training = getattr(loss_fn, "training", None)
    model.eval()
    if loss_was_training is not None:
        loss_fn.eval()
    start = time.perf_counter()
    confusion = None
    top_k_hits, loss_sum, n, batches = 0, 0.0, 0, 0
    try:
        for x, y in _batches_on(loader, placement):
            out = model(x)
            if loss_fn is not None:
                loss_sum += float(loss_fn(out, y)) * len(y)
            batches += 1
            n += len(y)
            scores = _class_scores(out, y, loss_fn)
            if scores is None:
                continue
            logits, y = to_device(scores, "cpu"), to_device(y, "cpu")
            if confusion is None:
                confusion = np.zeros((logits.shape[1], logits.shape[1]), dtype=np.int64)
            confusion += metrics.confusion_matrix(y, logits.argmax(axis=1), logits.shape[1])
            top_k_hits += int(np.count_nonzero(metrics.top_k_correct(y, logits, k)))
    finally:
        model.train(was_training)
        if loss_was_training is not None:
            loss_fn.train(loss_was_training)
    confusion, top_k_hits, loss_sum, n, batches = _summed_over_shards(loader, [confusion, top_k_hits, loss_sum, n, batches])
    if batches == 0:
        raise ValueError("fastnn.train.evaluate: the loader yielded no batches")
    return {
        "accuracy": float(np.trace(confusion)) / n if confusion is not None else None,
        "top_k": k,
        "top_k_accuracy": top_k_hits / n if confusion is not None else None,
        "loss": loss_sum / n if loss_fn is not None else None,
        "confusion_matrix": confusion,
        "images": n,
        "seconds": time.perf_counter() - start,
    }


def _class_scores(out: Any, y: Any, loss_fn: Any) -> Any:
    """Per-class scores of a batch, or None when the outputs are not single-label class scores.

    A model's (N, K) outputs against (N,) labels are its logits. A loss that turns the outputs into
    class scores itself (ArcFaceLoss: embeddings scored against its class centres) says so with
    ``loss_fn.logits(outputs)``. Other outputs (a multi-head dict, multi-label targets, embeddings
    for a loss without classes) have no accuracy."""
    if getattr(y, "ndim", None) != 1:
        return None
    if loss_fn is not None and callable(getattr(loss_fn, "logits", None)):
        return loss_fn.logits(out)
    return out if getattr(out, "ndim", None) == 2 else None


def _all_finite(array: Any) -> bool:
    """Whether every element of a NumPy or CuPy array (or of each array of a multi-head dict) is
    finite (one reduction per array, on its device)."""
    if isinstance(array, dict):
        return all(_all_finite(value) for value in array.values())
    if not hasattr(array, "dtype") or array.dtype.kind not in "fc":
        return True
    if is_cupy_array(array):
        import cupy

        return bool(cupy.isfinite(array).all())
    return bool(np.isfinite(array).all())


def _non_finite(loss: float, epoch: int, step: int, steps: int, saved: tuple[Path, int] | None,
                x: Any, logits: Any) -> NonFiniteLossError:
    where = f"fastnn.train.fit: the loss became {loss} at epoch {epoch}, step {step} of {steps}"
    if not _all_finite(x):
        source, cause = "inputs", "the batch's inputs hold NaN or infinite values (check the data and its transforms)"
    elif not _all_finite(logits):
        source, cause = "outputs", "the model's outputs became non-finite on finite inputs: the weights diverged"
    else:
        source, cause = "loss", "the inputs and the model's outputs were finite: the loss itself was not"
    facts = dict(loss=loss, epoch=epoch, step=step, steps=steps, source=source)
    advice = "Fix the data." if source == "inputs" else "Try a lower learning rate."
    if saved is None:
        return NonFiniteLossError(f"{where}; {cause}; no checkpoint was saved yet (checkpoint= keeps one per "
                                  f"epoch). {advice}", **facts)
    path, saved_epoch = saved
    advice = "fix the data" if source == "inputs" else "start again with a lower learning rate"
    return NonFiniteLossError(f"{where}; {cause}; the last good state is {path} (saved after epoch {saved_epoch}): "
                              f"resume from it, or {advice}.", checkpoint=path, saved_epoch=saved_epoch, **facts)


def _format_record(r: dict, epochs: int, val_name: str = "val") -> str:
    parts = [f"epoch {r['epoch']:>{len(str(epochs))}}/{epochs}", f"loss {r['train_loss']:.4f}"]
    if r.get("train_accuracy") is not None:
        parts.append(f"acc {100 * r['train_accuracy']:5.1f}%")
    if r.get(f"{val_name}_loss") is not None:
        parts.append(f"{val_name}_loss {r[f'{val_name}_loss']:.4f}")
    if r.get(f"{val_name}_accuracy") is not None:
        parts.append(f"{val_name}_acc {100 * r[f'{val_name}_accuracy']:5.1f}%")
    parts += [f"lr {r['lr']:.3g}", f"{r['train_seconds']:.1f} s", f"{r['images_per_second']:.0f} img/s"]
    return "  ".join(parts)


def _train_epoch(model, loss_fn, optimizer, loader, scheduler, per_batch: bool, epoch: int, epochs: int,
                 show_bar: bool, saved: tuple[Path, int] | None, device: tuple[str, int | None] | None,
                 loss_sync: Callable[[], None] | None = None) -> dict:
    model.train()
    steps = len(loader)
    bar = _progress_bar(steps, f"epoch {epoch}/{epochs}", show_bar)
    start = time.perf_counter()
    loss_sum, correct, seen, classified = 0.0, 0, 0, True
    try:
        for step, (x, y) in enumerate(_batches_on(loader, device), 1):
            logits = model(x)
            loss = float(loss_fn(logits, y))  # waits for the GPU: the step's one synchronisation
            if not math.isfinite(loss):
                raise _non_finite(loss, epoch, step, steps, saved, x, logits)
            if classified and getattr(logits, "ndim", None) == 2 and y.ndim == 1 and not hasattr(loss_fn, "logits"):
                # Predicted labels copied back (N integers), compared on the host.
                predicted = to_device(logits.argmax(axis=1), "cpu")
                correct += int(np.count_nonzero(predicted == to_device(y, "cpu")))
            else:
                # Multi-label targets, a multi-head dict, embeddings: no single-label accuracy while
                # training (a loss with class centres is scored by evaluate, through its logits).
                classified = False
            optimizer.zero_grad()
            model.backward_params(loss_fn.backward())
            if loss_sync is not None:
                loss_sync()
            optimizer.step()
            if per_batch and scheduler is not None:
                scheduler.step()
            loss_sum += loss * len(y)
            seen += len(y)
            if bar is not None:
                rate = seen / max(time.perf_counter() - start, 1e-9)
                postfix = {"loss": f"{loss_sum / seen:.4f}", "img/s": f"{rate:.0f}"}
                if classified:
                    postfix["acc"] = f"{100 * correct / seen:.1f}%"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.refresh()  # the final loss/accuracy/rate, even when the epoch beat tqdm's redraw interval
            bar.close()
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = _summed_over_shards(loader, [loss_sum, correct, seen])
    return {
        "epoch": epoch,
        "lr": float(optimizer.param_groups[0]["lr"]),
        "train_loss": loss_sum / max(seen, 1),
        "train_accuracy": correct / max(seen, 1) if classified else None,
        "train_seconds": seconds,
        "images_per_second": seen / max(seconds, 1e-9),
    }


def fit(model: Any, loss_fn: Any, optimizer: Any, train_loader: Any, epochs: int, val_loader: Any = None,
        scheduler: Any = None, callbacks: Iterable[Callback] = (), scheduler_step: str = "batch",
        checkpoint: str | Path | None = None, checkpoint_extra: dict[str, Any] | None = None,
        resume_from: str | Path | None = None, quiet: bool = False, progress: bool | None = None,
        log: Callable[[str], Any] = print, device: str | None = None, val_name: str = "val",
        monitor: str | None = None, early_stop: int | None = None, best_checkpoint: str | Path | None = None,
        restore_best: bool = False) -> History:
    """Trains ``model`` for ``epochs`` epochs (in total, counting any resumed ones).

    Args:
        loss_fn: called as ``loss_fn(logits, y)`` (a float); ``loss_fn.backward()`` gives dlogits.
            A loss with parameters of its own (``nn.ArcFaceLoss``'s class centres) is trained with
            the model (give ``optimizer`` both: ``[*model.parameters(), *loss.parameters()]``); fit
            moves it with the model and saves, resumes and restores its state with the model's
            (checkpoint key ``"loss"``). A loss with ``logits(outputs)`` (class scores from the
            outputs) is how ``val_accuracy`` is scored for outputs that are not class scores.
        scheduler: a learning-rate schedule stepped after every batch (``scheduler_step="batch"``)
            or every epoch (``"epoch"``).
        val_loader: evaluated after each epoch (``val_loss``, ``val_accuracy``,
            ``val_top_k_accuracy`` and ``val_seconds`` in the record).
        val_name: the prefix of those keys and of the printed columns (default ``"val"``); name
            the set honestly, e.g. ``"test"`` when ``val_loader`` holds the test set.
        callbacks: each called as ``callback(epoch, record)`` after every epoch; returning True
            stops training.
        checkpoint: a path; after each epoch the model, optimizer, scheduler, the train loader's
            position, history, epoch, RNG state and ``checkpoint_extra`` are saved there.
        resume_from: a checkpoint saved by ``fit``; training continues exactly where it ended
            (same seed and thread count give bitwise the same weights as an unbroken run).
        quiet: no output at all. Otherwise one line per epoch goes to ``log`` and, when
            ``progress`` is True (default: stderr is a terminal), a tqdm bar per epoch.
        device: "cpu", "cuda" or "cuda:<index>" (None: wherever the model is): the model (and
            so the optimizer's state) moves there and the whole loop runs there; batches not
            already there are copied (``DataLoader(device="cuda")`` copies them asynchronously
            ahead of use). RuntimeError at once when CUDA is asked for but cannot run.
        monitor: the record key that decides the best epoch, e.g. ``"val_loss"`` (the lowest
            wins, as for every key ending in ``loss``) or ``"val_accuracy"`` (the highest wins).
            Default ``f"{val_name}_loss"`` when any of the next three arguments is used.
        early_stop: patience: stop once ``early_stop`` epochs in a row have not beaten the best
            epoch's ``monitor`` value (``history.stopped_early`` is then True). A resumed run
            counts the epochs before the resume too.
        best_checkpoint: a path; the model, optimizer and ``checkpoint_extra`` of the best epoch
            so far are saved there (as ``checkpoint`` saves the last one), with ``epoch``.
        restore_best: at the end, load the best epoch's weights (and buffers) back into the
            model: kept in memory, or read from ``best_checkpoint`` when that epoch ran before
            a resume. ``history.best_epoch(monitor)`` says which epoch that was.

    Returns the :class:`History`. Raises NonFiniteLossError when the loss stops being finite.
    """
    from fastnn.checkpoint import restore, save

    if scheduler_step not in ("batch", "epoch"):
        raise ValueError(f"fastnn.train.fit: argument 'scheduler_step' must be 'batch' or 'epoch'; got {scheduler_step!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fastnn.train.fit: argument 'epochs' must be a positive int; got {epochs!r}")
    if early_stop is not None and (isinstance(early_stop, bool) or not isinstance(early_stop, int) or early_stop < 1):
        raise ValueError(f"fastnn.train.fit: argument 'early_stop' must be a positive int (epochs) or None; got {early_stop!r}")
    tracking = early_stop is not None or best_checkpoint is not None or restore_best
    if monitor is None:
        monitor = f"{val_name}_loss"
    if tracking and val_loader is None and monitor.startswith(f"{val_name}_"):
        raise ValueError(f"fastnn.train.fit: monitor={monitor!r} needs a val_loader (early_stop, best_checkpoint "
                         "and restore_best pick epochs by it)")
    placement = _use_device(model, device, "fastnn.train.fit")
    trained_loss = _trained_loss(loss_fn)
    if placement is not None and trained_loss is not None:
        loss_fn.to(device)
    main = _is_main_process()  # a distributed run prints and writes files from rank 0 only
    quiet = quiet or not main
    show_bar = (not quiet) and (progress if progress is not None else sys.stderr.isatty())
    history, first_epoch, saved = History(), 1, None
    callbacks = list(callbacks)
    # The loader's position (seed, epoch) and the schedule's step make a resumed run exact.
    stateful = {name: obj for name, obj in (("loader", train_loader), ("scheduler", scheduler))
                if hasattr(obj, "state_dict")}
    if trained_loss is not None:
        stateful["loss"] = trained_loss
    if resume_from is not None:
        ck = restore(resume_from, model, optimizer, history=history, **stateful)
        first_epoch, saved = int(ck["epoch"]) + 1, (Path(resume_from), int(ck["epoch"]))
    loss_sync = _loss_gradient_sync(model, trained_loss)
    best_epoch = history.best_epoch(monitor) if tracking else None
    best_state = best_loss_state = None  # the best epoch's model (and loss) state, when that epoch ran in this call
    for epoch in range(first_epoch, epochs + 1):
        if early_stop is not None and best_epoch is not None and epoch - 1 - best_epoch >= early_stop:
            history.stopped_early = True  # a resumed run whose patience had already run out
            break
        record = _train_epoch(model, loss_fn, optimizer, train_loader, scheduler, scheduler_step == "batch", epoch,
                              epochs, show_bar, saved, placement, loss_sync)
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        if val_loader is not None:
            result = evaluate(model, val_loader, loss_fn, device=device)
            record.update({f"{val_name}_loss": result["loss"], f"{val_name}_accuracy": result["accuracy"],
                           f"{val_name}_top_k_accuracy": result["top_k_accuracy"],
                           f"{val_name}_seconds": result["seconds"]})
        history.append(record)
        improved = False
        if tracking:
            if monitor not in record:
                raise ValueError(f"fastnn.train.fit: monitor={monitor!r} is not in the epoch's record "
                                 f"(its keys: {', '.join(record)})")
            improved = history.best_epoch(monitor) == epoch
            if improved:
                best_epoch = epoch
                if restore_best:
                    best_state = model.state_dict()  # copies
                    best_loss_state = trained_loss.state_dict() if trained_loss is not None else None
                if best_checkpoint is not None and main:
                    save(best_checkpoint, model, optimizer, epoch=epoch, history=history,
                         **({"loss": trained_loss} if trained_loss is not None else {}), **(checkpoint_extra or {}))
        if checkpoint is not None:
            if main:
                save(checkpoint, model, optimizer, epoch=epoch, history=history, **stateful, **(checkpoint_extra or {}))
            saved = (Path(checkpoint), epoch)
        if not quiet:
            log(_format_record(record, epochs, val_name) + ("  (best)" if improved and epoch > 1 else ""))
        stop_requests = [cb(epoch, record) is True for cb in callbacks]
        if any(stop_requests):
            break
        if early_stop is not None and best_epoch is not None and epoch - best_epoch >= early_stop and epoch < epochs:
            history.stopped_early = True
            if not quiet:
                log(f"early stop: {monitor} has not improved for {early_stop} epoch{'s' if early_stop != 1 else ''} "
                    f"(best: epoch {best_epoch})")
            break
    if restore_best and best_epoch is not None and best_epoch != len(history.records):
        if best_state is not None:
            model.load_state_dict(best_state)
            if best_loss_state is not None:
                trained_loss.load_state_dict(best_loss_state)
        elif best_checkpoint is not None and Path(best_checkpoint).exists():
            restore(best_checkpoint, model, rng=False,
                    **({"loss": trained_loss} if trained_loss is not None else {}))
        else:
            raise ValueError(f"fastnn.train.fit: restore_best: the best epoch ({best_epoch}) ran before the resume "
                             "and no best_checkpoint holds its weights")
    return history
