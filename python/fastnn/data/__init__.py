"""Datasets and loaders."""

from fastnn.data.dataset import ArrayDataset
from fastnn.data.digits import digits

__all__ = ["ArrayDataset", "digits"]
