"""Optimisers (SGD, Adam, AdamW) over fused in-place update kernels, and learning-rate
schedules in :mod:`fastnn.optim.lr`."""

from fastnn.optim import lr
from fastnn.optim.optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr"]
