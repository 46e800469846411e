"""``fastnn train``: train a model by name and write a run folder (checkpoint, report.json,
curves.png, confusion.png); ``--resume`` continues a saved run with its own settings."""

from __future__ import annotations

import argparse
import platform
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastnn
from fastnn import data, metrics, recipes, report
from fastnn.train import NonFiniteLossError
from fastnn.cli import tasks, train_config
from fastnn.cli.common import (CHECKPOINT_NAME, CLIError, Interrupted, check_model, device, device_text,
                               fraction, int_at_least, load_data, non_negative_float, positive_float, print_lines,
                               require_device, unit_float)
from fastnn.cli.common import folder_options
from fastnn.cli.predict import preprocessing
from fastnn.recipes import plural

BEST_NAME = "best.fastnn"

# The files a run writes into its folder (the pictures by task).
RUN_FILES = (CHECKPOINT_NAME, BEST_NAME, "report.json", "curves.png", "confusion.png", "roc.png", "scores.png",
             "cmc.png", "attributes.png")


# --monitor's names and the record keys they watch.
MONITORS = {"val_loss": "val_loss", "val_acc": "val_accuracy"}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds ``train`` and its options to the subcommands ``sub``."""
    train = sub.add_parser("train", help="train a model and write a run folder",
                           description="Train a classifier; writes runs/<name>/ (checkpoint, report.json, pictures).")
    train.add_argument("--dataset", choices=list(recipes.DATASET_NAMES), help="default: digits (bundled with scikit-learn)")
    train.add_argument("--data-dir", help="folder with the dataset files (default: data/<dataset>)")
    train.add_argument("--download", action="store_true", help="fetch missing dataset files (checksum-verified)")
    train.add_argument("--image-size", type=int_at_least(1), metavar="N",
                       help=f"--dataset folder: resize images to NxN (shorter side scaled, centre cropped; default "
                            f"{recipes.FOLDER_IMAGE_SIZE})")
    train.add_argument("--channels", type=int, choices=(1, 3),
                       help="--dataset folder: 1 (grayscale) or 3 (RGB) (default: 1 if every image is gray, else 3)")
    train.add_argument("--model", choices=list(recipes.MODEL_NAMES), help="default: simple_cnn")
    train.add_argument("--epochs", type=int_at_least(1), help="default: per dataset (digits 60, MNIST 10, CIFAR 30)")
    train.add_argument("--batch-size", type=int_at_least(1), help="default: 64 for digits, else 128")
    train.add_argument("--optimizer", choices=list(recipes.OPTIMIZER_NAMES), help="default: sgd (momentum 0.9, Nesterov)")
    train.add_argument("--lr", type=positive_float, help="peak learning rate (default: sgd 0.05, adam/adamw 0.001)")
    train.add_argument("--weight-decay", type=non_negative_float, help="default: sgd 5e-4, adam 0, adamw 0.05")
    train.add_argument("--schedule", choices=recipes.SCHEDULE_NAMES,
                       help="learning-rate schedule (default: cosine with warm-up; none: constant)")
    train.add_argument("--step-size", type=int_at_least(1), metavar="EPOCHS",
                       help="--schedule step: epochs between drops (default: half the run, so one drop at its middle)")
    train.add_argument("--gamma", type=unit_float, help="--schedule step: factor of each drop (default 0.1)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction,
                       help="augment the training images: small random turns, sub-pixel shifts and rescalings for "
                            "the 8x8 digits (on by default), random crops (and flips where they make sense) for the "
                            "other datasets (off by default)")
    train.add_argument("--threads", type=int_at_least(1), help="CPU threads (default: all cores)")
    train.add_argument("--device", type=device, default="cpu",
                       help="cpu (default), cuda or cuda:<index>: where the whole training loop runs")
    train.add_argument("--seed", type=int_at_least(0),
                       help="seed of initialisation, order, augmentation and the validation split (default 0)")
    train.add_argument("--val-fraction", type=fraction, metavar="F",
                       help="hold out this fraction of the training set, stratified by class and seeded, as the "
                            "validation set scored after each epoch; the test set is then scored once, at the end "
                            "(default 0.1; 0: score the test set after each epoch, shown as test_loss/test_acc)")
    train.add_argument("--early-stop", type=int_at_least(1), metavar="PATIENCE",
                       help="stop when the --monitor value has not improved for PATIENCE epochs (needs a "
                            "validation set)")
    train.add_argument("--monitor", choices=list(MONITORS),
                       help="what picks the best epoch, whose weights the run keeps (best.fastnn) and scores on the "
                            "test set: val_loss (default, lowest) or val_acc (highest)")
    train.add_argument("--init-from", metavar="CHECKPOINT",
                       help="start a new run from the weights (and BatchNorm statistics) in CHECKPOINT, to fine-tune "
                            "or train longer; the optimiser state (momentum, Adam moments), the schedule and the "
                            "epoch count start afresh. --model, --dataset and --data-dir default to the checkpoint's")
    train.add_argument("--out", help="run folder (default: a new runs/<dataset>-<model>-<time>/); "
                                     "an existing one must be empty, unless --overwrite")
    train.add_argument("--overwrite", action="store_true",
                       help="let --out name a folder that holds files: the run files in it are replaced")
    train.add_argument("--resume", metavar="CHECKPOINT",
                       help="continue the run saved in CHECKPOINT exactly, with its own settings (optimiser state "
                            "included)")
    train.add_argument("--quiet", action="store_true", help="print nothing")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training over the ranks of an MPI job (mpiexec -n 4 python -m fastnn train "
                            "--distributed ...; needs fastnn[mpi]): --batch-size is the global batch, split evenly; "
                            "rank 0 prints and writes the run folder (docs/DISTRIBUTED.md)")
    train.add_argument("--sync-bn", action="store_true",
                       help="--distributed: BatchNorm statistics over the global batch (SyncBatchNorm) instead of "
                            "each rank's own")
    tasks.add_arguments(train)
    train.set_defaults(handler=run)
    return train


def _new_run_dir(config: dict) -> Path:
    base = Path("runs") / f"{config['dataset']}-{config['model']}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def _check_run_dir(run_dir: Path, args: argparse.Namespace) -> list[str]:
    """CLIError unless the run may write into ``run_dir``: a new or empty folder, the folder of
    the checkpoint being resumed, or (with --overwrite) any folder. Returns the files of an
    earlier run there that --overwrite replaces (deleted once training starts)."""
    if not run_dir.exists():
        return []
    if not run_dir.is_dir():
        raise CLIError(f"--out {run_dir} is a file, not a folder")
    if args.resume and Path(args.resume).resolve().parent == run_dir.resolve():
        return []  # a resumed run carries on in its own folder
    if not any(run_dir.iterdir()):
        return []
    if not args.overwrite:
        raise CLIError(f"--out {run_dir} already holds files (an earlier run?); choose another --out, "
                       "or add --overwrite to replace the run files in it")
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def _loaders(config: dict, train_set: data.ArrayDataset, eval_set: data.ArrayDataset,
             device: str, ranks: int = 1) -> tuple[data.DataLoader, data.DataLoader]:
    """The training and evaluation loaders; with ``ranks`` > 1 (--distributed) this rank's shards,
    the global batch split evenly (evaluation shards unpadded: every image scored once)."""
    normalize = data.Normalize(config["normalize_mean"], config["normalize_std"])
    recipe = recipes.dataset_recipe(config["dataset"], **folder_options(config))
    augment = recipe.augmentation() if config["augment"] else []
    shards = {"distributed": True, "pad": False} if ranks > 1 else {}
    train_loader = data.DataLoader(train_set, config["batch_size"] // ranks, shuffle=True, seed=config["seed"],
                                   transform=data.Compose(augment + [normalize]), device=device,
                                   distributed=ranks > 1)
    eval_loader = data.DataLoader(eval_set, max(config["batch_size"], 256), transform=normalize, device=device,
                                  **shards)
    return train_loader, eval_loader


def _resume_command(checkpoint: Path, args: argparse.Namespace) -> str:
    words = ["python", "-m", "fastnn", "train", "--resume", str(checkpoint)]
    if args.distributed:
        from fastnn import distributed

        words = ["mpiexec", "-n", str(distributed.world_size()), *words, "--distributed"]
    if args.threads is not None:
        words += ["--threads", str(args.threads)]
    if args.device != "cpu":
        words += ["--device", args.device]
    return " ".join(shlex.quote(w) for w in words)


def _interrupted_text(run_dir: Path, training: bool, args: argparse.Namespace, epochs: int | None) -> str:
    """What Ctrl-C leaves: the epoch saved and the exact command that continues, or that
    nothing was saved."""
    candidates = ([run_dir / CHECKPOINT_NAME] if training else []) + ([Path(args.resume)] if args.resume else [])
    for path in candidates:
        try:
            epoch = int(fastnn.load(path)["epoch"])
        except Exception:  # missing, or half a file from an older fastnn: not resumable
            continue
        of = f" of {epochs}" if epochs else ""
        if epochs and epoch >= epochs:
            return (f"all {plural(epochs, 'epoch')} are saved in {path}, but the test score and report were not "
                    f"written; to write them: {_resume_command(path, args)}")
        return f"epoch {epoch}{of} is saved in {path}; to continue: {_resume_command(path, args)}"
    return "no epoch had finished, so nothing was saved; run the same command again to start over"


def run(args: argparse.Namespace) -> int:
    """Runs ``fastnn train``; returns the exit status. With --distributed, a failure on any rank
    prints that rank's message and ends the whole job (MPI_Abort): no rank waits for it."""
    if not args.distributed:
        if args.sync_bn:
            raise CLIError("--sync-bn applies to --distributed runs only")
        return _run(args)
    from fastnn import distributed

    try:
        distributed.init()
    except ImportError as e:
        raise CLIError(f"--distributed needs mpi4py: pip install 'fastnn[mpi]' ({str(e).split(': ')[-1]})") from None
    if args.threads is None:  # the ranks on one machine share its cores
        fastnn.set_num_threads(max(1, fastnn.get_num_threads() // distributed.local_world_size()))
    args.quiet = args.quiet or distributed.rank() != 0
    try:
        return _run(args)
    except Interrupted as e:
        # Ctrl-C reaches every rank (mpiexec forwards it). Rank 0 wrote the checkpoint, so its
        # message says what was saved; the others give it a moment to be printed first. Then the
        # job ends as a whole: a rank interrupted alone must not leave the others waiting.
        if distributed.rank() == 0:
            text = f"fastnn: interrupted: {' '.join(str(e).split())}"
        else:
            time.sleep(1.0)
            text = f"fastnn: interrupted on rank {distributed.rank()} (rank 0 says what was saved)"
        distributed.abort(text, e.code)
        raise  # not reached
    except BaseException as e:  # noqa: BLE001 - every failure must end every rank
        if isinstance(e, (CLIError, fastnn.checkpoint.CheckpointError, FileNotFoundError)):
            text = f"fastnn: error: {' '.join(str(e).split())}"
        else:
            import traceback

            text = "".join(traceback.format_exception(e)).rstrip()
        distributed.abort(f"{text}\n(rank {distributed.rank()})", getattr(e, "code", 1) or 1)
        raise  # not reached


def _distributed_ranks(args: argparse.Namespace) -> int:
    """The world size of a --distributed run, else 1."""
    if not args.distributed:
        return 1
    from fastnn import distributed

    return distributed.world_size()


def _is_main(args: argparse.Namespace) -> bool:
    """Whether this process writes the run folder (rank 0 of a --distributed run)."""
    if not args.distributed:
        return True
    from fastnn import distributed

    return distributed.rank() == 0


def _run(args: argparse.Namespace) -> int:
    started = time.time()
    wall_start = time.perf_counter()
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    init = None
    if args.resume:
        config, ck = train_config.resumed_config(args)
        if args.data_dir:
            config["data_dir"] = args.data_dir
        run_dir = Path(args.out) if args.out else Path(args.resume).parent
    else:
        config, ck = train_config.config_from_args(args), None
        if args.init_from:
            config, init = train_config.init_config(args)
        run_dir = Path(args.out) if args.out else _new_run_dir(config)
    if args.distributed:  # rank 0's folder name (it has the time in it) and checks
        from fastnn import distributed

        run_dir = Path(distributed.broadcast_object(str(run_dir)))
    train_config.check_options(config)
    replaced = _check_run_dir(run_dir, args) if _is_main(args) else []
    shape = recipes.dataset_recipe(config["dataset"], **folder_options(config)).input_shape
    check_model(config, shape)  # before any download
    require_device(args.device)
    phase = {"training": False}
    try:
        return _train(args, config, ck, init, run_dir, replaced, phase, started, wall_start)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_text(run_dir, phase["training"], args, config.get("epochs"))) from None


def _train(args: argparse.Namespace, config: dict[str, Any], ck: dict[str, Any] | None, init: dict[str, Any] | None,
           run_dir: Path, replaced: list[str], phase: dict[str, bool], started: float, wall_start: float) -> int:
    t0 = time.perf_counter()
    train_set, test_set = load_data(config, args.download)
    task = tasks.task_for(config)
    train_set, test_set = task.select(train_set, test_set, config)
    data_seconds = time.perf_counter() - t0
    n, c, h, w = train_set.x.shape
    val_set = None
    if config["val_fraction"]:
        try:
            train_set, val_set = task.split(train_set, config["val_fraction"], config["seed"])
        except ValueError as e:
            raise CLIError(f"--val-fraction {config['val_fraction']:g}: {str(e).split(': ', 1)[-1]}") from None
    if not ck:
        if h != w:
            raise CLIError(f"{config['dataset']} images are {h}x{w}; the models expect square images")
        config.update(in_channels=c, input_size=h, **task.describe(train_set),
                      normalize_mean=train_set.x.mean(axis=(0, 2, 3)).tolist(),
                      normalize_std=train_set.x.std(axis=(0, 2, 3)).tolist())
    if init is not None:
        train_config.take_init_config(config, init["config"], args.init_from)
    if not ck:  # what predict (and an export) must do to an image file before the model sees it
        config["preprocessing"] = preprocessing(config)
    if ck and config.get("threads") != fastnn.get_num_threads():
        print_lines(args.quiet, f"note: the run was trained with {plural(config.get('threads') or 0, 'thread')}, "
                                f"now {fastnn.get_num_threads()}: results may differ in the last bits from an unbroken run")
    config["threads"] = fastnn.get_num_threads()
    config["world_size"] = _distributed_ranks(args)

    fastnn.manual_seed(config["seed"])
    model = task.model(config)
    loss_fn = task.loss(config)
    if init is not None:
        try:
            fastnn.restore(init, model, rng=False)
        except fastnn.checkpoint.CheckpointError as e:
            raise CLIError(f"--init-from {args.init_from}: its weights do not fit --model {config['model']}: "
                           f"{str(e).split(': ', 2)[-1]}") from None
    ranks = _distributed_ranks(args)
    trained = model
    if args.distributed:
        model = _data_parallel(model, config, args)
    opt = recipes.build_optimizer(config["optimizer"], [*model.parameters(), *loss_fn.parameters()], config["lr"],
                                  config["weight_decay"])
    val_name = "val" if val_set is not None else "test"
    train_loader, eval_loader = _loaders(config, train_set, val_set if val_set is not None else test_set, args.device,
                                         ranks)
    schedule = recipes.build_schedule(config["schedule"], opt, config["epochs"], len(train_loader),
                                      **train_config.schedule_options(config))
    for name in replaced:  # --overwrite: no file of the old run may be mistaken for the new one's
        (run_dir / name).unlink(missing_ok=True)
    if _is_main(args):
        run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / CHECKPOINT_NAME
    n_params = sum(p.size for p in model.parameters())
    sets = (f"{len(train_set):,} training / " + (f"{len(val_set):,} validation / " if val_set is not None else "")
            + f"{len(test_set):,} test images of {c}x{h}x{w}")
    verb = "resuming" if ck else "training"
    origin = (f", starting from the weights of {args.init_from} (epoch {init.get('epoch')}; optimiser state not "
              "kept)" if init is not None else "")
    what = config["dataset"] if task.name == "multiclass" else f"{config['dataset']}, task {task.name}"
    print_lines(args.quiet, f"{verb} {config['model']} ({n_params:,} parameters) on {what} ({sets}): "
                            f"{plural(config['epochs'], 'epoch')}, batch {config['batch_size']}, {config['optimizer']} "
                            f"lr {config['lr']:g}, "
                            f"{recipes.describe_schedule(config['schedule'], config['epochs'], **train_config.schedule_options(config))}, "
                            + (f"{plural(config['threads'], 'thread')}" if args.device == "cpu"
                               else device_text(args.device)) + origin
                            + (f", {ranks} ranks (global batch {config['batch_size']}, {config['batch_size'] // ranks} "
                               "per rank)" if args.distributed else ""))

    resume_from = Path(args.resume) if ck else None
    monitor = MONITORS[config.get("monitor") or "val_loss"]
    t0 = time.perf_counter()
    phase["training"] = True
    try:
        history = fastnn.train.fit(model, loss_fn, opt, train_loader, config["epochs"],
                                   val_loader=eval_loader, scheduler=schedule, checkpoint=checkpoint,
                                   checkpoint_extra={"config": config}, resume_from=resume_from, quiet=args.quiet,
                                   device=args.device, val_name=val_name,
                                   monitor=monitor if val_set is not None else None,
                                   early_stop=config.get("early_stop"),
                                   best_checkpoint=run_dir / BEST_NAME if val_set is not None else None,
                                   restore_best=val_set is not None)
    except NonFiniteLossError as e:
        raise CLIError(_non_finite_text(e, config)) from None

    kept = history.best_epoch(monitor) if val_set is not None else len(history)
    result = fastnn.train.evaluate(model, fastnn.data.DataLoader(test_set, max(config["batch_size"], 256),
                                                                 transform=eval_loader.transform, device=args.device,
                                                                 **({"distributed": True, "pad": False}
                                                                    if ranks > 1 else {})),
                                   loss_fn, k=3, device=args.device)
    model = trained  # every rank holds the same weights: the rest scores and saves the model itself
    if not _is_main(args):
        return 0  # rank 0 scores the task and writes the run folder
    scored = task.score(model, loss_fn, test_set, config, args.device, max(config["batch_size"], 256))
    if scored is not None and scored.report.get("eer_threshold") is not None and val_set is not None:
        # best.fastnn (the weights just scored) keeps the same/different threshold for predict --pair.
        config["verification_threshold"] = scored.report["eer_threshold"]
        trained_loss = {"loss": loss_fn} if any(True for _ in loss_fn.parameters()) else {}
        fastnn.save(run_dir / BEST_NAME, model, opt, epoch=kept, history=history, config=config, **trained_loss)
    timing = {"data_seconds": data_seconds, "fit_seconds": time.perf_counter() - t0,
              "train_seconds": sum(r["train_seconds"] for r in history.records),
              "total_seconds": time.perf_counter() - wall_start}
    evaluation = {
        "each_epoch": (f"validation set: {len(val_set)} images held out of the training set ({config['val_fraction']:g}, "
                       f"stratified by class, seed {config['seed']}); record keys val_*") if val_set is not None
        else "test set (no validation set: --val-fraction 0); record keys test_*",
        "final": f"test set ({len(test_set)} images), scored once after training with the weights of epoch {kept}",
        "kept_epoch": kept,
        "kept_by": f"best {monitor}" if val_set is not None else "last epoch",
        "stopped_early": history.stopped_early,
        "epochs_run": len(history),
        "sets": {"train": len(train_set), "validation": len(val_set) if val_set is not None else 0,
                 "test": len(test_set)},
    }
    files, skipped = _write_run_folder(run_dir, config, history.records, result, timing, {
        "command": "fastnn train " + " ".join(args.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "resumed_from": str(resume_from) if resume_from else None,
        "init_from": {"checkpoint": str(args.init_from), "epoch": init.get("epoch"), "optimizer_state": "not kept"}
        if init is not None else None,
        "device": args.device,
        "evaluation": evaluation,
    }, val_name, kept, scored)
    lines = []
    if val_set is not None:
        best = history[kept - 1].get(monitor)
        lines.append((f"stopped early after epoch {len(history)}; " if history.stopped_early else "")
                     + f"kept epoch {kept} of {len(history)} (best {monitor.replace('accuracy', 'acc')} "
                     + (f"{100 * best:.1f}%" if monitor.endswith("accuracy") else f"{best:.4f}")
                     + f"), saved as {BEST_NAME}")
    if scored is None:
        lines.append(f"test accuracy {100 * result['accuracy']:.2f}%   top-3 {100 * result['top_k_accuracy']:.2f}%   "
                     f"({plural(result['images'], 'test image')}, {timing['total_seconds']:.1f} s in all)")
    else:
        lines += scored.lines
        lines.append(f"({plural(result['images'], 'test image')}, {timing['total_seconds']:.1f} s in all)")
    if task.name in ("multiclass", "binary"):
        if len(config["classes"]) <= 20:
            lines.append(report.format_confusion(result["confusion_matrix"], config["classes"]))
        else:
            lines.append("(confusion matrix: see report.json" + (" and confusion.png)" if "confusion.png" in files
                                                                  else ")"))
    if skipped:
        lines.append(f"note: {' and '.join(skipped)} not drawn: matplotlib is not installed "
                     "(pip install matplotlib, or fastnn[plots])")
    saved = [CHECKPOINT_NAME] + ([BEST_NAME] if val_set is not None else [])
    lines.append(f"run folder: {run_dir}  ({', '.join([*saved, *files])})")
    print_lines(args.quiet, *lines)
    return 0


def _data_parallel(model: Any, config: dict[str, Any], args: argparse.Namespace) -> Any:
    """--distributed: the model wrapped for data-parallel training (its BatchNorms synchronised
    with --sync-bn); CLIError for what the run cannot do."""
    from fastnn import distributed

    ranks = distributed.world_size()
    if config["batch_size"] % ranks:
        raise CLIError(f"--batch-size {config['batch_size']} is the global batch: it must divide evenly over the "
                       f"{ranks} ranks")
    if args.sync_bn:
        model = distributed.SyncBatchNorm.convert_sync_batchnorm(model)
    return distributed.DistributedDataParallel(model)


def _non_finite_text(e: NonFiniteLossError, config: dict) -> str:
    """fit's NonFiniteLossError told in the CLI's terms: what was non-finite, what was saved, and
    which flag to change (resuming would only diverge again: a resumed run keeps its --lr)."""
    where = f"the training loss became {e.loss} at epoch {e.epoch}, step {e.step} of {e.steps}"
    saved = (f"the last good state, after epoch {e.saved_epoch}, is {e.checkpoint}" if e.checkpoint is not None
             else "no epoch had finished, so nothing was saved")
    if e.source == "inputs":
        return (f"{where}: the input images of that batch hold NaN or infinite values, so the dataset's files "
                f"are damaged ({saved}); check the files (--data-dir) or fetch them again (--download)")
    cause = ("the model's outputs became non-finite: the weights diverged" if e.source == "outputs"
             else "the model's outputs were finite but the loss was not")
    return f"{where}: {cause} ({saved}); start a new run with a lower --lr than {config['lr']:g}"


def _write_run_folder(run_dir: Path, config: dict, records: list[dict], result: dict, timing: dict,
                      about: dict, val_name: str = "val", kept_epoch: int | None = None,
                      scored: tasks.TaskResult | None = None) -> tuple[list[str], list[str]]:
    """Writes report.json and, with matplotlib, curves.png, confusion.png (tasks with one class
    per image) and the task's own pictures; returns the names of the files written and of the
    pictures skipped (matplotlib missing)."""
    confusion = result["confusion_matrix"]
    title = f"{config['model']} on {config['dataset']}"
    pictures = {"curves.png": lambda path: report.plot_curves(records, path, title, val_name=val_name,
                                                               kept_epoch=kept_epoch)}
    if config.get("task", "multiclass") in ("multiclass", "binary"):
        pictures["confusion.png"] = lambda path: report.plot_confusion(
            confusion, config["classes"], path, f"{title}: test accuracy {100 * result['accuracy']:.1f}%")
    if scored is not None:
        pictures.update(scored.pictures)
    files, skipped = ["report.json"], []
    for name, draw in pictures.items():
        (files if draw(run_dir / name) else skipped).append(name)
    rates = [r["images_per_second"] for r in records]
    report.write_json(run_dir / "report.json", {
        **about,
        "config": config,
        "epochs": records,
        "final": {"task": config.get("task", "multiclass"), "set": "test", "epoch": kept_epoch,
                  "test_accuracy": result["accuracy"], "test_top3_accuracy": result["top_k_accuracy"],
                  "test_loss": result["loss"], "test_images": result["images"], "classes": config["classes"],
                  "confusion_matrix": confusion,
                  "per_class": metrics.precision_recall_f1(confusion) if confusion is not None else None,
                  **({scored.key: scored.report} if scored is not None else {})},
        "pictures_skipped": {name: "matplotlib is not installed" for name in skipped},
        "timing": {**timing, "mean_images_per_second": float(np.mean(rates)) if rates else None},
        "build": fastnn.build_info(),
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()},
    })
    return files, skipped
