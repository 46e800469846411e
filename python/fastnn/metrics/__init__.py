"""Metrics over NumPy arrays, NumPy in and NumPy out, in scikit-learn's argument order: the
true labels first (``y_true``), then the predictions (``y_pred``) or scores (``y_score``).

- multiclass: :func:`accuracy`, :func:`top_k_accuracy`, :func:`confusion_matrix`,
  :func:`precision_recall_f1` (module ``_classification``).

Each function's docstring says in its first line what the number means.
"""

from __future__ import annotations

from ._classification import (accuracy, confusion_matrix, precision_recall_f1, predictions, top_k_accuracy,
                              top_k_correct)

__all__ = [
    "accuracy", "confusion_matrix", "precision_recall_f1", "predictions", "top_k_accuracy", "top_k_correct",
]
