"""Binary task: a multiclass dataset relabelled yes/no by a list of positive classes.

y = 1 where the image's class is among the positive ones, else 0 (e.g. the CIFAR-10 animals
against the vehicles).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fastnn.data.dataset import ArrayDataset
from fastnn.tasks._classes import class_ids

BINARY_CLASSES: list[str] = ["no", "yes"]
"""The class names of a binary task's dataset: label 0 is "no", label 1 is "yes"."""


def binary_task(dataset: ArrayDataset, positive: Sequence[int | str]) -> ArrayDataset:
    """``dataset`` with labels 1 for the classes in ``positive`` (class ids or names, as
    ``--positive`` takes them) and 0 for the others; class names :data:`BINARY_CLASSES`. The
    images are shared, not copied.

    ValueError naming ``--positive`` for an unknown class name (listing the valid ones), an id
    out of range, an empty list, or a list of every class (nothing would be "no").
    """
    positive_ids = class_ids(positive, dataset.classes, "binary_task", "positive", "--positive")
    if len(positive_ids) == dataset.num_classes:
        raise ValueError(f"fastnn.tasks.binary_task: argument 'positive' (--positive) names every class "
                         f"({', '.join(dataset.classes)}), which leaves no negative class; name only the 'yes' ones")
    is_positive = np.zeros(dataset.num_classes, dtype=np.int64)
    is_positive[positive_ids] = 1
    return ArrayDataset(dataset.x, is_positive[dataset.y], classes=list(BINARY_CLASSES))


def positive_names(classes: Sequence[str], positive: Sequence[int | str]) -> list[str]:
    """The names of the ``positive`` classes among ``classes``, in class order (for reports:
    "yes" means one of these)."""
    return [classes[i] for i in class_ids(positive, classes, "positive_names", "positive", "--positive")]
