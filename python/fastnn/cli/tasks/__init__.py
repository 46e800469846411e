"""The five image-classification tasks of ``fastnn train --task`` and ``fastnn eval``.

A task says what the labels are, which model and loss train on them, and how the trained model
is scored at the end (the report's ``final.<task>``, the summary lines and the pictures):

- ``multiclass`` (the default): one of K classes; softmax cross-entropy.
- ``binary``: yes/no, "yes" being the classes named by ``--positive``; a 2-logit softmax (the
  same model as a 1-logit sigmoid: p(yes) = sigmoid(z_yes - z_no)), scored by AUC, average
  precision, accuracy and F1 at p(yes) >= 0.5.
- ``attributes``: several properties of each image at once (a built-in table per dataset, or
  ``--attributes CSV``), one head per attribute on a shared trunk (:class:`fastnn.nn.MultiHead`).
- ``verification`` and ``identification``: an embedding network trained with ArcFace (or
  triplet) loss on some classes (identities), scored on identities it never saw (open set) and
  on held-out images of the ones it trained on (closed set).

The training loop itself (:func:`fastnn.train.fit`) is the same for all of them.
"""

from __future__ import annotations

from typing import Any

from fastnn.cli.tasks.base import Task, TaskResult
from fastnn.cli.tasks.classify import BinaryTask, MulticlassTask

TASK_NAMES = ("multiclass", "binary", "attributes", "verification", "identification")


def task_for(config: dict[str, Any]) -> Task:
    """The task of a run's configuration (``multiclass`` for runs saved before tasks existed)."""
    name = config.get("task") or "multiclass"
    if name == "multiclass":
        return MulticlassTask()
    if name == "binary":
        return BinaryTask()
    if name == "attributes":
        from fastnn.cli.tasks.attributes import AttributesTask

        return AttributesTask()
    if name in ("verification", "identification"):
        from fastnn.cli.tasks.open_set import IdentificationTask, VerificationTask

        return VerificationTask() if name == "verification" else IdentificationTask()
    raise ValueError(f"fastnn train: unknown task {name!r} (known: {', '.join(TASK_NAMES)})")


__all__ = ["TASK_NAMES", "Task", "TaskResult", "task_for"]


# The task flags of ``fastnn train`` ------------------------------------------------------------

# Each task option: its default where it applies, and the tasks it applies to.
TASK_OPTIONS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "positive": (None, ("binary",)),
    "attributes": (None, ("attributes",)),
    "eval_classes": (None, ("verification", "identification")),
    "embedding_dim": (64, ("verification", "identification")),
    "loss": ("arcface", ("verification", "identification")),
    "scale": (16.0, ("verification", "identification")),
    "margin": (None, ("verification", "identification")),  # per loss: MARGINS
    "pairs": (6000, ("verification",)),
    "enroll": (5, ("identification",)),
    "unknown_classes": (0, ("identification",)),
}
MARGINS = {"arcface": 0.3, "triplet": 0.2}
"""The default --margin of each metric-learning loss: ArcFace's angular margin in radians (0.3,
with --scale 16, suits a few thousand images of a few identities; the paper's 0.5 and 64 are for
millions), the triplet loss's distance margin between unit-length embeddings."""


def add_arguments(parser: Any) -> None:
    """Adds ``--task`` and the options of each task to ``fastnn train``'s parser."""
    from fastnn.cli.common import int_at_least, non_negative_float, positive_float
    from fastnn.cli.tasks.base import class_list

    group = parser.add_argument_group("tasks", "what the model learns to answer (default: multiclass)")
    group.add_argument("--task", choices=TASK_NAMES,
                       help="multiclass: which class; binary: yes/no (--positive); attributes: several properties "
                            "per image (built-in table, or --attributes CSV); verification: same identity or not; "
                            "identification: which enrolled identity, if any (both scored on identities held out "
                            "of training: --eval-classes)")
    group.add_argument("--positive", type=class_list, metavar="CLASSES",
                       help="--task binary: the classes that count as 'yes', by name or id, comma-separated")
    group.add_argument("--attributes", metavar="CSV",
                       help="--task attributes: a table of image id -> attribute values (header row: id column, then "
                            "attribute names; empty cell: unknown); default: the dataset's built-in table")
    group.add_argument("--eval-classes", type=class_list, metavar="CLASSES",
                       help="--task verification/identification: the classes (identities) held out of training and "
                            "scored as unseen identities (default: the last 40%% of classes)")
    group.add_argument("--embedding-dim", type=int_at_least(1), metavar="D",
                       help="--task verification/identification: embedding size (default 64)")
    group.add_argument("--loss", choices=tuple(MARGINS),
                       help="--task verification/identification: arcface (default) or triplet (batch-hard mining)")
    group.add_argument("--scale", type=positive_float, help="ArcFace's scale s (default 16)")
    group.add_argument("--margin", type=non_negative_float,
                       help="ArcFace's angular margin m in radians (default 0.3) or the triplet margin (default 0.2)")
    group.add_argument("--pairs", type=int_at_least(2),
                       help="--task verification: same/different pairs scored, half each (default 6000, or all "
                            "there are)")
    group.add_argument("--enroll", type=int_at_least(1), metavar="K",
                       help="--task identification: images enrolled per identity (default 5)")
    group.add_argument("--unknown-classes", type=int_at_least(0), metavar="U",
                       help="--task identification: held-out identities never enrolled, whose probes must be "
                            "rejected (the open-set rate, DIR at FAR; default 0)")


def config_from_args(args: Any, base: dict[str, Any]) -> dict[str, Any]:
    """The task entries of a new run's configuration: the options given (CLIError naming a flag
    given for a task it does not apply to), else the defaults of the run's task."""
    from fastnn.cli.common import CLIError

    task = getattr(args, "task", None) or base.get("task") or "multiclass"
    config: dict[str, Any] = {"task": task}
    for key, (default, tasks) in TASK_OPTIONS.items():
        given = getattr(args, key, None)
        if given is not None and task not in tasks:
            raise CLIError(f"--{key.replace('_', '-')} applies to --task {' and '.join(tasks)} only "
                           f"(this run's task is {task})")
        config[key] = given if given is not None else (default if task in tasks else None)
    if task in ("verification", "identification") and config["margin"] is None:
        config["margin"] = MARGINS[config["loss"]]
    if config["loss"] == "triplet" and getattr(args, "scale", None) is not None:
        raise CLIError("--scale is ArcFace's; --loss triplet has none")
    if config["loss"] == "triplet":
        config["scale"] = None
        if config["margin"] == 0:
            raise CLIError("--margin must be > 0 for --loss triplet (a zero margin asks nothing of the embedding)")
    if config["loss"] == "arcface" and config["margin"] is not None and config["margin"] >= 1.5707963267948966:
        raise CLIError(f"--margin {config['margin']:g} is ArcFace's angular margin in radians: it must be < pi/2")
    return config
