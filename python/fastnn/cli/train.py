"""``fastnn train``: train a model by name and write a run folder (checkpoint, report.json,
curves.png, confusion.png); ``--resume`` continues a saved run with its own settings."""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastnn
from fastnn import data, metrics, nn, recipes, report
from fastnn.train import NonFiniteLossError
from fastnn.cli.common import (CHECKPOINT_NAME, CLIError, build_model, check_model, device, device_text, int_at_least,
                               load_data, non_negative_float, positive_float, print_lines, require_device)

# The files a run writes into its folder.
RUN_FILES = (CHECKPOINT_NAME, "report.json", "curves.png", "confusion.png")

# Options that define a run; on --resume they come from the checkpoint and may not change.
RUN_DEFINING = ("dataset", "model", "optimizer", "batch_size", "lr", "weight_decay", "schedule", "augment", "seed")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds ``train`` and its options to the subcommands ``sub``."""
    train = sub.add_parser("train", help="train a model and write a run folder",
                           description="Train a classifier; writes runs/<name>/ (checkpoint, report.json, pictures).")
    train.add_argument("--dataset", choices=list(recipes.DATASET_NAMES), help="default: digits (bundled with scikit-learn)")
    train.add_argument("--data-dir", help="folder with the dataset files (default: data/<dataset>)")
    train.add_argument("--download", action="store_true", help="fetch missing dataset files (checksum-verified)")
    train.add_argument("--model", choices=list(recipes.MODEL_NAMES), help="default: simple_cnn")
    train.add_argument("--epochs", type=int_at_least(1), help="default: per dataset (digits 30, MNIST 10, CIFAR 30)")
    train.add_argument("--batch-size", type=int_at_least(1), help="default: 64 for digits, else 128")
    train.add_argument("--optimizer", choices=list(recipes.OPTIMIZER_NAMES), help="default: sgd (momentum 0.9, Nesterov)")
    train.add_argument("--lr", type=positive_float, help="peak learning rate (default: sgd 0.05, adam/adamw 0.001)")
    train.add_argument("--weight-decay", type=non_negative_float, help="default: sgd 5e-4, adam 0, adamw 0.05")
    train.add_argument("--schedule", choices=recipes.SCHEDULE_NAMES, help="learning-rate schedule (default: cosine with warm-up)")
    train.add_argument("--augment", action="store_true", help="random crops (and flips where they make sense)")
    train.add_argument("--threads", type=int_at_least(1), help="CPU threads (default: all cores)")
    train.add_argument("--device", type=device, default="cpu",
                       help="cpu (default), cuda or cuda:<index>: where the whole training loop runs")
    train.add_argument("--seed", type=int_at_least(0), help="seed of initialisation, order and augmentation (default 0)")
    train.add_argument("--out", help="run folder (default: a new runs/<dataset>-<model>-<time>/); "
                                     "an existing one must be empty, unless --overwrite")
    train.add_argument("--overwrite", action="store_true",
                       help="let --out name a folder that holds files: the run files in it are replaced")
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    train.add_argument("--quiet", action="store_true", help="print nothing")
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


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    spec = recipes.dataset_recipe(args.dataset or "digits")
    opt = args.optimizer or "sgd"
    defaults = recipes.optimizer_defaults(opt)
    return {
        "dataset": args.dataset or "digits",
        "data_dir": args.data_dir,
        "model": args.model or "simple_cnn",
        "epochs": args.epochs or spec.epochs,
        "batch_size": args.batch_size or spec.batch_size,
        "optimizer": opt,
        "lr": args.lr if args.lr is not None else defaults["lr"],
        "weight_decay": args.weight_decay if args.weight_decay is not None else defaults["weight_decay"],
        "schedule": args.schedule or "cosine",
        "augment": bool(args.augment),
        "seed": args.seed if args.seed is not None else 0,
    }


def _resumed_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The saved run's config (checked against explicitly given options) and the checkpoint."""
    ck = fastnn.load(args.resume)
    config = ck.get("config")
    if not isinstance(config, dict):
        raise CLIError(f"{args.resume} holds no run configuration (it was not written by `fastnn train`)")
    for key in RUN_DEFINING:
        given = getattr(args, key)
        if given not in (None, False) and given != config[key]:
            raise CLIError(f"--{key.replace('_', '-')} {given} differs from the resumed run's {config[key]}; "
                           "a resumed run keeps its settings (start a new run to change them)")
    if args.epochs is not None and args.epochs != config["epochs"]:
        raise CLIError(f"--epochs {args.epochs} differs from the resumed run's {config['epochs']} (its schedule "
                       "is laid out over that many); start a new run to train longer")
    return dict(config), ck


def _loaders(config: dict, train_set: data.ArrayDataset, test_set: data.ArrayDataset,
             device: str) -> tuple[data.DataLoader, data.DataLoader]:
    normalize = data.Normalize(config["normalize_mean"], config["normalize_std"])
    augment = recipes.dataset_recipe(config["dataset"]).augmentation() if config["augment"] else []
    train_loader = data.DataLoader(train_set, config["batch_size"], shuffle=True, seed=config["seed"],
                                   transform=data.Compose(augment + [normalize]), device=device)
    test_loader = data.DataLoader(test_set, max(config["batch_size"], 256), transform=normalize, device=device)
    return train_loader, test_loader


def run(args: argparse.Namespace) -> int:
    """Runs ``fastnn train``; returns the exit status."""
    started = time.time()
    wall_start = time.perf_counter()
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    if args.resume:
        config, ck = _resumed_config(args)
        if args.data_dir:
            config["data_dir"] = args.data_dir
        run_dir = Path(args.out) if args.out else Path(args.resume).parent
    else:
        config, ck = _config_from_args(args), None
        run_dir = Path(args.out) if args.out else _new_run_dir(config)
    replaced = _check_run_dir(run_dir, args)
    check_model(config, recipes.dataset_recipe(config["dataset"]).input_shape)  # before any download
    require_device(args.device)

    t0 = time.perf_counter()
    train_set, test_set = load_data(config, args.download)
    data_seconds = time.perf_counter() - t0
    n, c, h, w = train_set.x.shape
    if not ck:
        if h != w:
            raise CLIError(f"{config['dataset']} images are {h}x{w}; the models expect square images")
        config.update(in_channels=c, input_size=h, num_classes=train_set.num_classes, classes=list(train_set.classes),
                      normalize_mean=train_set.x.mean(axis=(0, 2, 3)).tolist(),
                      normalize_std=train_set.x.std(axis=(0, 2, 3)).tolist())
    if ck and config.get("threads") != fastnn.get_num_threads():
        print_lines(args.quiet, f"note: the run was trained with {config.get('threads')} threads, now "
                                f"{fastnn.get_num_threads()}: results may differ in the last bits from an unbroken run")
    config["threads"] = fastnn.get_num_threads()

    fastnn.manual_seed(config["seed"])
    model = build_model(config)
    opt = recipes.build_optimizer(config["optimizer"], model.parameters(), config["lr"], config["weight_decay"])
    train_loader, test_loader = _loaders(config, train_set, test_set, args.device)
    schedule = recipes.build_schedule(config["schedule"], opt, config["epochs"], len(train_loader))
    for name in replaced:  # --overwrite: no file of the old run may be mistaken for the new one's
        (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / CHECKPOINT_NAME
    n_params = sum(p.size for p in model.parameters())
    print_lines(args.quiet, f"{'resuming' if ck else 'training'} {config['model']} ({n_params:,} parameters) on "
                            f"{config['dataset']} ({n:,} training / {len(test_set):,} test images of {c}x{h}x{w}): "
                            f"{config['epochs']} epochs, batch {config['batch_size']}, {config['optimizer']} lr "
                            f"{config['lr']:g}, {config['schedule']} schedule, "
                            + (f"{config['threads']} threads" if args.device == "cpu" else device_text(args.device)))

    resume_from = Path(args.resume) if ck else None
    t0 = time.perf_counter()
    try:
        history = fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), opt, train_loader, config["epochs"],
                                   val_loader=test_loader, scheduler=schedule, checkpoint=checkpoint,
                                   checkpoint_extra={"config": config}, resume_from=resume_from, quiet=args.quiet,
                                   device=args.device)
    except NonFiniteLossError as e:
        raise CLIError(_non_finite_text(e, config)) from None

    result = fastnn.train.evaluate(model, test_loader, nn.SoftmaxCrossEntropy(), k=3, device=args.device)
    timing = {"data_seconds": data_seconds, "fit_seconds": time.perf_counter() - t0,
              "train_seconds": sum(r["train_seconds"] for r in history.records),
              "total_seconds": time.perf_counter() - wall_start}
    files = _write_run_folder(run_dir, config, history.records, result, timing, {
        "command": "fastnn train " + " ".join(args.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "resumed_from": str(resume_from) if resume_from else None,
        "device": args.device,
    })
    lines = [f"test accuracy {100 * result['accuracy']:.2f}%   top-3 {100 * result['top_k_accuracy']:.2f}%   "
             f"({result['images']:,} test images, {timing['total_seconds']:.1f} s in all)"]
    if len(config["classes"]) <= 20:
        lines.append(report.format_confusion(result["confusion_matrix"], config["classes"]))
    else:
        lines.append("(confusion matrix: see report.json" + (" and confusion.png)" if "confusion.png" in files else ")"))
    lines.append(f"run folder: {run_dir}  ({', '.join([CHECKPOINT_NAME, *files])})")
    print_lines(args.quiet, *lines)
    return 0


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
                      about: dict) -> list[str]:
    """Writes report.json and, with matplotlib, curves.png and confusion.png; returns their names."""
    confusion = result["confusion_matrix"]
    title = f"{config['model']} on {config['dataset']}"
    files = ["report.json"]
    if report.plot_curves(records, run_dir / "curves.png", title):
        files.append("curves.png")
    if report.plot_confusion(confusion, config["classes"], run_dir / "confusion.png",
                             f"{title}: test accuracy {100 * result['accuracy']:.1f}%"):
        files.append("confusion.png")
    rates = [r["images_per_second"] for r in records]
    report.write_json(run_dir / "report.json", {
        **about,
        "config": config,
        "epochs": records,
        "final": {"test_accuracy": result["accuracy"], "test_top3_accuracy": result["top_k_accuracy"],
                  "test_loss": result["loss"], "test_images": result["images"], "classes": config["classes"],
                  "confusion_matrix": confusion, "per_class": metrics.precision_recall_f1(confusion)},
        "timing": {**timing, "mean_images_per_second": float(np.mean(rates)) if rates else None},
        "build": fastnn.build_info(),
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()},
    })
    return files
