"""The image-classification tasks beyond multiclass, as data: NumPy in, NumPy out, seeded.

- binary: :func:`binary_task` relabels a dataset yes/no by a list of positive classes;
- attributes: :func:`attribute_task` (a built-in table per dataset) or
  :func:`read_attribute_csv` (the user's table) give an :class:`AttributeDataset` of images and
  an (N, A) target table described by :class:`AttributeSpec` entries; :func:`multi_head_model`
  puts one head per attribute on a classifier's trunk and :func:`head_spec` gives the matching
  :class:`fastnn.nn.MultiHeadLoss` spec;
- verification and identification on unseen identities: :func:`open_set_split` holds classes
  out of training, :func:`verification_pairs` draws balanced same / different pairs and
  :func:`identification_split` builds a gallery and probes.

Errors are ValueErrors that name the argument and the command-line flag it comes from.
"""

from fastnn.tasks.attributes import (
    ATTRIBUTE_DATASETS,
    BINARY_VALUES,
    AttributeDataset,
    AttributeSpec,
    attribute_specs,
    attribute_task,
    head_spec,
    image_ids,
    multi_head_model,
    read_attribute_csv,
)
from fastnn.tasks.binary import BINARY_CLASSES, binary_task, positive_names
from fastnn.tasks.openset import (
    EVAL_FRACTION,
    IdentificationSplit,
    OpenSetSplit,
    default_eval_classes,
    identification_split,
    open_set_split,
    verification_pairs,
)

__all__ = [
    "ATTRIBUTE_DATASETS",
    "AttributeDataset",
    "AttributeSpec",
    "BINARY_CLASSES",
    "BINARY_VALUES",
    "EVAL_FRACTION",
    "IdentificationSplit",
    "OpenSetSplit",
    "attribute_specs",
    "attribute_task",
    "binary_task",
    "default_eval_classes",
    "head_spec",
    "identification_split",
    "image_ids",
    "multi_head_model",
    "open_set_split",
    "positive_names",
    "read_attribute_csv",
    "verification_pairs",
]
