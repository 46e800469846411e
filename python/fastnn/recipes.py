"""Named recipes: the datasets, models, optimisers and learning-rate schedules that
``python -m fastnn train`` builds from its ``--dataset``, ``--model``, ``--optimizer`` and
``--schedule`` names, for scripts to build the same way.

    from fastnn import data, recipes

    train_set, test_set = recipes.build_dataset("digits")
    model = recipes.build_model("simple_cnn", train_set.x.shape[1:], train_set.num_classes)
    opt = recipes.build_optimizer("sgd", model.parameters())
    loader = data.DataLoader(train_set, 64, shuffle=True)
    schedule = recipes.build_schedule("cosine", opt, epochs=30, steps_per_epoch=len(loader))

The known names are :data:`DATASET_NAMES`, :data:`MODEL_NAMES`, :data:`OPTIMIZER_NAMES` and
:data:`SCHEDULE_NAMES`. A name the recipes do not know, or a model that cannot take the given
images, raises :class:`RecipeError` (a ValueError) with one line that says what would work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from fastnn import data, nn, optim
from fastnn.data.transforms import Transform

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "folder")
"""The datasets :func:`build_dataset` knows (``--dataset``); ``"folder"`` is a folder of your own
images, one sub-folder per class (:func:`fastnn.data.image_folder`)."""

FOLDER_IMAGE_SIZE = 32
"""The side images of the ``"folder"`` dataset are resized to unless ``image_size`` is given."""

FOLDER_TEST_FRACTION = 0.2
"""The share of a ``"folder"`` dataset without train/ and test/ folders held out as its test set
(stratified by class, seed 0, so the test sets of different runs are the same images)."""

MODEL_NAMES: tuple[str, ...] = ("mlp", "lenet5", "simple_cnn", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
"""The models :func:`build_model` knows (``--model``)."""

OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adam", "adamw")
"""The optimisers :func:`build_optimizer` knows (``--optimizer``)."""

SCHEDULE_NAMES: tuple[str, ...] = ("cosine", "onecycle", "step", "none")
"""The learning-rate schedules :func:`build_schedule` knows (``--schedule``)."""


class RecipeError(ValueError):
    """A recipe name that is not known, a model that cannot take the given images, or a model
    builder missing from this fastnn. The message is one line and says what would work."""


def _unknown(kind: str, name: object, known: Sequence[str]) -> RecipeError:
    return RecipeError(f"unknown {kind} {name!r}; the known ones are {', '.join(known)}")


# Datasets --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetRecipe:
    """What ``python -m fastnn train --dataset <name>`` assumes about a dataset.

    ``input_shape`` is one image as (channels, height, width) and ``num_classes`` the number of
    labels; ``default_dir`` is the folder the files are looked for in when no ``data_dir`` is
    given (None for the digits, which ship inside scikit-learn); ``epochs`` and ``batch_size``
    are the CLI's defaults; ``crop_padding``, ``flip`` and ``affine`` describe the augmentation
    (see :meth:`augmentation`), and ``augment`` says whether the CLI augments by default
    (``--augment`` / ``--no-augment`` override it).
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    default_dir: str | None
    epochs: int
    batch_size: int
    crop_padding: int
    flip: bool
    affine: tuple[float, float, float] | None = None
    augment: bool = False

    def augmentation(self) -> list[Transform]:
        """Fresh augmentation transforms: a random crop of the image size from the image padded
        by ``crop_padding`` pixels or, where ``affine`` is set, a :class:`fastnn.data.RandomAffine`
        of those (degrees, translate, scale) instead; then (where ``flip``) a random horizontal
        flip. Returned as a list so a normalisation can be appended before
        :class:`fastnn.data.Compose`."""
        transforms: list[Transform] = [data.RandomAffine(*self.affine) if self.affine is not None
                                       else data.RandomCrop(self.input_shape[1], padding=self.crop_padding)]
        if self.flip:
            transforms.append(data.RandomHorizontalFlip())
        return transforms


_DATASETS: dict[str, DatasetRecipe] = {
    # The digits are 8x8: a whole-pixel crop shift moves an eighth of the image (and cost
    # accuracy), so they get sub-pixel shifts, small turns and rescalings, on by default: without
    # them simple_cnn learns its 1,294 training images by heart (training accuracy 100% from
    # epoch ~20) and loses to an RBF SVM; with them it needs more epochs to converge.
    "digits": DatasetRecipe("digits", (1, 8, 8), 10, None, 60, 64, 0, False, affine=(10.0, 1.0, 0.1), augment=True),
    "mnist": DatasetRecipe("mnist", (1, 28, 28), 10, "data/mnist", 10, 128, 2, False),
    "fashion-mnist": DatasetRecipe("fashion-mnist", (1, 28, 28), 10, "data/fashion-mnist", 10, 128, 2, True),
    "cifar10": DatasetRecipe("cifar10", (3, 32, 32), 10, "data/cifar10", 30, 128, 4, True),
    "cifar100": DatasetRecipe("cifar100", (3, 32, 32), 100, "data/cifar100", 30, 128, 4, True),
}


def dataset_recipe(name: str, image_size: int | None = None, channels: int | None = None) -> DatasetRecipe:
    """The :class:`DatasetRecipe` of ``name`` (one of :data:`DATASET_NAMES`); RecipeError for any
    other name.

    ``image_size`` and ``channels`` apply to ``"folder"`` only (RecipeError elsewhere): its
    images are ``image_size`` square (default :data:`FOLDER_IMAGE_SIZE`) with ``channels``
    channels (None, decided by the files, stands as 3); ``num_classes`` is 0, as the folder
    names the classes. Its augmentation pads by an eighth of the side and flips (photos)."""
    if name == "folder":
        size = image_size or FOLDER_IMAGE_SIZE
        return DatasetRecipe("folder", (channels or 3, size, size), 0, None, 30, 64, max(1, size // 8), True)
    if image_size is not None or channels is not None:
        raise RecipeError(f"image_size and channels apply to the 'folder' dataset only, not {name!r}")
    try:
        return _DATASETS[name]
    except (KeyError, TypeError):
        raise _unknown("dataset", name, DATASET_NAMES) from None


def build_dataset(name: str, data_dir: str | Path | None = None, download: bool = False, image_size: int | None = None,
                  channels: int | None = None) -> tuple[data.ArrayDataset, data.ArrayDataset]:
    """(train, test) of the dataset ``name`` as (N, C, H, W) float32 in [0, 1].

    ``data_dir`` is the folder with the dataset's files (default: the recipe's ``default_dir``,
    such as ``data/mnist``, relative to the working directory); ``download=True`` fetches missing
    files and verifies them. The digits come from scikit-learn with a fixed split (seed 0), so
    test accuracies of different runs compare; they ignore both arguments.

    ``"folder"`` reads ``data_dir`` with :func:`fastnn.data.image_folder`, resized to
    ``image_size`` (default :data:`FOLDER_IMAGE_SIZE`) in ``channels`` (1, 3, None: by the
    files); without train/ and test/ folders, :data:`FOLDER_TEST_FRACTION` of it is held out as
    the test set (stratified, seed 0). ``image_size`` and ``channels`` apply to it only.

    Raises RecipeError for an unknown name, ImportError when the digits' scikit-learn is missing,
    and :class:`fastnn.data.files.DatasetError` (DatasetNotFoundError when files are missing) from
    the loaders in :mod:`fastnn.data`.
    """
    recipe = dataset_recipe(name, image_size, channels)
    if name == "folder":
        return _folder_dataset(data_dir, recipe.input_shape[1], channels)
    if name == "digits":
        return data.digits(seed=0)
    root = Path(data_dir) if data_dir else Path(recipe.default_dir or ".")
    if name in ("mnist", "fashion-mnist"):
        return data.mnist(root, "digits" if name == "mnist" else "fashion", download=download)
    loader = data.cifar10 if name == "cifar10" else data.cifar100
    return loader(root, download=download)


def _folder_dataset(data_dir: str | Path | None, image_size: int,
                    channels: int | None) -> tuple[data.ArrayDataset, data.ArrayDataset]:
    """(train, test) of an image folder: its own train/ and test/, else a fixed stratified split."""
    if not data_dir:
        raise RecipeError("the 'folder' dataset needs data_dir: a folder with one sub-folder of images per class")
    train, test = data.image_folder(data_dir, image_size, channels)
    if test is not None:
        return train, test
    try:
        rest, held = data.stratified_indices(train.y, FOLDER_TEST_FRACTION, seed=0)
        return train.subset(rest), train.subset(held)  # the same split as stratified_split, paths kept
    except ValueError as e:
        raise data.DatasetError(f"fastnn.data: {data_dir} has too few images to hold out "
                                f"{FOLDER_TEST_FRACTION:g} of them as the test set ({str(e).split(': ', 1)[-1]}); "
                                "add images, or give it train/ and test/ folders") from None


# Models ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _ModelSpec:
    function: str  # the builder in fastnn.models
    leading: tuple[int, ...]  # its leading positional arguments
    min_size: int  # the smallest image side it takes


_MODELS: dict[str, _ModelSpec] = {
    "mlp": _ModelSpec("mlp", (), 1),
    "lenet5": _ModelSpec("lenet5", (), 1),
    "simple_cnn": _ModelSpec("simple_cnn", (), 4),
    **{f"resnet{depth}": _ModelSpec("resnet", (depth,), 4) for depth in (20, 32, 44, 56, 110)},
}


def _image_shape(input_shape: Iterable[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(hasattr(s, "__index__") for s in shape):  # ints, NumPy ints
        raise RecipeError(f"input_shape must be one image's (channels, height, width); got {shape}")
    c, h, w = (int(s) for s in shape)
    if min(c, h, w) < 1:
        raise RecipeError(f"input_shape must be positive; got {(c, h, w)}")
    return c, h, w


def _fits(spec: _ModelSpec, shape: tuple[int, int, int]) -> bool:
    return shape[1] == shape[2] and shape[1] >= spec.min_size


def models_for(input_shape: Iterable[int]) -> list[str]:
    """The names in :data:`MODEL_NAMES` whose model takes images of ``input_shape``
    (channels, height, width). Every model takes any number of channels and needs square
    images; ``simple_cnn`` and the ResNets need at least 4x4 pixels, ``mlp`` and ``lenet5`` take
    any size (LeNet-5 pads smaller images up to 32 pixels, see :func:`fastnn.models.lenet5`)."""
    shape = _image_shape(input_shape)
    return [name for name, spec in _MODELS.items() if _fits(spec, shape)]


def check_model(name: str, input_shape: Iterable[int]) -> None:
    """Raises RecipeError unless :func:`build_model` can build ``name`` for images of
    ``input_shape``: the name is known, its builder is in this fastnn's :mod:`fastnn.models`,
    and it takes that image size (the message then names the models that do). Builds nothing,
    so a script (or the CLI) can check before it loads any data."""
    import fastnn.models

    spec = _MODELS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise _unknown("model", name, MODEL_NAMES)
    if getattr(fastnn.models, spec.function, None) is None:
        raise RecipeError(f"model '{name}' is not available in this fastnn (fastnn.models.{spec.function} is missing)")
    shape = _image_shape(input_shape)
    if not _fits(spec, shape):
        c, h, w = shape
        need = "square images" if h != w else f"images of at least {spec.min_size}x{spec.min_size} pixels"
        fitting = models_for(shape)
        raise RecipeError(f"model '{name}' needs {need}, not {h}x{w}; "
                          + (f"the models that take {c}x{h}x{w} images: {', '.join(fitting)}" if fitting
                             else f"no model takes {c}x{h}x{w} images"))


def build_model(name: str, input_shape: Iterable[int], num_classes: int,
                embedding_dim: int | None = None) -> nn.Module:
    """A freshly initialised model ``name`` (one of :data:`MODEL_NAMES`) for images of
    ``input_shape`` (channels, height, width) and ``num_classes`` classes, with the builders'
    default widths. ``resnet<depth>`` is :func:`fastnn.models.resnet` of that depth (the CIFAR
    ResNets of He et al.: 20, 32, 44, 56 and 110 layers, 0.27 to 1.7 million parameters).

    With ``embedding_dim`` the model is an embedding network: the same trunk ending in a Linear
    projection to ``embedding_dim`` features and no classifier (``num_classes`` is still
    checked but does not shape the model; see :mod:`fastnn.models`).

    The weights are drawn from fastnn's global generator: call :func:`fastnn.manual_seed`
    first for a repeatable model. Raises RecipeError (see :func:`check_model`) when the model
    cannot be built for these images.
    """
    import fastnn.models

    check_model(name, input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise RecipeError(f"num_classes must be an int >= 1; got {num_classes!r}")
    if embedding_dim is not None and (isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int)
                                      or embedding_dim < 1):
        raise RecipeError(f"embedding_dim must be an int >= 1 or None; got {embedding_dim!r}")
    spec = _MODELS[name]
    c, size, _ = _image_shape(input_shape)
    build = getattr(fastnn.models, spec.function)
    try:
        return build(*spec.leading, in_channels=c, num_classes=num_classes, input_size=size,
                     embedding_dim=embedding_dim)
    except ValueError as e:  # a builder's own limit the table above does not know of
        raise RecipeError(f"model '{name}' cannot take {c}x{size}x{size} images: {e}") from e


# Optimisers and schedules ----------------------------------------------------------------------

_OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.05, "weight_decay": 5e-4},
    "adam": {"lr": 1e-3, "weight_decay": 0.0},
    "adamw": {"lr": 1e-3, "weight_decay": 0.05},
}


def optimizer_defaults(name: str) -> dict[str, float]:
    """The default ``{"lr": ..., "weight_decay": ...}`` of optimiser ``name`` (a new dict):
    sgd 0.05 and 5e-4, adam 0.001 and 0, adamw 0.001 and 0.05."""
    if not isinstance(name, str) or name not in _OPTIMIZER_DEFAULTS:
        raise _unknown("optimizer", name, OPTIMIZER_NAMES)
    return dict(_OPTIMIZER_DEFAULTS[name])


def build_optimizer(name: str, params: Iterable[nn.Parameter], lr: float | None = None,
                    weight_decay: float | None = None) -> optim.Optimizer:
    """Optimiser ``name`` over ``params``: ``"sgd"`` is SGD with momentum 0.9 (Nesterov),
    ``"adam"`` Adam and ``"adamw"`` AdamW. ``lr`` and ``weight_decay`` default to
    :func:`optimizer_defaults`."""
    defaults = optimizer_defaults(name)
    lr = defaults["lr"] if lr is None else lr
    weight_decay = defaults["weight_decay"] if weight_decay is None else weight_decay
    params = list(params)
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    cls = optim.Adam if name == "adam" else optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay)


def default_step_size(epochs: int) -> int:
    """The ``"step"`` schedule's default epochs between drops: half the run, rounded up, so a
    run of any length has at most one drop, at its middle (a 1-epoch run has none)."""
    return max(1, -(-int(epochs) // 2))


def build_schedule(name: str, optimizer: optim.Optimizer, epochs: int, steps_per_epoch: int, *,
                   step_size: int | None = None, gamma: float = 0.1) -> optim.lr.LRScheduler | None:
    """A schedule stepped once per batch over ``epochs * steps_per_epoch`` steps, or None for
    ``"none"`` (a constant learning rate). Build it right after the optimiser: it reads the
    optimiser's learning rate as the peak.

    - ``"cosine"``: linear warm-up over the first 5% of the steps, then cosine decay to 0;
    - ``"onecycle"``: :class:`fastnn.optim.lr.OneCycleLR` peaking at the learning rate;
    - ``"step"``: the learning rate multiplied by ``gamma`` (default 0.1) every ``step_size``
      epochs (default :func:`default_step_size`: one drop, halfway through the run).

    ``step_size`` and ``gamma`` apply to ``"step"`` only (RecipeError for another schedule).
    """
    if not isinstance(name, str) or name not in SCHEDULE_NAMES:
        raise _unknown("schedule", name, SCHEDULE_NAMES)
    for arg, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RecipeError(f"{arg} must be an int >= 1; got {value!r}")
    if name != "step" and (step_size is not None or gamma != 0.1):
        raise RecipeError(f"step_size and gamma apply to the 'step' schedule only, not {name!r}")
    if step_size is not None and (isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1):
        raise RecipeError(f"step_size must be an int >= 1 (epochs); got {step_size!r}")
    if not (isinstance(gamma, (int, float)) and 0 < gamma <= 1):
        raise RecipeError(f"gamma must be a number in (0, 1]; got {gamma!r}")
    total = epochs * steps_per_epoch
    if name == "cosine":
        return optim.lr.CosineAnnealingLR(optimizer, T_max=total, warmup_steps=total // 20)
    if name == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return optim.lr.OneCycleLR(optimizer, max_lr=peaks[0] if len(peaks) == 1 else peaks,
                                   total_steps=max(total, 2))
    if name == "step":
        size = default_step_size(epochs) if step_size is None else step_size
        return optim.lr.StepLR(optimizer, step_size=size * steps_per_epoch, gamma=float(gamma))
    return None


def describe_schedule(name: str, epochs: int, step_size: int | None = None, gamma: float = 0.1) -> str:
    """The schedule in words, for printed text: "cosine schedule", "constant learning rate",
    "step schedule (x0.1 every 5 epochs)", ..."""
    if name == "none":
        return "constant learning rate"
    if name == "step":
        size = default_step_size(epochs) if step_size is None else step_size
        return f"step schedule (x{gamma:g} every {plural(size, 'epoch')})"
    return f"{name} schedule"


def plural(count: int, noun: str) -> str:
    """ "1 epoch", "2 epochs", "1,438 images" ... (``noun`` + "s" unless ``count`` is 1)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


__all__ = [
    "DATASET_NAMES",
    "FOLDER_IMAGE_SIZE",
    "FOLDER_TEST_FRACTION",
    "MODEL_NAMES",
    "OPTIMIZER_NAMES",
    "SCHEDULE_NAMES",
    "DatasetRecipe",
    "RecipeError",
    "build_dataset",
    "build_model",
    "build_optimizer",
    "build_schedule",
    "check_model",
    "dataset_recipe",
    "default_step_size",
    "describe_schedule",
    "models_for",
    "optimizer_defaults",
    "plural",
]
