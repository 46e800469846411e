"""Optimisers (SGD, Adam, AdamW) over fused in-place update kernels."""

from fastnn.optim.optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
