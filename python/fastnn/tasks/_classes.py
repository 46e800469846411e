"""Class lists given by the user (``--positive``, ``--eval-classes``) resolved to class ids."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def class_ids(wanted: Sequence[int | str], classes: Sequence[str], where: str, argument: str,
              flag: str) -> np.ndarray:
    """The sorted, distinct class ids of ``wanted``: each a class id (an int in
    ``[0, len(classes))``) or a class name from ``classes``. ValueError naming ``where``,
    ``argument`` and the command-line ``flag`` for an empty list, an unknown name (listing the
    valid names) or an id out of range."""
    prefix = f"fastnn.tasks.{where}: argument '{argument}' ({flag})"
    if isinstance(wanted, (str, bytes)) or not isinstance(wanted, Sequence) and not isinstance(wanted, np.ndarray):
        raise ValueError(f"{prefix} must be a list of class ids or names; got {wanted!r}")
    if len(wanted) == 0:
        raise ValueError(f"{prefix} must name at least one class; got an empty list")
    by_name = {name: i for i, name in enumerate(classes)}
    ids = []
    for item in wanted:
        if isinstance(item, str):
            # A name first: the digits' classes are named "0".."9", so "3" is both, and agrees.
            if item in by_name:
                ids.append(by_name[item])
                continue
            raise ValueError(f"{prefix} names the unknown class {item!r}; the classes are: {', '.join(classes)}")
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)) or not 0 <= item < len(classes):
            raise ValueError(f"{prefix} must hold class names or ids in [0, {len(classes)}); got {item!r}; "
                             f"the classes are: {', '.join(classes)}")
        ids.append(int(item))
    return np.unique(np.asarray(ids, dtype=np.int64))
