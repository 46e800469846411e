"""``--task attributes``: several properties of each image at once (sex -> binary, hair colour
-> multiclass, ...), one head per attribute on a shared trunk.

The attributes come from a built-in table of the dataset (:func:`fastnn.tasks.attribute_specs`:
facts of each class, e.g. a digit's parity) or from the user's CSV (``--attributes FILE``,
:func:`fastnn.tasks.read_attribute_csv`), whose ids are the images' ids: their file names for an
image folder, else ``train/<row>`` and ``test/<row>`` (the row in the dataset's own order).
Unknown values (-1, an empty cell) give no loss and no gradient, and are left out of the
scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import data, metrics, nn, report
from fastnn.cli.common import CLIError, build_model
from fastnn.cli.tasks.base import Task, TaskResult, flag_error, percent, run_model


def _specs(config: dict[str, Any]) -> list[Any]:
    from fastnn.tasks import AttributeSpec

    return [AttributeSpec(s["name"], s["kind"], tuple(s["classes"])) for s in config["attribute_specs"]]


def _ids(dataset: Any, part: str) -> list[str]:
    ids = getattr(dataset, "ids", None)
    return [str(i) for i in ids] if ids is not None else [f"{part}/{i}" for i in range(len(dataset))]


class AttributesTask(Task):
    """One binary or multiclass head per attribute; the summed (masked) losses train the trunk."""

    name = "attributes"
    monitors = ("val_loss",)

    def check(self, config: dict[str, Any]) -> None:
        super().check(config)
        if config.get("positive"):
            raise CLIError("--positive applies to --task binary only")

    def select(self, train: data.ArrayDataset, test: data.ArrayDataset,
               config: dict[str, Any]) -> tuple[Any, Any]:
        from fastnn.tasks import AttributeDataset, attribute_task, read_attribute_csv

        try:
            if config.get("attributes"):
                ids = _ids(train, "train") + _ids(test, "test")
                specs, table = read_attribute_csv(config["attributes"], ids)
                n = len(train)
                train_set = AttributeDataset(train.x, table[:n], specs, labels=train.y)
                test_set = AttributeDataset(test.x, table[n:], specs, labels=test.y)
            else:
                train_set, test_set = attribute_task(train, config["dataset"]), attribute_task(test, config["dataset"])
        except ValueError as e:
            text = str(e)
            if "read_attribute_csv" in text:
                raise CLIError(f"--attributes {text.split(': ', 1)[1]}") from None
            raise flag_error(e) from None
        except OSError as e:
            raise CLIError(f"--attributes {config['attributes']}: cannot read it ({e.strerror or e})") from None
        config["attribute_specs"] = [{"name": s.name, "kind": s.kind, "classes": list(s.classes)}
                                     for s in train_set.specs]
        return train_set, test_set

    def split(self, train: Any, fraction: float, seed: int) -> tuple[Any, Any]:
        rest, held = data.stratified_indices(train.labels, fraction, seed)
        return train.subset(rest), train.subset(held)

    def describe(self, train: Any) -> dict[str, Any]:
        return {"num_classes": len(train.specs), "classes": train.names}

    def model(self, config: dict[str, Any]) -> nn.Module:
        from fastnn.tasks import multi_head_model

        return multi_head_model(build_model(config), _specs(config))

    def loss(self, config: dict[str, Any]) -> nn.Module:
        from fastnn.tasks import head_spec

        return nn.MultiHeadLoss(head_spec(_specs(config)))

    def score(self, model: nn.Module, loss: nn.Module, test: Any, config: dict[str, Any], device: str,
              batch_size: int) -> TaskResult:
        outputs = run_model(model, test, config, device, batch_size)
        per: dict[str, dict[str, Any]] = {}
        for column, spec in enumerate(_specs(config)):
            truth = test.targets[:, column]
            known = truth != -1
            y = truth[known].astype(np.int64)
            logits = outputs[spec.name][known].astype(np.float64)
            entry: dict[str, Any] = {"kind": spec.kind, "known": int(known.sum()), "unknown": int((~known).sum())}
            if not len(y):
                per[spec.name] = {**entry, "accuracy": None}
                continue
            if spec.kind == "binary":
                p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
                entry["accuracy"] = float(np.mean((p >= 0.5) == (y == 1)))
                entry["auc"] = metrics.roc_auc(y, p) if len(np.unique(y)) == 2 else None
                entry["average_precision"] = metrics.average_precision(y, p) if len(np.unique(y)) == 2 else None
            else:
                predicted = logits.argmax(axis=1)
                entry["accuracy"] = float(np.mean(predicted == y))
                scores = metrics.precision_recall_f1(y, predicted, len(spec.classes))
                present = np.bincount(y, minlength=len(spec.classes)) > 0
                entry["macro_f1"] = float(np.mean(np.asarray(scores["f1"])[present]))
            per[spec.name] = entry
        scored = [e for e in per.values() if e["accuracy"] is not None]
        aucs = [e["auc"] for e in scored if e.get("auc") is not None]
        f1s = [e["macro_f1"] for e in scored if e.get("macro_f1") is not None]
        mean = {"accuracy": float(np.mean([e["accuracy"] for e in scored])) if scored else None,
                "auc": float(np.mean(aucs)) if aucs else None, "macro_f1": float(np.mean(f1s)) if f1s else None}
        words = [f"{name} {percent(e['accuracy'])}"
                 + (f" (AUC {e['auc']:.3f})" if e.get("auc") is not None else "")
                 + (f" (macro-F1 {e['macro_f1']:.3f})" if e.get("macro_f1") is not None else "")
                 for name, e in per.items()]
        lines = [f"attributes on the test set ({len(test):,} images): mean accuracy {percent(mean['accuracy'])}",
                 "  " + ";  ".join(words),
                 "each attribute's accuracy counts its known values only; AUC (binary attributes) is the chance "
                 "that a random 'yes' image scores above a random 'no' one, macro-F1 (multiclass ones) averages "
                 "the F1 of each value"]
        names = list(per)
        bars = {"accuracy": [per[n]["accuracy"] for n in names],
                "AUC / macro-F1": [per[n].get("auc", per[n].get("macro_f1")) for n in names]}
        title = f"{config['model']} on {config['dataset']}: attributes (test set)"
        return TaskResult("attributes", {**per, "mean": mean}, lines,
                          {"attributes.png": lambda path: report.plot_attributes(names, bars, path, title)})
