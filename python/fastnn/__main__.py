"""The command line: ``python -m fastnn train | eval | info | bench`` (also installed as ``fastnn``).

``train`` with no arguments trains the default model on scikit-learn's bundled digits and
writes a run folder (checkpoint, report.json, curves.png, confusion.png). Errors a user can
cause (arguments, data folders, verification, checkpoints) print one line on stderr and exit
with status 1 (2 for bad arguments), without a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import fastnn
from fastnn import data, metrics, nn, optim, report
from fastnn.checkpoint import CheckpointError
from fastnn.data.files import DatasetError
from fastnn.train import NonFiniteLossError

CHECKPOINT_NAME = "checkpoint.fastnn"


class CLIError(Exception):
    """A user error: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (the usage stays behind ``--help``)."""

    def error(self, message: str):  # type: ignore[override]
        raise CLIError(f"{self.prog}: {message} (see {self.prog} --help)", code=2)


# Datasets --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetSpec:
    load: Callable[[Path, bool], tuple[data.ArrayDataset, data.ArrayDataset]]
    default_dir: str
    epochs: int
    batch_size: int
    augment: Callable[[], list]


def _digits(root: Path, download: bool):
    try:
        return data.digits(seed=0)  # a fixed split, so test accuracies of runs compare
    except ImportError as e:
        raise CLIError(f"the digits dataset ships inside scikit-learn: pip install 'fastnn[digits]' ({e})") from e


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(_digits, "", 30, 64, lambda: [data.RandomCrop(8, padding=1)]),
    "mnist": DatasetSpec(lambda root, dl: data.mnist(root, "digits", download=dl), "data/mnist", 10, 128,
                         lambda: [data.RandomCrop(28, padding=2)]),
    "fashion-mnist": DatasetSpec(lambda root, dl: data.mnist(root, "fashion", download=dl), "data/fashion-mnist", 10,
                                 128, lambda: [data.RandomCrop(28, padding=2), data.RandomHorizontalFlip()]),
    "cifar10": DatasetSpec(lambda root, dl: data.cifar10(root, download=dl), "data/cifar10", 30, 128,
                           lambda: [data.RandomCrop(32, padding=4), data.RandomHorizontalFlip()]),
    "cifar100": DatasetSpec(lambda root, dl: data.cifar100(root, download=dl), "data/cifar100", 30, 128,
                            lambda: [data.RandomCrop(32, padding=4), data.RandomHorizontalFlip()]),
}

# --model name -> (function in fastnn.models, leading positional arguments)
MODELS: dict[str, tuple[str, tuple]] = {
    "mlp": ("mlp", ()),
    "lenet5": ("lenet5", ()),
    "simple_cnn": ("simple_cnn", ()),
    "resnet20": ("resnet", (20,)),
}

OPTIMIZER_DEFAULTS = {"sgd": dict(lr=0.05, weight_decay=5e-4), "adam": dict(lr=1e-3, weight_decay=0.0),
                      "adamw": dict(lr=1e-3, weight_decay=0.05)}
SCHEDULES = ("cosine", "onecycle", "step", "none")

# Options that define a run; on --resume they come from the checkpoint and may not change.
_RUN_DEFINING = ("dataset", "model", "optimizer", "batch_size", "lr", "weight_decay", "schedule", "augment", "seed")


def _load_data(config: dict, download: bool):
    spec = DATASETS[config["dataset"]]
    root = Path(config["data_dir"] or spec.default_dir)
    return spec.load(root, download)


def _model_builder(name: str) -> Callable[[dict], nn.Module]:
    """The constructor of ``--model name``, found in fastnn.models (checked before any data is
    loaded, so a missing model fails fast)."""
    import fastnn.models

    function_name, leading = MODELS[name]
    build = getattr(fastnn.models, function_name, None)
    if build is None:
        raise CLIError(f"model '{name}' is not available in this fastnn (fastnn.models.{function_name} is missing)")
    return lambda config: build(*leading, in_channels=config["in_channels"], num_classes=config["num_classes"],
                                input_size=config["input_size"])


def _build_optimizer(config: dict, model: nn.Module) -> optim.Optimizer:
    params = list(model.parameters())
    if config["optimizer"] == "sgd":
        return optim.SGD(params, lr=config["lr"], momentum=0.9, nesterov=True, weight_decay=config["weight_decay"])
    cls = optim.Adam if config["optimizer"] == "adam" else optim.AdamW
    return cls(params, lr=config["lr"], weight_decay=config["weight_decay"])


def _build_schedule(config: dict, opt: optim.Optimizer, steps_per_epoch: int):
    """A per-batch schedule over the whole run (None for ``none``)."""
    total = config["epochs"] * steps_per_epoch
    kind = config["schedule"]
    if kind == "cosine":
        return optim.lr.CosineAnnealingLR(opt, T_max=total, warmup_steps=total // 20)
    if kind == "onecycle":
        return optim.lr.OneCycleLR(opt, max_lr=config["lr"], total_steps=max(total, 2))
    if kind == "step":
        return optim.lr.StepLR(opt, step_size=max(1, config["epochs"] // 3) * steps_per_epoch, gamma=0.1)
    return None


def _loaders(config: dict, train_set, test_set, device: str) -> tuple[data.DataLoader, data.DataLoader]:
    normalize = data.Normalize(config["normalize_mean"], config["normalize_std"])
    augment = DATASETS[config["dataset"]].augment() if config["augment"] else []
    train_loader = data.DataLoader(train_set, config["batch_size"], shuffle=True, seed=config["seed"],
                                   transform=data.Compose(augment + [normalize]), device=device)
    test_loader = data.DataLoader(test_set, max(config["batch_size"], 256), transform=normalize, device=device)
    return train_loader, test_loader


def _device(text: str) -> str:
    """--device: "cpu", "cuda" or "cuda:<index>"."""
    from fastnn._device import parse_device

    try:
        parse_device(text, "--device")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:<index>, got {text!r}") from None
    return text


def _require_device(device: str) -> None:
    """CLIError (one line) when --device asks for a GPU that cannot be used here; checked before
    any data is loaded."""
    if device.startswith("cuda"):
        from fastnn import cuda

        if not cuda.is_available():
            raise CLIError(f"--device {device}: the CUDA backend is not available: {cuda.unavailable_reason()}")


def _device_text(device: str) -> str:
    if not device.startswith("cuda"):
        return "CPU"
    from fastnn import cuda

    index = int(device[5:]) if ":" in device else None
    gpus = cuda.info()["devices"]
    chosen = next((g for g in gpus if g["index"] == index), None) if index is not None else None
    if chosen is None and gpus:
        import cupy

        chosen = next((g for g in gpus if g["index"] == cupy.cuda.Device().id), gpus[0])
    return f"GPU {chosen['name']}" if chosen else "GPU"


# train -----------------------------------------------------------------------------------------

def _new_run_dir(config: dict) -> Path:
    base = Path("runs") / f"{config['dataset']}-{config['model']}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    spec = DATASETS[args.dataset or "digits"]
    opt = args.optimizer or "sgd"
    return {
        "dataset": args.dataset or "digits",
        "data_dir": args.data_dir,
        "model": args.model or "simple_cnn",
        "epochs": args.epochs or spec.epochs,
        "batch_size": args.batch_size or spec.batch_size,
        "optimizer": opt,
        "lr": args.lr if args.lr is not None else OPTIMIZER_DEFAULTS[opt]["lr"],
        "weight_decay": args.weight_decay if args.weight_decay is not None else OPTIMIZER_DEFAULTS[opt]["weight_decay"],
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
    for key in _RUN_DEFINING:
        given = getattr(args, key)
        if given not in (None, False) and given != config[key]:
            raise CLIError(f"--{key.replace('_', '-')} {given} differs from the resumed run's {config[key]}; "
                           "a resumed run keeps its settings (start a new run to change them)")
    if args.epochs is not None and args.epochs != config["epochs"]:
        raise CLIError(f"--epochs {args.epochs} differs from the resumed run's {config['epochs']} (its schedule "
                       "is laid out over that many); start a new run to train longer")
    return dict(config), ck


def _print(quiet: bool, *lines: str) -> None:
    if not quiet:
        print(*lines, sep="\n", flush=True)


def cmd_train(args: argparse.Namespace) -> int:
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
    build_model = _model_builder(config["model"])
    _require_device(args.device)

    t0 = time.perf_counter()
    train_set, test_set = _load_data(config, args.download)
    data_seconds = time.perf_counter() - t0
    n, c, h, w = train_set.x.shape
    if not ck:
        if h != w:
            raise CLIError(f"{config['dataset']} images are {h}x{w}; the models expect square images")
        config.update(in_channels=c, input_size=h, num_classes=train_set.num_classes, classes=list(train_set.classes),
                      normalize_mean=train_set.x.mean(axis=(0, 2, 3)).tolist(),
                      normalize_std=train_set.x.std(axis=(0, 2, 3)).tolist())
    if ck and config.get("threads") != fastnn.get_num_threads():
        _print(args.quiet, f"note: the run was trained with {config.get('threads')} threads, now "
                           f"{fastnn.get_num_threads()}: results may differ in the last bits from an unbroken run")
    config["threads"] = fastnn.get_num_threads()

    fastnn.manual_seed(config["seed"])
    model = build_model(config)
    opt = _build_optimizer(config, model)
    train_loader, test_loader = _loaders(config, train_set, test_set, args.device)
    schedule = _build_schedule(config, opt, len(train_loader))
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / CHECKPOINT_NAME
    n_params = sum(p.size for p in model.parameters())
    _print(args.quiet, f"{'resuming' if ck else 'training'} {config['model']} ({n_params:,} parameters) on "
                       f"{config['dataset']} ({n:,} training / {len(test_set):,} test images of {c}x{h}x{w}): "
                       f"{config['epochs']} epochs, batch {config['batch_size']}, {config['optimizer']} lr "
                       f"{config['lr']:g}, {config['schedule']} schedule, "
                       + (f"{config['threads']} threads" if args.device == "cpu" else _device_text(args.device)))

    resume_from = Path(args.resume) if ck else None
    t0 = time.perf_counter()
    history = fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), opt, train_loader, config["epochs"],
                               val_loader=test_loader, scheduler=schedule, checkpoint=checkpoint,
                               checkpoint_extra={"config": config}, resume_from=resume_from, quiet=args.quiet,
                               device=args.device)

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
    _print(args.quiet, *lines)
    return 0


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


# eval ------------------------------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> int:
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    _require_device(args.device)
    ck = fastnn.load(args.checkpoint)
    config = ck.get("config")
    if not isinstance(config, dict):
        raise CLIError(f"{args.checkpoint} holds no run configuration (it was not written by `fastnn train`)")
    config = dict(config, dataset=args.dataset or config["dataset"], data_dir=args.data_dir)
    _, test_set = _load_data(config, args.download)
    shape = (config["in_channels"], config["input_size"], config["input_size"])
    if test_set.x.shape[1:] != shape or test_set.num_classes != config["num_classes"]:
        raise CLIError(f"{config['dataset']} has {test_set.num_classes} classes of {test_set.x.shape[1:]} images; "
                       f"the checkpoint's model takes {shape} and predicts {config['num_classes']}")
    model = _model_builder(config["model"])(config)
    fastnn.restore(ck, model, rng=False)
    loader = data.DataLoader(test_set, args.batch_size,
                             transform=data.Normalize(config["normalize_mean"], config["normalize_std"]),
                             device=args.device)
    result = fastnn.train.evaluate(model, loader, nn.SoftmaxCrossEntropy(), k=args.top_k, device=args.device)
    print(f"{config['model']} on {config['dataset']} test set ({result['images']:,} images): "
          f"accuracy {100 * result['accuracy']:.2f}%   top-{args.top_k} {100 * result['top_k_accuracy']:.2f}%   "
          f"loss {result['loss']:.4f}")
    if test_set.num_classes <= 20:
        print(report.format_confusion(result["confusion_matrix"], test_set.classes))
    if args.json:
        per_class = metrics.precision_recall_f1(result["confusion_matrix"])
        report.write_json(Path(args.json), {"checkpoint": str(args.checkpoint), "dataset": config["dataset"],
                                            **{k: v for k, v in result.items() if k != "seconds"},
                                            "per_class": per_class})
    return 0


# info, bench -----------------------------------------------------------------------------------

def _arch_text(arch: str) -> str:
    """A CMAKE_CUDA_ARCHITECTURES entry in words: "90-real" -> sm_90 (machine code), "90" ->
    sm_90 + PTX (machine code and PTX the driver can compile for newer GPUs), "90-virtual" ->
    PTX only."""
    base, _, kind = arch.partition("-")
    if not base.isdigit():
        return arch  # "native", "all"...
    return {"real": f"sm_{base}", "virtual": f"PTX {base}"}.get(kind, f"sm_{base} + PTX")


def _cuda_rows() -> list[tuple[str, str]]:
    """What `info` says about the GPU side: the CUDA backend (built or not, for which GPU
    architectures) and each GPU (name, compute capability, memory), or why there is none."""
    from fastnn import cuda

    try:
        facts = cuda.info()
    except Exception as e:  # a driver problem is information here, not a crash
        return [("CUDA backend", f"unusable ({e})")]
    if not facts["built"]:
        return [("CUDA backend", "not built (a CPU-only install; docs/GPU.md: FASTNN_CUDA=ON pip install .)")]
    archs = ", ".join(_arch_text(a) for a in str(facts["architectures"]).replace(";", " ").split())
    driver = f"driver {facts['driver_version']}" if facts.get("driver_version") else "no driver"
    rows = [("CUDA backend", f"built for {archs} (CUDA runtime {facts['runtime_version']}, {driver})")]
    for gpu in facts["devices"]:
        major, minor = gpu["compute_capability"]
        rows.append((f"GPU {gpu['index']}", f"{gpu['name']}, compute capability {major}.{minor}, "
                                            f"{gpu['total_memory'] / 2**30:.1f} GiB, {gpu['multiprocessors']} SMs"))
    if not facts["available"]:
        rows.append(("GPU", f"not usable: {facts['reason']}" if facts["devices"] else f"none ({facts['reason']})"))
    return rows


def cmd_info(args: argparse.Namespace) -> int:
    info = fastnn.build_info()
    extras = {name: importlib.util.find_spec(module) is not None
              for name, module in (("scikit-learn", "sklearn"), ("tqdm", "tqdm"), ("matplotlib", "matplotlib"))}
    rows = [("fastnn", info.get("version", fastnn.__version__)),
            ("compiler", f"{info.get('compiler')} ({info.get('build_type')}), OpenMP {info.get('openmp')}"),
            ("SIMD", f"{info.get('simd')} in use (CPU supports {info.get('simd_detected')})"),
            ("GEMM kernel", f"{info.get('gemm_kernel_float32')} (float32)"),
            ("threads", str(info.get("threads"))),
            *_cuda_rows(),
            ("python", f"{platform.python_version()}, NumPy {np.__version__}"),
            ("extras", ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in extras.items()))]
    if args.json:
        print(json.dumps({**info, "extras": extras}, indent=2, default=str))  # info["cuda"]: fastnn.cuda.info()
    else:
        for key, value in rows:
            print(f"{key + ':':<14}{value}")
    return 0


def cmd_bench(argv: list[str]) -> int:
    """Hands every argument after ``bench`` to ``fastnn.bench.main`` untouched."""
    try:
        bench = importlib.import_module("fastnn.bench")
    except ModuleNotFoundError as e:
        if e.name == "fastnn.bench":
            raise CLIError("the benchmark harness (fastnn.bench) is not part of this fastnn build") from e
        raise CLIError(f"fastnn.bench needs the module {e.name}: pip install 'fastnn[bench]'") from e
    return int(bench.main(argv) or 0)


# parser ----------------------------------------------------------------------------------------

def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastnn", description="Train and evaluate image classifiers on fastnn's C++ kernels.")
    parser.add_argument("--version", action="version", version=f"fastnn {fastnn.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,info,bench}", parser_class=_Parser)

    train = sub.add_parser("train", help="train a model and write a run folder",
                           description="Train a classifier; writes runs/<name>/ (checkpoint, report.json, pictures).")
    train.add_argument("--dataset", choices=list(DATASETS), help="default: digits (bundled with scikit-learn)")
    train.add_argument("--data-dir", help="folder with the dataset files (default: data/<dataset>)")
    train.add_argument("--download", action="store_true", help="fetch missing dataset files (checksum-verified)")
    train.add_argument("--model", choices=list(MODELS), help="default: simple_cnn")
    train.add_argument("--epochs", type=_int_at_least(1), help="default: per dataset (digits 30, MNIST 10, CIFAR 30)")
    train.add_argument("--batch-size", type=_int_at_least(1), help="default: 64 for digits, else 128")
    train.add_argument("--optimizer", choices=list(OPTIMIZER_DEFAULTS), help="default: sgd (momentum 0.9, Nesterov)")
    train.add_argument("--lr", type=_positive_float, help="peak learning rate (default: sgd 0.05, adam/adamw 0.001)")
    train.add_argument("--weight-decay", type=_non_negative_float, help="default: sgd 5e-4, adam 0, adamw 0.05")
    train.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default: cosine with warm-up)")
    train.add_argument("--augment", action="store_true", help="random crops (and flips where they make sense)")
    train.add_argument("--threads", type=_int_at_least(1), help="CPU threads (default: all cores)")
    train.add_argument("--device", type=_device, default="cpu",
                       help="cpu (default), cuda or cuda:<index>: where the whole training loop runs")
    train.add_argument("--seed", type=_int_at_least(0), help="seed of initialisation, order and augmentation (default 0)")
    train.add_argument("--out", help="run folder (default: a new runs/<dataset>-<model>-<time>/)")
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    train.add_argument("--quiet", action="store_true", help="print nothing")
    train.set_defaults(handler=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a saved model on a test set",
                        description="Accuracy, top-k accuracy and confusion matrix of a checkpoint on a test set.")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", choices=list(DATASETS), help="default: the dataset the model was trained on")
    ev.add_argument("--data-dir")
    ev.add_argument("--download", action="store_true")
    ev.add_argument("--batch-size", type=_int_at_least(1), default=256)
    ev.add_argument("--top-k", type=_int_at_least(1), default=3)
    ev.add_argument("--threads", type=_int_at_least(1))
    ev.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda or cuda:<index>")
    ev.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ev.set_defaults(handler=cmd_eval)

    info = sub.add_parser("info", help="version, compiler, SIMD level, threads, CUDA backend and GPUs")
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=cmd_info)

    # Listed for --help only: main() hands `bench ...` to fastnn.bench before argparse sees it.
    sub.add_parser("bench", help="kernel micro-benchmarks (fastnn.bench; `fastnn bench --help` for its options)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["bench"]:
            return cmd_bench(argv[1:])
        args = build_parser().parse_args(argv)
        if getattr(args, "handler", None) is None:
            raise CLIError("fastnn: choose a command: train, eval, info or bench (see fastnn --help)", code=2)
        args.argv = argv[1:]
        return args.handler(args)
    except CLIError as e:
        return _fail(str(e), e.code)
    except (DatasetError, CheckpointError, NonFiniteLossError, FileNotFoundError, PermissionError) as e:
        return _fail(str(e), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int) -> int:
    print("fastnn: error: " + " ".join(message.split()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
