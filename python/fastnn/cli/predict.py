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
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import numpy as np

import fastnn
from fastnn import data, nn, ops
from fastnn.cli.common import CLIError, build_model, int_at_least
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
    pr.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
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
    prep = preprocessing(config)
    model = build_model(config)
    fastnn.restore(ck, model, rng=False)
    model.eval()
    return model, prep


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
        probabilities = np.asarray(ops.softmax(model(normalize(x))), dtype=np.float64)
        best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        for path, row, order in zip(kept, probabilities, best):
            top = [{"class": classes[c], "probability": float(row[c])} for c in order]
            results.append({"path": path, "top_k": top})
    return results, skipped


def _text(result: dict[str, Any]) -> str:
    return f"{result['path']}: " + ", ".join(f"{p['class']} ({100 * p['probability']:.1f}%)" for p in result["top_k"])


def run(args: argparse.Namespace) -> int:
    """Runs ``fastnn predict``; returns the exit status."""
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    model, prep = load_predictor(args.checkpoint)
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
