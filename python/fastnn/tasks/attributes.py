"""Attribute recognition: several binary or multiclass properties of one image at once.

An attribute task is a list of :class:`AttributeSpec` (name, kind, value names) and an (N, A)
float32 target table, one row per image and one column per attribute: binary columns hold
0/1, multiclass columns a value id in [0, k), and -1 marks an unknown value (no loss, no
gradient: :class:`fastnn.nn.MultiHeadLoss`).

Targets come from a built-in table per dataset (:func:`attribute_task`: each class of the
dataset maps to one value per attribute, e.g. digit 8 -> even, not prime, >= 5, 2 closed loops)
or from the user's CSV (:func:`read_attribute_csv`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fastnn.data.dataset import ArrayDataset
from fastnn.nn.multihead import UNKNOWN

BINARY_VALUES: tuple[str, str] = ("no", "yes")
"""The value names of a binary attribute (0 and 1)."""


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute: its ``name`` (a column, a head, a report key), its ``kind`` ("binary" or
    "multiclass") and the names of its values (``("no", "yes")`` for a binary one; value id i is
    ``classes[i]``)."""

    name: str
    kind: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            raise ValueError(f"fastnn.tasks.AttributeSpec: argument 'name' must be a non-empty string without '.'; "
                             f"got {self.name!r}")
        if self.kind not in ("binary", "multiclass"):
            raise ValueError(f"fastnn.tasks.AttributeSpec: argument 'kind' must be 'binary' or 'multiclass'; "
                             f"got {self.kind!r} for {self.name!r}")
        if len(self.classes) != 2 if self.kind == "binary" else len(self.classes) < 2:
            raise ValueError(f"fastnn.tasks.AttributeSpec: argument 'classes' must name "
                             f"{'2 values' if self.kind == 'binary' else 'at least 2 values'} for the {self.kind} "
                             f"attribute {self.name!r}; got {self.classes!r}")

    @property
    def outputs(self) -> int:
        """The logits its head needs: 1 for binary, k for a k-valued multiclass attribute."""
        return 1 if self.kind == "binary" else len(self.classes)

    @property
    def head(self) -> str | int:
        """Its entry in a :class:`fastnn.nn.MultiHeadLoss` spec: "binary" or the value count."""
        return "binary" if self.kind == "binary" else len(self.classes)


def head_spec(specs: Sequence[AttributeSpec]) -> dict[str, str | int]:
    """``{name: "binary" or k}`` of ``specs``, in order: the spec of a
    :class:`fastnn.nn.MultiHeadLoss` for these attributes."""
    return {spec.name: spec.head for spec in specs}


def _check_targets(targets: np.ndarray, specs: Sequence[AttributeSpec], where: str) -> None:
    """ValueError naming the first entry that is neither -1 nor a value of its attribute."""
    limits = np.asarray([spec.outputs if spec.kind == "multiclass" else 2 for spec in specs])
    bad = (targets != np.round(targets)) | (targets < UNKNOWN) | (targets >= limits) | ~np.isfinite(targets)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        spec = specs[column]
        raise ValueError(f"fastnn.tasks.{where}: argument 'targets' must hold -1 (unknown) or a value id in "
                         f"[0, {limits[column]}) of the {spec.kind} attribute {spec.name!r}; got "
                         f"{targets[row, column].item()!r} in row {row}, column {column}")


class AttributeDataset:
    """Images ``x`` (float32, (N, C, H, W)) with an (N, A) float32 target table ``targets``, one
    column per :class:`AttributeSpec` in ``specs`` (-1: unknown). ``labels`` keeps the images'
    class labels where the targets came from them (None otherwise).

    ``dataset[index]`` is ``(x[index], targets[index])``, so a :class:`fastnn.data.DataLoader`
    batches it (its int64 batches hold the table exactly: every entry is a whole number).
    """

    def __init__(self, x: np.ndarray, targets: np.ndarray, specs: Sequence[AttributeSpec],
                 labels: np.ndarray | None = None) -> None:
        """Checks the shapes and every target against its attribute (ValueError)."""
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.targets = np.ascontiguousarray(targets, dtype=np.float32)
        self.specs = list(specs)
        if self.x.ndim != 4:
            raise ValueError(f"fastnn.tasks.AttributeDataset: argument 'x' must be 4-D (N, C, H, W); "
                             f"got shape {self.x.shape}")
        if not self.specs or not all(isinstance(s, AttributeSpec) for s in self.specs):
            raise ValueError("fastnn.tasks.AttributeDataset: argument 'specs' must be a non-empty list of "
                             "AttributeSpec")
        if self.targets.shape != (self.x.shape[0], len(self.specs)):
            raise ValueError(f"fastnn.tasks.AttributeDataset: argument 'targets' must have shape "
                             f"({self.x.shape[0]}, {len(self.specs)}): one row per image, one column per attribute; "
                             f"got {self.targets.shape}")
        _check_targets(self.targets, self.specs, "AttributeDataset")
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)

    @property
    def names(self) -> list[str]:
        """The attributes' names, in column order."""
        return [spec.name for spec in self.specs]

    @property
    def head_spec(self) -> dict[str, str | int]:
        """The :class:`fastnn.nn.MultiHeadLoss` spec of these attributes (see :func:`head_spec`)."""
        return head_spec(self.specs)

    def subset(self, index: Any) -> "AttributeDataset":
        """The images at ``index`` (an index array or a boolean mask), with their targets."""
        labels = None if self.labels is None else self.labels[index]
        return AttributeDataset(self.x[index], self.targets[index], self.specs, labels)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.x[index], self.targets[index]

    def __repr__(self) -> str:
        return f"AttributeDataset(n={len(self)}, image_shape={self.x.shape[1:]}, attributes={self.names})"


# Built-in tables -------------------------------------------------------------------------------
# One row per attribute: its spec and its value for each of the dataset's 10 classes, in class
# order. They are label-level facts, so every image of a class gets the same values.

def _binary(name: str, positive: Sequence[int]) -> tuple[AttributeSpec, list[int]]:
    return AttributeSpec(name, "binary", BINARY_VALUES), [int(c in positive) for c in range(10)]


def _grouped(name: str, groups: Sequence[str], per_class: Sequence[int]) -> tuple[AttributeSpec, list[int]]:
    return AttributeSpec(name, "multiclass", tuple(groups)), list(per_class)


# Digits 0-9. Closed loops as the digits are usually written: 0, 6, 9 have one, 8 has two; a
# handwritten 4 is mostly open at the top (as in MNIST and the 8x8 digits), so it counts 0.
_DIGITS = [
    _binary("even", (0, 2, 4, 6, 8)),
    _binary("prime", (2, 3, 5, 7)),
    _binary("at_least_5", (5, 6, 7, 8, 9)),
    _grouped("closed_loops", ("0", "1", "2"), (1, 0, 0, 0, 0, 0, 1, 0, 2, 1)),
]

# Fashion-MNIST: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
# 7 Sneaker, 8 Bag, 9 Ankle boot. "long_sleeves": pullovers, coats and shirts (T-shirts are
# short-sleeved; dresses vary, and count as no).
_FASHION = [
    _binary("footwear", (5, 7, 9)),
    _binary("upper_body", (0, 2, 4, 6)),
    _binary("long_sleeves", (2, 4, 6)),
    _grouped("group", ("top", "trousers_or_dress", "footwear", "bag"), (0, 1, 0, 1, 0, 2, 0, 2, 3, 2)),
]

# CIFAR-10: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse, 8 ship,
# 9 truck. "has_wheels": road vehicles (an airplane's wheels are hidden in most of its pictures,
# which show it flying).
_CIFAR10 = [
    _binary("has_wheels", (1, 9)),
    _binary("animal", (2, 3, 4, 5, 6, 7)),
    _binary("can_fly", (0, 2)),
    _grouped("group", ("vehicle", "mammal", "other_animal"), (0, 0, 2, 1, 1, 1, 2, 1, 0, 0)),
]

_TABLES: dict[str, list[tuple[AttributeSpec, list[int]]]] = {
    "digits": _DIGITS, "mnist": _DIGITS, "fashion-mnist": _FASHION, "cifar10": _CIFAR10,
}

ATTRIBUTE_DATASETS: tuple[str, ...] = tuple(_TABLES)
"""The datasets (``--dataset`` names) with a built-in attribute table."""


def _table(dataset_name: str, where: str) -> list[tuple[AttributeSpec, list[int]]]:
    table = _TABLES.get(dataset_name) if isinstance(dataset_name, str) else None
    if table is None:
        raise ValueError(f"fastnn.tasks.{where}: argument 'dataset_name' (--dataset) has no built-in attribute table: "
                         f"{dataset_name!r}; the datasets with one are {', '.join(ATTRIBUTE_DATASETS)} "
                         f"(for other data, give the attributes as a CSV: fastnn.tasks.read_attribute_csv)")
    return table


def attribute_specs(dataset_name: str) -> list[AttributeSpec]:
    """The attributes of ``dataset_name``'s built-in table (one of :data:`ATTRIBUTE_DATASETS`):

    - digits / mnist: even, prime, at_least_5 (binary); closed_loops 0/1/2 (multiclass: 0, 6
      and 9 have one loop, 8 two, every other digit none, 4 included: it is usually written open);
    - fashion-mnist: footwear, upper_body, long_sleeves (binary); group top /
      trousers_or_dress / footwear / bag (multiclass);
    - cifar10: has_wheels (automobile, truck), animal, can_fly (airplane, bird) (binary); group
      vehicle / mammal / other_animal (multiclass).

    ValueError naming ``--dataset`` for a dataset without a table."""
    return [spec for spec, _ in _table(dataset_name, "attribute_specs")]


def attribute_task(dataset: ArrayDataset, dataset_name: str) -> AttributeDataset:
    """``dataset``'s images with the target table of ``dataset_name``'s built-in attributes
    (see :func:`attribute_specs`), looked up from each image's class; ``labels`` keeps the
    classes. ValueError for a dataset without a table, or one whose class count is not the
    table's."""
    table = _table(dataset_name, "attribute_task")
    if dataset.num_classes != len(table[0][1]):
        raise ValueError(f"fastnn.tasks.attribute_task: argument 'dataset' must have the {len(table[0][1])} classes of "
                         f"{dataset_name}; got {dataset.num_classes}")
    by_class = np.asarray([values for _, values in table], dtype=np.float32).T  # (classes, attributes)
    return AttributeDataset(dataset.x, by_class[dataset.y], [spec for spec, _ in table], labels=dataset.y)


# User CSV --------------------------------------------------------------------------------------

def image_ids(dataset: Any) -> list[str]:
    """The ids that :func:`read_attribute_csv` matches a CSV's first column against: the
    dataset's ``ids`` where it has them (e.g. file names), else each image's row index as a
    string ("0", "1", ...)."""
    ids = getattr(dataset, "ids", None)
    return [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(dataset))]


def read_attribute_csv(path: str | Path, ids: Sequence[str]) -> tuple[list[AttributeSpec], np.ndarray]:
    """Reads a user's attribute table: ``(specs, targets)``, ``targets`` (len(ids), A) float32
    with the rows in the order of ``ids`` (see :func:`image_ids`).

    The CSV's first row is a header: the id column's name, then one attribute name per column.
    Each further row is an image id (from ``ids``) and one number per attribute: 0/1 for a binary
    attribute, a value id 0..k-1 for a multiclass one; an empty cell is unknown (-1). A column
    whose values are all 0 or 1 is binary, any other multiclass with k = its largest value + 1.
    Images with no row get -1 (unknown) everywhere.

    ValueError naming the file, and the row (1 = the header) and column where it applies: a
    missing header (a first row of numbers), empty or repeated attribute names, a row of the
    wrong length, an unknown or repeated id, a cell that is not a whole number >= 0, or no data
    rows.
    """
    path = Path(path)
    where = f"fastnn.tasks.read_attribute_csv: {path}"
    if len(set(ids)) != len(ids):
        raise ValueError("fastnn.tasks.read_attribute_csv: argument 'ids' must be distinct image ids")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(number, row) for number, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{where}: the file is empty; the first row must be a header: an id column, then one "
                         f"attribute name per column")
    header_number, header = rows[0]
    names = [cell.strip() for cell in header[1:]]
    if not names:
        raise ValueError(f"{where}, row {header_number}: the header must name an id column and at least one "
                         f"attribute; got {header!r}")
    if all(_is_number(name) for name in names):
        raise ValueError(f"{where}, row {header_number}: missing header: the first row holds numbers "
                         f"({', '.join(header[:4])}...); add a row naming the columns: an id column, then one "
                         f"attribute name per column")
    for column, name in enumerate(names, start=2):
        if not name or "." in name:
            raise ValueError(f"{where}, row {header_number}, column {column}: attribute names must be non-empty "
                             f"and without '.'; got {name!r}")
        if names.index(name) != column - 2:
            raise ValueError(f"{where}, row {header_number}, column {column}: attribute {name!r} appears twice")
    data = rows[1:]
    if not data:
        raise ValueError(f"{where}: no data rows after the header")
    position = {image_id: i for i, image_id in enumerate(ids)}
    seen: dict[str, int] = {}
    for number, row in data:
        if len(row) != len(header):
            raise ValueError(f"{where}, row {number}: expected {len(header)} cells (an id and {len(names)} "
                             f"attributes), got {len(row)}")
        image_id = row[0].strip()
        if image_id not in position:
            example = ", ".join(repr(i) for i in list(ids)[:3])
            raise ValueError(f"{where}, row {number}, column 1: unknown image id {image_id!r}; the dataset's "
                             f"{len(ids)} images have ids such as {example}")
        if image_id in seen:
            raise ValueError(f"{where}, row {number}, column 1: image id {image_id!r} repeats row {seen[image_id]}")
        seen[image_id] = number
    cells = np.char.strip(np.asarray([row[1:] for _, row in data], dtype=str))
    empty = cells == ""
    values = _parse_cells(cells, empty, where, [number for number, _ in data], names)
    values[empty] = UNKNOWN
    specs = []
    for column, name in enumerate(names):
        largest = int(values[:, column].max(initial=UNKNOWN))
        if largest <= 1:
            specs.append(AttributeSpec(name, "binary", BINARY_VALUES))
        else:
            specs.append(AttributeSpec(name, "multiclass", tuple(str(v) for v in range(largest + 1))))
    targets = np.full((len(ids), len(names)), UNKNOWN, dtype=np.float32)
    targets[[position[row[0].strip()] for _, row in data]] = values
    return specs, targets


def _is_number(text: str) -> bool:
    return not np.isnan(_number(text))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _parse_cells(cells: np.ndarray, empty: np.ndarray, where: str, row_numbers: list[int],
                 names: list[str]) -> np.ndarray:
    """The cells as float32 whole numbers >= 0 (empty ones as 0 for now); ValueError naming
    the first cell that is not one."""
    filled = np.where(empty, "0", cells)
    try:
        values = filled.astype(np.float64)
    except ValueError:  # some cell is not a number: those become NaN, and the check below names the first
        values = np.vectorize(_number, otypes=[np.float64])(filled)
    bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{where}, row {row_numbers[row]}, column {column + 2} ({names[column]!r}): "
                         f"{str(cells[row, column])!r} is not a whole number >= 0 (binary attributes are 0 or 1, "
                         f"multiclass ones a value id 0, 1, ...; leave the cell empty where the value is unknown)")
    return values.astype(np.float32)


def multi_head_model(classifier: Any, specs: Sequence[AttributeSpec]) -> Any:
    """An attribute model from a classifier built by :mod:`fastnn.models`: its trunk (every
    layer but the final Linear, shared, not copied) followed by an :class:`fastnn.nn.MultiHead`
    of one fresh Linear per attribute (1 logit for a binary one, k for a multiclass one), named
    after the attributes. Its forward returns ``{name: logits}``."""
    from fastnn import nn
    from fastnn.models import split_head

    trunk, head = split_head(classifier)
    heads = {spec.name: nn.Linear(head.in_features, spec.outputs) for spec in specs}
    return nn.Sequential(trunk, nn.MultiHead(heads))
