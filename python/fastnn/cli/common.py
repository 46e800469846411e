"""What the commands share: the one-line error (:class:`CLIError`), the argument parser class and
the argument types, the ``--device`` checks, and loading a run's data and model by name through
:mod:`fastnn.recipes`."""

from __future__ import annotations

import argparse
from typing import Callable, NoReturn

from fastnn import data, nn, recipes

CHECKPOINT_NAME = "checkpoint.fastnn"


class CLIError(Exception):
    """A user error: printed as one line, exit status ``code``."""

    kind = "error"

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(CLIError):
    """Ctrl-C: printed as ``fastnn: interrupted: <what was saved, how to go on>``, status 130."""

    kind = "interrupted"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=130)


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (the usage stays behind ``--help``)."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{self.prog}: {message} (see {self.prog} --help)", code=2)


# Argument types --------------------------------------------------------------------------------

def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number >= 0 and < 1."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be >= 0 and < 1, got {text}")
    return value


def unit_float(text: str) -> float:
    """An argparse type: a number > 0 and <= 1."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 1, got {text}")
    return value


def device(text: str) -> str:
    """An argparse type for --device: "cpu", "cuda" or "cuda:<index>"."""
    from fastnn._device import parse_device

    try:
        parse_device(text, "--device")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:<index>, got {text!r}") from None
    return text


# Devices ---------------------------------------------------------------------------------------

def require_device(device: str) -> None:
    """CLIError (one line) when --device asks for a GPU that cannot be used here; checked before
    any data is loaded."""
    if device.startswith("cuda"):
        from fastnn import cuda

        if not cuda.is_available():
            raise CLIError(f"--device {device}: the CUDA backend is not available: {cuda.unavailable_reason()}")


def device_text(device: str) -> str:
    """ "CPU", or "GPU <name>" of the GPU --device runs on."""
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


# Data and models -------------------------------------------------------------------------------

def folder_options(config: dict) -> dict:
    """The ``image_size`` and ``channels`` keyword arguments of a ``--dataset folder`` run for
    :func:`fastnn.recipes.dataset_recipe` and ``build_dataset``; empty for the other datasets."""
    if config["dataset"] != "folder":
        return {}
    return {"image_size": config.get("image_size"), "channels": config.get("channels")}


def load_data(config: dict, download: bool) -> tuple[data.ArrayDataset, data.ArrayDataset]:
    """(train, test) of the run's ``--dataset`` from its ``--data-dir``. Missing files are told
    in flags (``--download``, ``--data-dir``); files skipped by an image folder are printed as
    ``fastnn: warning:`` lines on stderr."""
    import re
    import sys
    import warnings

    if config["dataset"] == "folder" and not config.get("data_dir"):
        raise CLIError("--dataset folder needs --data-dir DIR: a folder with one sub-folder of images per class")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", data.ImageFolderWarning)
            sets = recipes.build_dataset(config["dataset"], config["data_dir"], download, **folder_options(config))
    except data.DatasetNotFoundError as e:
        found = re.sub(r" \(pass download=True to fetch (it|them)\)", "", str(e))  # advice for Python callers
        fix = "point --data-dir at the folder that holds the files"
        raise CLIError(f"{found}; {fix}" if config["dataset"] == "folder" else f"{found}; add --download to fetch "
                       f"the files, or {fix}") from None
    except ImportError as e:
        if config["dataset"] == "folder":
            raise CLIError(str(e)) from None
        if config["dataset"] != "digits":
            raise
        raise CLIError(f"the digits dataset ships inside scikit-learn: pip install 'fastnn[digits]' ({e})") from e
    for warning in caught:
        if issubclass(warning.category, data.ImageFolderWarning):
            print(f"fastnn: warning: {warning.message}", file=sys.stderr)
        else:  # not ours to reword: shown as Python would have
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return sets


def image_shape(config: dict) -> tuple[int, int, int]:
    """(channels, height, width) of the run's images, from its saved configuration."""
    return config["in_channels"], config["input_size"], config["input_size"]


def check_model(config: dict, shape: tuple[int, int, int]) -> None:
    """CLIError naming ``--model`` and ``--dataset`` (and the models that do fit) unless the
    run's model can be built for images of ``shape``."""
    try:
        recipes.check_model(config["model"], shape)
    except recipes.RecipeError as e:
        raise CLIError(f"--model {config['model']} does not fit --dataset {config['dataset']}: {e}") from None


def build_model(config: dict) -> nn.Module:
    """The run's freshly initialised ``--model`` for its images and classes; CLIError (see
    :func:`check_model`) when it cannot be built for them."""
    check_model(config, image_shape(config))
    try:
        return recipes.build_model(config["model"], image_shape(config), config["num_classes"])
    except recipes.RecipeError as e:
        raise CLIError(f"--model {config['model']} does not fit --dataset {config['dataset']}: {e}") from None


def print_lines(quiet: bool, *lines: str) -> None:
    """Prints ``lines`` unless ``--quiet``."""
    if not quiet:
        print(*lines, sep="\n", flush=True)


def fail(message: str, code: int, kind: str = "error") -> int:
    """Prints ``fastnn: <kind>: <message>`` on one line of stderr; returns ``code``."""
    import sys

    print(f"fastnn: {kind}: " + " ".join(message.split()), file=sys.stderr)
    return code


__all__ = ["CHECKPOINT_NAME", "CLIError", "Interrupted", "Parser", "build_model", "check_model", "device", "device_text", "fail", "fraction",
           "folder_options", "image_shape", "int_at_least", "load_data", "non_negative_float", "positive_float",
           "print_lines", "require_device", "unit_float"]
