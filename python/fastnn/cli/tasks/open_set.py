"""``--task verification`` ("are these two images of the same identity?") and ``--task
identification`` (which enrolled identity is this, if any?).

Both train an embedding network (the model's trunk ending in a Linear to ``--embedding-dim``
features) with ArcFace loss (or ``--loss triplet``) on the training identities, and score it on
identities it never saw: the classes ``--eval-classes`` holds out (default: the last 40%), every
image of them from the training and test sets. That is the open-set protocol, and the numbers
that matter for a deployed verifier. The same scores on the test images of the training
identities (closed set) say how well the network separates what it was trained on; the gap
between the two is what more training identities would close.

Similarity is the cosine of the L2-normalised embeddings. Identification enrolls ``--enroll``
images per identity as one template (the normalised mean of their embeddings); the other
images are the probes, ranked against the templates by :func:`fastnn.ops.similarity_topk`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import data, metrics, nn, recipes, report
from fastnn.cli.common import CLIError, check_model, image_shape
from fastnn.cli.tasks.base import Task, TaskResult, as_class_refs, flag_error, percent, run_model

FARS = (1e-1, 1e-2, 1e-3)


def far_key(far: float) -> str:
    return f"{far:.0e}".replace("e-0", "e-")


def _normalized(embeddings: np.ndarray) -> np.ndarray:
    """Unit-length rows (float32), by fastnn's own kernel."""
    from fastnn import ops

    return ops.l2_normalize(np.ascontiguousarray(embeddings, dtype=np.float32))


def _concat(a: data.ArrayDataset, b: data.ArrayDataset) -> data.ArrayDataset:
    return data.ArrayDataset(np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]), classes=list(a.classes))


class EmbeddingTask(Task):
    """What verification and identification share: the open-set split, the embedding network,
    its loss, and embedding a dataset."""

    def check(self, config: dict[str, Any]) -> None:
        if config.get("positive"):
            raise CLIError("--positive applies to --task binary only")
        if config.get("loss") == "triplet":
            self.monitors = ("val_loss",)
        super().check(config)

    def select(self, train: data.ArrayDataset, test: data.ArrayDataset,
               config: dict[str, Any]) -> tuple[data.ArrayDataset, data.ArrayDataset]:
        from fastnn.tasks import open_set_split

        try:
            train_split = open_set_split(train, as_class_refs(config.get("eval_classes")))
            test_split = open_set_split(test, [int(c) for c in train_split.eval_classes])
        except ValueError as e:
            raise flag_error(e) from None
        self.unseen = _concat(train_split.heldout, test_split.heldout)
        self.train_images = train_split.train
        config["eval_class_names"] = [train.classes[c] for c in train_split.eval_classes]
        config["train_class_names"] = [train.classes[c] for c in train_split.train_classes]
        return train_split.train, test_split.train

    def model(self, config: dict[str, Any]) -> nn.Module:
        check_model(config, image_shape(config))
        try:
            return recipes.build_model(config["model"], image_shape(config), config["num_classes"],
                                       embedding_dim=config["embedding_dim"])
        except recipes.RecipeError as e:
            raise CLIError(f"--model {config['model']} does not fit --dataset {config['dataset']}: {e}") from None

    def loss(self, config: dict[str, Any]) -> nn.Module:
        if config.get("loss") == "triplet":
            return nn.TripletMarginLoss(margin=config["margin"], mining="batch_hard")
        return nn.ArcFaceLoss(config["embedding_dim"], config["num_classes"], s=config["scale"], m=config["margin"])

    def embed(self, model: nn.Module, dataset: data.ArrayDataset, config: dict[str, Any], device: str,
              batch_size: int) -> np.ndarray:
        return _normalized(run_model(model, dataset, config, device, batch_size))

    def gap_text(self, config: dict[str, Any]) -> str:
        return (f"the unseen identities score lower than the {len(config['train_class_names'])} training ones "
                "when the training identities are too few to learn an embedding that generalises: more training "
                "identities is the cure")


def _verification_scores(embeddings: np.ndarray, labels: np.ndarray, pairs: int, seed: int) -> dict[str, Any]:
    from fastnn.tasks import verification_pairs

    _, counts = np.unique(labels, return_counts=True)
    same_available = int((counts * (counts - 1) // 2).sum())
    diff_available = len(labels) * (len(labels) - 1) // 2 - same_available
    pairs = min(pairs, 2 * min(same_available, diff_available))
    i, j, same = verification_pairs(labels, pairs, seed=seed)
    scores = np.einsum("ij,ij->i", embeddings[i].astype(np.float64), embeddings[j].astype(np.float64))
    impostors = int(np.count_nonzero(~same))
    fars = [f for f in FARS if impostors * f >= 1]  # at least one impostor pair can be accepted
    eer, threshold = metrics.equal_error_rate(same, scores)
    accuracy, spread, _ = metrics.best_threshold_accuracy(same, scores, folds=10, seed=seed)
    fpr, tpr, _ = metrics.roc_curve(same, scores)
    result = {
        "auc": metrics.roc_auc(same, scores), "eer": eer, "eer_threshold": threshold,
        "tar_at_far": {far_key(f): float(v) for f, v in zip(fars, np.atleast_1d(metrics.tar_at_far(same, scores, fars)))}
        if fars else {},
        "accuracy_10fold": accuracy, "accuracy_10fold_std": spread,
        "pairs": int(pairs), "same_pairs": int(np.count_nonzero(same)), "different_pairs": impostors,
        "images": int(len(labels)), "identities": int(len(counts)),
    }
    return {"report": result, "roc": (fpr, tpr, result["auc"]), "genuine": scores[same], "impostor": scores[~same]}


def _summary(result: dict[str, Any]) -> str:
    tars = "  ".join(f"TAR {percent(v)} at FAR {k}" for k, v in result["tar_at_far"].items())
    return (f"AUC {result['auc']:.3f}  EER {percent(result['eer'])}  {tars}  10-fold accuracy "
            f"{percent(result['accuracy_10fold'])}")


class VerificationTask(EmbeddingTask):
    name = "verification"

    def score(self, model: nn.Module, loss: nn.Module, test: Any, config: dict[str, Any], device: str,
              batch_size: int) -> TaskResult:
        seed, pairs = config["seed"], config["pairs"]
        try:
            open_set = _verification_scores(self.embed(model, self.unseen, config, device, batch_size),
                                             self.unseen.y, pairs, seed)
            closed = _verification_scores(self.embed(model, test, config, device, batch_size), test.y, pairs, seed)
        except ValueError as e:
            raise flag_error(e) from None
        result = {**open_set["report"], "eval_classes": config["eval_class_names"], "closed_set": closed["report"]}
        o, c = open_set["report"], closed["report"]
        lines = [f"verification on {o['identities']} unseen identities ({', '.join(config['eval_class_names'])}; "
                 f"{o['pairs']:,} pairs of {o['images']:,} images): {_summary(o)}",
                 f"closed set (test images of the {c['identities']} training identities, {c['pairs']:,} pairs): "
                 f"{_summary(c)}",
                 f"EER {percent(o['eer'])}: at the threshold (cosine {o['eer_threshold']:.3f}) where false accepts "
                 f"equal false rejects, {percent(o['eer'])} of the unseen pairs are misjudged; {self.gap_text(config)}"]
        title = f"{config['model']} on {config['dataset']}: verification"
        curves = {"unseen identities": open_set["roc"], "training identities": closed["roc"]}
        return TaskResult("verification", result, lines, {
            "roc.png": lambda path: report.plot_roc(curves, path, title),
            "scores.png": lambda path: report.plot_score_histogram(
                open_set["genuine"], open_set["impostor"], o["eer_threshold"], path,
                f"{title}: unseen identities"),
        })


def _templates(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One template per identity: the normalised mean of its images' embeddings."""
    identities, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(identities), embeddings.shape[1]))
    np.add.at(sums, inverse, embeddings)
    return _normalized(sums), identities


def _identification_scores(probes: np.ndarray, probe_labels: np.ndarray, gallery: np.ndarray,
                           gallery_labels: np.ndarray, unknown: int) -> dict[str, Any]:
    from fastnn import ops

    templates, identities = _templates(gallery, gallery_labels)
    max_rank = min(10, len(identities))
    top = ops.similarity_topk(probes, templates, max_rank, metric="cosine")
    curve = metrics.cmc(top, probe_labels, identities, max_rank=max_rank)
    mated = np.isin(probe_labels, identities)
    result = {"rank1": float(curve[0]), "rank5": float(curve[4]) if max_rank >= 5 else None,
              "cmc": [float(v) for v in curve], "gallery": int(len(identities)), "gallery_images": int(len(gallery)),
              "probes": int(len(probe_labels)), "mated_probes": int(mated.sum()),
              "non_mated_probes": int((~mated).sum()), "dir_at_far": None}
    if unknown and (~mated).any():
        fars = [f for f in (1e-1, 1e-2) if (~mated).sum() * f >= 1]
        values = np.atleast_1d(metrics.dir_at_far(top, probe_labels, identities, fars)) if fars else []
        result["dir_at_far"] = {far_key(f): float(v) for f, v in zip(fars, values)}
    return result


class IdentificationTask(EmbeddingTask):
    name = "identification"

    def select(self, train: data.ArrayDataset, test: data.ArrayDataset,
               config: dict[str, Any]) -> tuple[data.ArrayDataset, data.ArrayDataset]:
        from fastnn.tasks import identification_split

        selected = super().select(train, test, config)
        try:  # --enroll and --unknown-classes checked before anything is trained or written
            identification_split(self.unseen.y, config["enroll"], config["unknown_classes"], seed=config["seed"])
            identification_split(self.train_images.y, config["enroll"], 0, seed=config["seed"])
        except ValueError as e:
            raise flag_error(e) from None
        return selected

    def score(self, model: nn.Module, loss: nn.Module, test: Any, config: dict[str, Any], device: str,
              batch_size: int) -> TaskResult:
        from fastnn.tasks import identification_split

        enroll, unknown, seed = config["enroll"], config["unknown_classes"], config["seed"]
        try:
            split = identification_split(self.unseen.y, enroll, unknown, seed=seed)
            closed_split = identification_split(self.train_images.y, enroll, 0, seed=seed)
        except ValueError as e:
            raise flag_error(e) from None
        unseen = self.embed(model, self.unseen, config, device, batch_size)
        open_set = _identification_scores(unseen[split.probes], self.unseen.y[split.probes], unseen[split.gallery],
                                          self.unseen.y[split.gallery], unknown)
        gallery = self.embed(model, data.ArrayDataset(self.train_images.x[closed_split.gallery],
                                                      self.train_images.y[closed_split.gallery]),
                             config, device, batch_size)
        closed = _identification_scores(self.embed(model, test, config, device, batch_size), test.y, gallery,
                                        self.train_images.y[closed_split.gallery], 0)
        # The same/different threshold of `fastnn predict --pair`: the EER point of pairs of the
        # unseen images, as a verification run measures it.
        pairs = _verification_scores(unseen, self.unseen.y, 6000, seed)["report"]
        result = {**open_set, "enroll": enroll, "unknown_identities": unknown,
                  "eval_classes": config["eval_class_names"], "eer_threshold": pairs["eer_threshold"],
                  "closed_set": closed}
        o, c = open_set, closed
        dir_text = ("  " + "  ".join(f"DIR {percent(v)} at FAR {k}" for k, v in o["dir_at_far"].items())
                    if o["dir_at_far"] else "")
        lines = [f"identification of unseen identities ({o['gallery']} enrolled with {enroll} images each"
                 + (f", {unknown} never enrolled" if unknown else "") + f"; {o['probes']:,} probes): rank-1 "
                 f"{percent(o['rank1'])}" + (f"  rank-5 {percent(o['rank5'])}" if o["rank5"] is not None else "")
                 + dir_text,
                 f"closed set ({c['gallery']} training identities, {c['probes']:,} test probes): rank-1 "
                 f"{percent(c['rank1'])}" + (f"  rank-5 {percent(c['rank5'])}" if c["rank5"] is not None else ""),
                 f"rank-1 {percent(o['rank1'])}: the best-matching enrolled identity is the right one for "
                 f"{percent(o['rank1'])} of the probes"
                 + ("; DIR at FAR f: the probes identified correctly above the threshold that lets a fraction f "
                    "of the never-enrolled probes through" if o["dir_at_far"] else "") + f"; {self.gap_text(config)}"]
        title = f"{config['model']} on {config['dataset']}: identification"
        curves = {"unseen identities": np.asarray(o["cmc"]), "training identities": np.asarray(c["cmc"])}
        return TaskResult("identification", result, lines,
                          {"cmc.png": lambda path: report.plot_cmc(curves, path, title)})
