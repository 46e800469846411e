"""Metrics over NumPy arrays, NumPy in and NumPy out, in scikit-learn's argument order: the
true labels first (``y_true``), then the predictions (``y_pred``) or scores (``y_score``).

- multiclass: :func:`accuracy`, :func:`top_k_accuracy`, :func:`confusion_matrix`,
  :func:`precision_recall_f1` (module ``_classification``);
- binary and verification: :func:`roc_curve`, :func:`roc_auc`, :func:`precision_recall_curve`,
  :func:`average_precision`, :func:`equal_error_rate`, :func:`tar_at_far`,
  :func:`best_threshold_accuracy` (``_ranking``);
- identification: :func:`cmc`, :func:`dir_at_far` (``_identification``);
- multi-label attributes, with -1 = unknown: :func:`hamming_loss`,
  :func:`average_precision_per_label`, :func:`mean_average_precision`, :func:`f1_multilabel`
  (``_multilabel``).

Each function's docstring says in its first line what the number means.
"""

from __future__ import annotations

from ._classification import (accuracy, confusion_matrix, precision_recall_f1, predictions, top_k_accuracy,
                              top_k_correct)
from ._identification import cmc, dir_at_far
from ._multilabel import average_precision_per_label, f1_multilabel, hamming_loss, mean_average_precision
from ._ranking import (average_precision, best_threshold_accuracy, equal_error_rate, precision_recall_curve, roc_auc,
                       roc_curve, tar_at_far)

__all__ = [
    "accuracy", "average_precision", "average_precision_per_label", "best_threshold_accuracy", "cmc",
    "confusion_matrix", "dir_at_far", "equal_error_rate", "f1_multilabel", "hamming_loss",
    "mean_average_precision", "precision_recall_curve", "precision_recall_f1", "predictions", "roc_auc",
    "roc_curve", "tar_at_far", "top_k_accuracy", "top_k_correct",
]
