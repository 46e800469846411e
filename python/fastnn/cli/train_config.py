"""``fastnn train``'s settings: a new run's config from the options and defaults, a resumed
run's from its checkpoint (the options that define a run may not change), ``--init-from``'s
from the checkpoint's run, and the checks of options that only make sense together."""

from __future__ import annotations

import argparse
from typing import Any

import fastnn
from fastnn import recipes
from fastnn.cli import tasks
from fastnn.cli.common import CLIError

# Options that define a run; on --resume they come from the checkpoint and may not change.
# Each with the value a checkpoint written before the option existed stands for.
RUN_DEFINING: dict[str, Any] = {
    "dataset": None, "model": None, "optimizer": None, "batch_size": None, "lr": None, "weight_decay": None,
    "schedule": None, "step_size": None, "gamma": None, "augment": None, "seed": None, "val_fraction": 0.0,
    "early_stop": None, "monitor": None, "image_size": None, "channels": None, "task": "multiclass",
    "positive": None, "attributes": None, "eval_classes": None, "embedding_dim": None, "loss": None, "scale": None,
    "margin": None,
}


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new run's settings from the options, the defaults, and (with --init-from) the model,
    dataset and data folder of the checkpoint's run ``base``."""
    base = base or {}
    dataset = args.dataset or base.get("dataset") or "digits"
    spec = recipes.dataset_recipe(dataset)
    opt = args.optimizer or "sgd"
    defaults = recipes.optimizer_defaults(opt)
    return {
        "dataset": dataset,
        "data_dir": args.data_dir or (base.get("data_dir") if dataset == base.get("dataset") else None),
        "model": args.model or base.get("model") or "simple_cnn",
        "epochs": args.epochs or spec.epochs,
        "batch_size": args.batch_size or spec.batch_size,
        "optimizer": opt,
        "lr": args.lr if args.lr is not None else defaults["lr"],
        "weight_decay": args.weight_decay if args.weight_decay is not None else defaults["weight_decay"],
        "schedule": args.schedule or "cosine",
        "step_size": args.step_size,
        "gamma": args.gamma,
        "augment": spec.augment if args.augment is None else bool(args.augment),
        "seed": args.seed if args.seed is not None else 0,
        "val_fraction": args.val_fraction if args.val_fraction is not None else 0.1,
        "early_stop": args.early_stop,
        "monitor": args.monitor,
        **folder_config(args, dataset, base),
        **tasks.config_from_args(args, base),
    }


def folder_config(args: argparse.Namespace, dataset: str, base: dict[str, Any]) -> dict[str, Any]:
    """--image-size and --channels: a folder run's image size (the default made explicit, so
    eval, --resume and predict see the same images) and channels; CLIError for other datasets."""
    if dataset != "folder":
        for flag in ("image_size", "channels"):
            if getattr(args, flag) is not None:
                raise CLIError(f"--{flag.replace('_', '-')} applies to --dataset folder only, not {dataset}")
        return {}
    same = base.get("dataset") == "folder"
    return {"image_size": args.image_size or (base.get("image_size") if same else None) or recipes.FOLDER_IMAGE_SIZE,
            "channels": args.channels or (base.get("channels") if same else None)}


def check_options(config: dict[str, Any]) -> None:
    """CLIError naming the flags when options that only make sense together are not."""
    tasks.task_for(config).check(config)
    if config["schedule"] != "step":
        for key in ("step_size", "gamma"):
            if config.get(key) is not None:
                raise CLIError(f"--{key.replace('_', '-')} applies to --schedule step only "
                               f"(this run's schedule is {config['schedule']})")
    if not config.get("val_fraction"):
        for key in ("early_stop", "monitor"):
            if config.get(key) is not None:
                raise CLIError(f"--{key.replace('_', '-')} needs a validation set (--val-fraction > 0): picking epochs "
                               "by the test set would tune the model to it")


def resumed_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The saved run's config (checked against explicitly given options) and the checkpoint."""
    if args.init_from:
        raise CLIError("--resume continues a run with its saved optimiser state; --init-from starts a new run from a "
                       "checkpoint's weights: use one of them")
    ck = fastnn.load(args.resume)
    config = ck.get("config")
    if not isinstance(config, dict):
        raise CLIError(f"{args.resume} holds no run configuration (it was not written by `fastnn train`)")
    config = {**{k: v for k, v in RUN_DEFINING.items() if k not in config}, **config}
    for key in RUN_DEFINING:
        given = getattr(args, key)
        saved = config[key] if key != "monitor" else config[key] or "val_loss"  # None: the default
        # An option left out is None (or a store_true flag's False); --no-augment's False is a choice.
        left_out = given is None or (given is False and key != "augment")
        if not left_out and given != saved:
            raise CLIError(f"--{key.replace('_', '-')} {given} differs from the resumed run's {saved}; "
                           "a resumed run keeps its settings (start a new run to change them, or --init-from "
                           "its checkpoint to start one from its weights)")
    if args.epochs is not None and args.epochs != config["epochs"]:
        raise CLIError(f"--epochs {args.epochs} differs from the resumed run's {config['epochs']} (its schedule "
                       f"is laid out over that many); to train longer, start a new run from its weights: "
                       f"--init-from {args.resume} --epochs {args.epochs}")
    return dict(config), ck


def init_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """--init-from: a new run's config, with the model, dataset and data folder defaulting to
    the checkpoint's run, and the checkpoint."""
    ck = fastnn.load(args.init_from)
    base = ck.get("config")
    if not isinstance(base, dict):
        raise CLIError(f"--init-from {args.init_from} holds no run configuration (it was not written by "
                       "`fastnn train`)")
    return config_from_args(args, base), ck


def schedule_options(config: dict[str, Any]) -> dict[str, Any]:
    """--step-size and --gamma as build_schedule's keyword arguments (only those given)."""
    options = {"step_size": config.get("step_size")}
    if config.get("gamma") is not None:
        options["gamma"] = config["gamma"]
    return options if config["schedule"] == "step" else {}


def take_init_config(config: dict[str, Any], base: dict[str, Any], path: str) -> None:
    """--init-from: the new run's images and classes must be the checkpoint's, and it normalises
    its inputs as the checkpoint's run did (the weights were trained on those inputs)."""
    for key, what in (("in_channels", "image channels"), ("input_size", "image size"), ("num_classes", "classes")):
        if base.get(key) is not None and base[key] != config[key]:
            raise CLIError(f"--init-from {path}: its model was trained on {base[key]} {what}, --dataset "
                           f"{config['dataset']} has {config[key]}")
    for key in ("normalize_mean", "normalize_std"):
        if base.get(key) is not None:
            config[key] = base[key]
    config["init_from"] = str(path)
