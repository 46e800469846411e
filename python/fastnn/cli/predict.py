"""``fastnn predict CHECKPOINT IMAGE_OR_FOLDER...``: each image's most likely classes, with
probabilities (the softmax of the model's logits), prepared as the checkpoint's run prepared
its training images.

The preparation comes from the checkpoint's ``config["preprocessing"]`` (written by ``fastnn
train``; rebuilt from the older keys ``input_size``, ``in_channels``, ``normalize_mean``,
``normalize_std`` and ``classes`` for checkpoints written before it existed): every file is
decoded, converted to the model's channels (luma for 1, RGB for 3), its shorter side scaled to
the model's image size and the rest centre-cropped (:mod:`fastnn.data.image_folder`), taken as
pixel / 255 and normalised with the run's mean and std. The built-in datasets were scaled to
[0, 1] the same way (the 8x8 digits hold 0..16, divided by 16), so a PNG fits a digits, MNIST or
CIFAR model too; the digits and MNIST were drawn as light strokes on a dark ground, so a dark
digit on white paper must be inverted first.

Images are decoded and classified ``--batch-size`` at a time. Files that cannot be read are
reported on stderr and skipped; the exit status is 1 only when no image could be classified.

Each task's model answers in its own terms: classes (multiclass, binary: "yes"/"no"), each
attribute's value (attributes), or, for the embedding models of verification and
identification, ``--pair A B``: the cosine similarity of the two images and the same/different
decision at the EER threshold the run measured on its unseen identities (stored in best.fastnn,
or read from the run's report.json next to the checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import numpy as np

import fastnn
from fastnn import data, nn, ops
from fastnn.cli import tasks
from fastnn.cli.common import CLIError, int_at_least
from fastnn.data.image_folder import find_images, load_images

# How the image folder reader and this command resize: the shorter side to the model's size,
# then a centred square cut from the longer side (fastnn.data.image_folder).
RESIZE = "shorter_side_then_center_crop"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds ``predict`` and its options to the subcommands ``sub``."""
    pr = sub.add_parser("predict", help="classify image files with a saved model",
                        description="Top-k classes and probabilities of each image (files, or folders walked "
                                    "recursively), prepared as the checkpoint's training images were.")
    pr.add_argument("checkpoint")
    pr.add_argument("images", nargs="*", metavar="IMAGE_OR_FOLDER")
    pr.add_argument("--pair", nargs=2, metavar=("A", "B"),
                    help="verification and identification models: are A and B the same identity? (the cosine "
                         "similarity of their embeddings, and the decision at the run's EER threshold)")
    pr.add_argument("--top-k", type=int_at_least(1), default=3, help="classes shown per image (default 3)")
    pr.add_argument("--json", action="store_true",
                    help="print one JSON document: a list of {path, top_k: [{class, probability}]}")
    pr.add_argument("--batch-size", type=int_at_least(1), default=256, help="images decoded and classified at once")
    pr.add_argument("--threads", type=int_at_least(1), help="CPU threads (default: all cores)")
    pr.set_defaults(handler=run)
    return pr


def preprocessing(config: dict[str, Any]) -> dict[str, Any]:
    """What a run did to an image before its model saw it, from a ``fastnn train`` config:
    ``image_size``, ``channels``, ``resize`` (:data:`RESIZE`), ``normalize_mean`` and
    ``normalize_std`` (per channel, applied to pixel / 255) and ``classes`` (the names of the
    model's outputs, in order). ``fastnn train`` stores it as ``config["preprocessing"]``; for
    older checkpoints it is rebuilt from the config's ``input_size``, ``in_channels``,
    ``normalize_mean``, ``normalize_std`` and ``classes``."""
    saved = config.get("preprocessing")
    if isinstance(saved, dict):
        return saved
    try:
        return {"image_size": int(config["input_size"]), "channels": int(config["in_channels"]), "resize": RESIZE,
                "normalize_mean": list(config["normalize_mean"]),
                "normalize_std": list(config["normalize_std"]), "classes": [str(c) for c in config["classes"]]}
    except (KeyError, TypeError, ValueError) as e:
        raise CLIError(f"the checkpoint's run configuration lacks its image preparation ({e}); it was not written "
                       "by `fastnn train`") from None


def load_predictor(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """The model saved in checkpoint ``path`` (eval mode) and its :func:`preprocessing`."""
    ck = fastnn.load(path)
    config = ck.get("config")
    if not isinstance(config, dict):
        raise CLIError(f"{path} holds no run configuration (it was not written by `fastnn train`)")
    prep = dict(preprocessing(config), task=config.get("task") or "multiclass")
    if config.get("attribute_specs"):
        prep["attribute_specs"] = config["attribute_specs"]
    prep["threshold"] = config.get("verification_threshold")
    if prep["threshold"] is None and prep["task"] in EMBEDDING_TASKS:
        prep["threshold"] = _report_threshold(path)
    model = tasks.task_for(config).model(config)
    fastnn.restore(ck, model, rng=False)
    model.eval()
    return model, prep


EMBEDDING_TASKS = ("verification", "identification")


def _report_threshold(path: str) -> float | None:
    """The EER threshold in the report.json of the run folder holding checkpoint ``path``."""
    from pathlib import Path

    try:
        final = json.loads((Path(path).parent / "report.json").read_text())["final"]
        return float(final[final["task"]]["eer_threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def classify(model: nn.Module, prep: dict[str, Any], paths: Sequence[str], top_k: int,
             batch_size: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """``[{"path", "top_k": [{"class", "probability"}]}]`` for each image that decodes, in the
    order given, and ``(path, reason)`` for each that does not."""
    normalize = data.Normalize(prep["normalize_mean"], prep["normalize_std"])
    classes = prep["classes"]
    k = min(top_k, len(classes))
    results, skipped = [], []
    for start in range(0, len(paths), batch_size):
        x, kept, bad = load_images(paths[start:start + batch_size], prep["image_size"], prep["channels"])
        skipped += bad
        if not kept:
            continue
        out = model(normalize(x))
        if isinstance(out, dict):  # an attribute model: each attribute's value
            results += [{"path": path, "attributes": attributes} for path, attributes in
                        zip(kept, _attribute_values(out, prep["attribute_specs"]))]
            continue
        probabilities = np.asarray(ops.softmax(out), dtype=np.float64)
        best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        for path, row, order in zip(kept, probabilities, best):
            top = [{"class": classes[c], "probability": float(row[c])} for c in order]
            results.append({"path": path, "top_k": top})
    return results, skipped


def _attribute_values(outputs: dict[str, Any], specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per image, ``{attribute: {"value", "probability"}}``: a binary attribute's p(yes) gives
    "yes" from 0.5, a multiclass one's most likely value."""
    n = len(next(iter(outputs.values())))
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for spec in specs:
        logits = np.asarray(outputs[spec["name"]], dtype=np.float64)
        if spec["kind"] == "binary":
            p_yes = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            chosen = (p_yes >= 0.5).astype(int)
            probability = np.where(chosen == 1, p_yes, 1.0 - p_yes)
        else:
            p = np.asarray(ops.softmax(np.ascontiguousarray(logits)), dtype=np.float64)
            chosen, probability = p.argmax(axis=1), p.max(axis=1)
        for row, c, q in zip(rows, chosen, probability):
            row[spec["name"]] = {"value": spec["classes"][int(c)], "probability": float(q)}
    return rows


def compare_pair(model: nn.Module, prep: dict[str, Any], first: str, second: str) -> dict[str, Any]:
    """``{"a", "b", "similarity", "threshold", "same"}`` for two image files: the cosine of their
    embeddings and, where the run's threshold is known, whether they are the same identity."""
    normalize = data.Normalize(prep["normalize_mean"], prep["normalize_std"])
    x, kept, bad = load_images([first, second], prep["image_size"], prep["channels"])
    if bad:
        raise CLIError(f"--pair: cannot read {bad[0][0]}: {bad[0][1]}")
    e = np.ascontiguousarray(model(normalize(x)))
    similarity = float(ops.pairwise_similarity(e[:1], e[1:], metric="cosine")[0, 0])
    threshold = prep.get("threshold")
    return {"a": first, "b": second, "similarity": similarity, "threshold": threshold,
            "same": None if threshold is None else bool(similarity >= threshold)}


def _text(result: dict[str, Any]) -> str:
    if "attributes" in result:
        return f"{result['path']}: " + ", ".join(
            f"{name} {v['value']} ({100 * v['probability']:.1f}%)" for name, v in result["attributes"].items())
    return f"{result['path']}: " + ", ".join(f"{p['class']} ({100 * p['probability']:.1f}%)" for p in result["top_k"])


def _pair_text(result: dict[str, Any]) -> str:
    head = f"{result['a']} vs {result['b']}: similarity {result['similarity']:.4f}"
    if result["threshold"] is None:
        return head + " (no stored threshold: the run's best.fastnn or report.json holds it)"
    verdict = "same identity" if result["same"] else "different identities"
    return head + f" -> {verdict} (threshold {result['threshold']:.4f}, the run's equal-error-rate point)"


def run(args: argparse.Namespace) -> int:
    """Runs ``fastnn predict``; returns the exit status."""
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    model, prep = load_predictor(args.checkpoint)
    embeddings = prep["task"] in EMBEDDING_TASKS
    if args.pair:
        if not embeddings:
            raise CLIError(f"--pair compares two images with a verification or identification model; "
                           f"{args.checkpoint} is a {prep['task']} model")
        try:
            result = compare_pair(model, prep, *args.pair)
        except ImportError as e:
            raise CLIError(str(e)) from None
        print(json.dumps(result, indent=1) if args.json else _pair_text(result))
        return 0
    if embeddings:
        raise CLIError(f"{args.checkpoint} is a {prep['task']} model: it embeds images rather than naming "
                       "classes; compare two with --pair A B")
    if not args.images:
        raise CLIError("name at least one IMAGE_OR_FOLDER (or --pair A B for a verification model)")
    paths, missing = find_images(args.images)
    skipped = [(path, "no such file or folder") for path in missing]
    try:
        results, bad = classify(model, prep, paths, args.top_k, args.batch_size)
    except ImportError as e:  # Pillow missing: the message names the extra
        raise CLIError(str(e)) from None
    skipped += bad
    for path, reason in skipped:
        print(f"fastnn: warning: skipped {path}: {reason}", file=sys.stderr)
    if not results:
        raise CLIError(f"no image could be classified ({len(paths)} image files found in "
                       f"{', '.join(args.images)}, {len(skipped)} skipped)")
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
    else:
        print("\n".join(map(_text, results)))
    return 0


__all__ = ["RESIZE", "add_parser", "classify", "load_predictor", "preprocessing", "run"]
