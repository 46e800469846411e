"""Datasets, the DataLoader and batch transforms.

Every dataset function returns ``(train, test)`` :class:`ArrayDataset` objects: ``.x`` float32
(N, C, H, W) in [0, 1], ``.y`` int64.
"""

from fastnn.data.cifar import cifar10, cifar100
from fastnn.data.dataset import ArrayDataset, stratified_indices, stratified_split
from fastnn.data.digits import digits
from fastnn.data.files import DatasetError, DatasetNotFoundError
from fastnn.data.image_folder import ImageFolderDataset, ImageFolderWarning, image_folder, load_images
from fastnn.data.loader import DataLoader
from fastnn.data.mnist import mnist, read_idx
from fastnn.data.transforms import Compose, Normalize, RandomAffine, RandomCrop, RandomHorizontalFlip

__all__ = [
    "ArrayDataset",
    "Compose",
    "DataLoader",
    "DatasetError",
    "DatasetNotFoundError",
    "Normalize",
    "RandomAffine",
    "RandomCrop",
    "RandomHorizontalFlip",
    "cifar10",
    "cifar100",
    "digits",
    "mnist",
    "read_idx",
    "stratified_indices",
    "stratified_split",
    "ImageFolderDataset",
    "ImageFolderWarning",
    "image_folder",
    "load_images",
]
