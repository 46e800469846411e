"""What a training run leaves behind: the confusion matrix as text, ``report.json`` and, when
matplotlib is installed, ``curves.png`` and ``confusion.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fastnn._atomic import atomic_path, write_bytes_atomic


def format_confusion(confusion: np.ndarray, classes: Sequence[str]) -> str:
    """The confusion matrix as a text table (rows: true class, columns: predicted class),
    columns headed by class index, with a legend when class names are not their indices."""
    k = confusion.shape[0]
    width = max(len(str(int(confusion.max(initial=0)))), len(str(k - 1))) + 1
    label_width = max(len(str(k - 1)), 4)
    lines = ["confusion matrix (rows: true class, columns: predicted class)",
             " " * (label_width + 1) + "".join(f"{j:>{width}}" for j in range(k))]
    for i in range(k):
        lines.append(f"{i:>{label_width}} " + "".join(f"{int(v):>{width}}" for v in confusion[i]))
    if list(classes) != [str(i) for i in range(k)]:
        lines.append("classes: " + ", ".join(f"{i} {name}" for i, name in enumerate(classes)))
    return "\n".join(lines)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} to report.json")


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Writes ``report`` as indented JSON, atomically (NumPy values become lists and numbers)."""
    write_bytes_atomic(path, (json.dumps(report, indent=2, default=_json_default) + "\n").encode())


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None when matplotlib is absent."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


SET_LABELS: dict[str, str] = {"val": "validation", "test": "test"}
"""How :func:`plot_curves` labels the per-epoch evaluation, by the prefix of its record keys."""


def plot_curves(records: Sequence[dict], path: Path, title: str, val_name: str = "val",
                kept_epoch: int | None = None) -> bool:
    """Loss and accuracy per epoch on the training images and on the set evaluated after each
    epoch, read from the records' ``{val_name}_loss`` and ``{val_name}_accuracy`` and labelled
    by that set's name (``"val"``: "validation", ``"test"``: "test"). ``kept_epoch`` draws a
    dotted line at the epoch whose weights were kept. False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    epochs = [r["epoch"] for r in records]
    evaluated = SET_LABELS.get(val_name, val_name)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "training"), (f"{val_name}_loss", evaluated)):
        values = [r.get(key) for r in records]
        if all(v is not None for v in values):
            ax_loss.plot(epochs, values, marker="o", markersize=3, label=label)
    for key, label in (("train_accuracy", "training"), (f"{val_name}_accuracy", evaluated)):
        values = [r.get(key) for r in records]
        if all(v is not None for v in values):
            ax_acc.plot(epochs, [100 * v for v in values], marker="o", markersize=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss (cross-entropy)", title="loss")
    if all(v > 0 for line in ax_loss.get_lines() for v in line.get_ydata()):
        # Log scale: on a linear one the losses of a good run hug zero after the first epochs,
        # hiding the gap between training and validation loss that shows memorising.
        ax_loss.set_yscale("log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        if kept_epoch is not None:
            ax.axvline(kept_epoch, color="grey", linestyle=":", label=f"kept (epoch {kept_epoch})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    _save_figure(fig, path)
    plt.close(fig)
    return True


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: Path, title: str) -> bool:
    """The confusion matrix as a heat map of row fractions (each row: where the images of one
    true class went), counts written in the cells for up to 20 classes. False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    k = confusion.shape[0]
    totals = confusion.sum(axis=1, keepdims=True)
    fractions = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    size = min(4 + 0.45 * k, 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if confusion[i, j]:
                    ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=11 if k <= 12 else 8,
                            color="white" if fractions[i, j] > 0.5 else "black")
        long_names = max(len(c) for c in classes) > 2
        ax.set_xticks(range(k), list(classes), rotation=45 if long_names else 0, ha="right" if long_names else "center")
        ax.set_yticks(range(k), list(classes))
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    _save_figure(fig, path)
    plt.close(fig)
    return True


# The pictures of the other tasks (binary, attributes, verification, identification) -------------

def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path, title: str,
             marks: dict[str, tuple[float, float, str]] | None = None) -> bool:
    """ROC curves: the true-accept (or true-positive) rate against the false-accept rate, one
    line per ``label -> (fpr, tpr, auc)``, the diagonal of chance, and optional ``marks``
    (``label -> (fpr, tpr, text)``: an operating point such as the EER). The false-accept axis is
    logarithmic where the curves reach small rates, since that end is where deployments work.
    False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, (ax_lin, ax_log) = plt.subplots(1, 2, figsize=(10, 4.2))
    for label, (fpr, tpr, auc) in curves.items():
        for ax in (ax_lin, ax_log):
            ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax_lin.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    for label, (fpr, tpr, text) in (marks or {}).items():
        ax_lin.plot([fpr], [tpr], marker="o", color="black")
        ax_lin.annotate(text, (fpr, tpr), textcoords="offset points", xytext=(8, -12), fontsize=8)
    ax_lin.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax_log.set_xscale("log")
    # Down to half the smallest false-positive rate the negatives can resolve (1 / their count).
    resolved = [float(np.min(fpr[fpr > 0])) for fpr, _, _ in curves.values() if np.any(fpr > 0)]
    ax_log.set(xlabel="false positive rate (log)", ylabel="true positive rate", title="ROC, small false-positive rates",
               xlim=(min(resolved, default=1e-4) / 2, 1), ylim=(0, 1.01))
    for ax in (ax_lin, ax_log):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    _save_figure(fig, path)
    plt.close(fig)
    return True


def plot_score_histogram(genuine: np.ndarray, impostor: np.ndarray, threshold: float, path: Path, title: str,
                         threshold_label: str = "EER threshold") -> bool:
    """Histograms of the similarity of genuine pairs (same identity) and impostor pairs
    (different identities), with the decision threshold drawn: the overlap of the two is what
    the verifier gets wrong. False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    scores = np.concatenate([genuine, impostor])
    bins = np.linspace(float(scores.min()), float(scores.max()), 41) if scores.size else 10
    ax.hist(impostor, bins=bins, alpha=0.6, density=True, label=f"different identity ({len(impostor):,} pairs)")
    ax.hist(genuine, bins=bins, alpha=0.6, density=True, label=f"same identity ({len(genuine):,} pairs)")
    ax.axvline(threshold, color="black", linestyle="--", label=f"{threshold_label} {threshold:.3f}")
    ax.set(xlabel="similarity (cosine)", ylabel="density", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save_figure(fig, path)
    plt.close(fig)
    return True


def plot_cmc(curves: dict[str, np.ndarray], path: Path, title: str) -> bool:
    """Cumulative match characteristic: the fraction of probes whose identity is among the
    gallery's k best matches, for k = 1, 2, ...; one line per ``label -> rates``. False without
    matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, rates in curves.items():
        ranks = np.arange(1, len(rates) + 1)
        ax.plot(ranks, 100 * np.asarray(rates), marker="o", markersize=3, label=f"{label} (rank-1 {100 * rates[0]:.1f}%)")
    ax.set(xlabel="rank k", ylabel="identification rate at rank k (%)", title=title, ylim=(0, 101))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _save_figure(fig, path)
    plt.close(fig)
    return True


def plot_attributes(names: Sequence[str], bars: dict[str, Sequence[float | None]], path: Path, title: str) -> bool:
    """One group of bars per attribute, one bar per metric (``metric -> value per attribute``,
    values in [0, 1]; None leaves a gap). False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    k = len(names)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * k + 2), 4))
    width = 0.8 / max(len(bars), 1)
    for i, (metric, values) in enumerate(bars.items()):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(k)]
        heights = [100 * v if v is not None else 0 for v in values]
        drawn = ax.bar(xs, heights, width, label=metric)
        for bar, v in zip(drawn, values):
            if v is not None:
                ax.annotate(f"{100 * v:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(k), list(names), rotation=30 if max(map(len, names), default=0) > 8 else 0, ha="right")
    ax.set(ylabel="%", title=title, ylim=(0, 105))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="lower right")
    _save_figure(fig, path)
    plt.close(fig)
    return True
