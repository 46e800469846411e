"""``--task multiclass`` (one of K classes) and ``--task binary`` (yes/no)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import data, metrics, nn, ops, report
from fastnn.cli.common import CLIError
from fastnn.cli.tasks.base import Task, TaskResult, as_class_refs, flag_error, percent, run_model


class MulticlassTask(Task):
    """One of the dataset's classes per image (the default)."""

    name = "multiclass"

    def check(self, config: dict[str, Any]) -> None:
        super().check(config)
        if config.get("positive"):
            raise CLIError("--positive applies to --task binary only")


class BinaryTask(Task):
    """Yes/no: is the image of one of the ``--positive`` classes? Trained as a 2-class softmax."""

    name = "binary"
    threshold = 0.5

    def check(self, config: dict[str, Any]) -> None:
        super().check(config)
        if not config.get("positive"):
            raise CLIError("--task binary needs --positive: the classes that count as 'yes', by name or id, "
                           "separated by commas (e.g. --positive 1,3,5,7,9)")

    def select(self, train: data.ArrayDataset, test: data.ArrayDataset,
               config: dict[str, Any]) -> tuple[data.ArrayDataset, data.ArrayDataset]:
        from fastnn.tasks import binary_task, positive_names

        refs = as_class_refs(config["positive"])
        try:
            config["positive_classes"] = positive_names(train.classes, refs)
            return binary_task(train, refs), binary_task(test, refs)
        except ValueError as e:
            raise flag_error(e) from None

    def score(self, model: nn.Module, loss: nn.Module, test: Any, config: dict[str, Any], device: str,
              batch_size: int) -> TaskResult:
        logits = np.ascontiguousarray(run_model(model, test, config, device, batch_size), dtype=np.float64)
        p_yes = ops.softmax(logits)[:, 1]
        y = test.y
        predicted = (p_yes >= self.threshold).astype(np.int64)
        tp = int(np.count_nonzero((predicted == 1) & (y == 1)))
        fp = int(np.count_nonzero((predicted == 1) & (y == 0)))
        fn = int(np.count_nonzero((predicted == 0) & (y == 1)))
        both = len(np.unique(y)) == 2
        auc = metrics.roc_auc(y, p_yes) if both else None
        ap = metrics.average_precision(y, p_yes) if both else None
        accuracy = float(np.mean(predicted == y))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        positives = ", ".join(config["positive_classes"])
        result = {"auc": auc, "average_precision": ap, "accuracy": accuracy, "f1": f1, "threshold": self.threshold,
                  "positive_classes": config["positive_classes"], "positives": int(np.count_nonzero(y == 1)),
                  "negatives": int(np.count_nonzero(y == 0)), "score": "p(yes), the softmax of the two logits"}
        lines = [f"binary task, yes = {positives}: test AUC {auc:.4f}   average precision {ap:.4f}   "
                 f"accuracy {percent(accuracy, 2)}   F1 {f1:.4f} at p(yes) >= {self.threshold:g}" if both else
                 f"binary task, yes = {positives}: test accuracy {percent(accuracy, 2)} (the test set holds one "
                 "class only, so AUC and average precision are undefined)",
                 "AUC is the chance that a random 'yes' image scores above a random 'no' one (1: always, 0.5: "
                 "a coin); average precision summarises precision over every recall"]
        pictures = {}
        if both:
            fpr, tpr, _ = metrics.roc_curve(y, p_yes)
            title = f"{config['model']} on {config['dataset']}: yes = {positives}"
            pictures["roc.png"] = lambda path: report.plot_roc({"test": (fpr, tpr, auc)}, path, title)
        return TaskResult("binary", result, lines, pictures)
