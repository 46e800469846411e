"""Ready-made classifiers, built by name from the command line (``--model``).

Every builder takes ``in_channels``, ``num_classes`` and ``input_size`` (the side of the square
input images) so that one call shape serves every dataset.

Every builder also takes ``embedding_dim``: set, it builds an embedding network (for
verification and identification, trained with a metric-learning loss such as ArcFace): the
same trunk, ending in a Linear projection to ``embedding_dim`` features in place of the
classifier. ``num_classes`` is then ignored (the classes a metric-learning loss separates live
in the loss, e.g. ArcFace's class centres, not in the network). :func:`split_head` cuts a
built classifier into its trunk and final Linear, e.g. to put other heads on the trunk.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fastnn import nn


def _outputs(builder: str, num_classes: int, embedding_dim: int | None) -> int:
    """The width of the final Linear: the embedding's when one is asked for, else the classes'."""
    if embedding_dim is None:
        return num_classes
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, (int, np.integer)) or embedding_dim < 1:
        raise ValueError(f"fastnn.models.{builder}: argument 'embedding_dim' must be a positive int or None; "
                         f"got {embedding_dim!r}")
    return int(embedding_dim)


def split_head(model: nn.Sequential) -> tuple[nn.Sequential, nn.Linear]:
    """``(trunk, head)`` of a model built here: ``head`` its final Linear (the classifier, or
    the embedding projection) and ``trunk`` a Sequential of every module before it. Both share
    the model's modules (no copy), so training either trains the model. The trunk's output has
    ``head.in_features`` features. TypeError for a model that is not a Sequential ending in a
    Linear."""
    if not isinstance(model, nn.Sequential) or len(model) < 2 or not isinstance(model[-1], nn.Linear):
        raise TypeError(f"fastnn.models.split_head: argument 'model' must be an nn.Sequential ending in an "
                        f"nn.Linear (as every fastnn.models builder returns); got {type(model).__name__}"
                        + (f" ending in {type(model[-1]).__name__}" if isinstance(model, nn.Sequential) and len(model)
                           else ""))
    return nn.Sequential(*list(model)[:-1]), model[-1]


def mlp(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, hidden: Sequence[int] = (256,),
        embedding_dim: int | None = None) -> nn.Sequential:
    """Flatten, then Linear + ReLU per ``hidden`` width, then a Linear classifier (or, with
    ``embedding_dim``, a Linear projection to the embedding; ``num_classes`` is then ignored)."""
    outputs = _outputs("mlp", num_classes, embedding_dim)
    widths = [in_channels * input_size * input_size, *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], outputs))
    return nn.Sequential(*layers)



def _pooled(size: int, times: int) -> int:
    for _ in range(times):
        size //= 2
    return size


def lenet5(in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
           embedding_dim: int | None = None) -> nn.Sequential:
    """LeNet-5 (ReLU and max pooling): conv 6@5x5 - pool - conv 16@5x5 - pool - 120 - 84 - classes
    (or 84 - ``embedding_dim`` for an embedding network; ``num_classes`` is then ignored).

    The first convolution pads smaller inputs up to 32 pixels (31 for odd sizes), so that its
    output is 28x28, as in the classic MNIST variant (padding 2 around 28x28) and the CIFAR one
    (32x32, no padding). Images smaller than MNIST's are padded the same way, as one pads them
    up for LeNet in PyTorch: the 8x8 digits sit in the middle of a 32x32 zero field (which costs
    16x the arithmetic of the image itself, and reaches about 97% on the digits test split).
    """
    if input_size < 1:
        raise ValueError(f"fastnn.models.lenet5: argument 'input_size' must be >= 1; got {input_size}")
    outputs = _outputs("lenet5", num_classes, embedding_dim)
    pad = max(0, (28 - input_size + 4) // 2) if input_size < 32 else 0
    side = (input_size + 2 * pad - 4) // 2  # conv 5x5 then pool 2
    side = (side - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, outputs),
    )


def simple_cnn(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, width: int = 32,
               hidden: int = 128, dropout: float = 0.0, embedding_dim: int | None = None) -> nn.Sequential:
    """A small VGG-style net: [conv3x3 w, conv3x3 w, pool] [conv3x3 2w, conv3x3 2w, pool]
    flatten, Linear(hidden), Linear(classes); ReLU after each conv and the hidden layer. With
    ``embedding_dim`` the last Linear projects to the embedding instead (``num_classes`` ignored).

    With the defaults it is the "4-conv CNN" (32-32-pool-64-64-pool-fc128) of the benchmarks.
    Works for any input of at least 4 pixels (8x8 digits, 28x28 MNIST, 32x32 CIFAR).
    """
    if input_size < 4:
        raise ValueError(f"fastnn.models.simple_cnn: argument 'input_size' must be >= 4; got {input_size}")
    outputs = _outputs("simple_cnn", num_classes, embedding_dim)
    side = _pooled(input_size, 2)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * side * side, hidden), nn.ReLU(),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, outputs))
    return nn.Sequential(*layers)


def _basic_block(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    """ResNet basic block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""
    body = nn.Sequential(
        nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
        nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes),
    )
    shortcut = None
    if stride != 1 or in_planes != planes:
        # Projection shortcut (1x1 conv + BN) where the shape changes.
        shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
    return nn.Sequential(nn.Residual(body, shortcut), nn.ReLU())


def resnet(depth: int = 20, in_channels: int = 3, num_classes: int = 10, input_size: int = 32,
           width: int = 16, embedding_dim: int | None = None) -> nn.Sequential:
    """CIFAR-style ResNet (He et al. 2016, section 4.2): depth = 6n + 2 (20, 32, 44, 56, 110).

    A 3x3 stem of ``width`` channels, three stages of n basic blocks with width, 2*width and
    4*width channels (the last two start with stride 2), global average pooling and a Linear
    classifier (or, with ``embedding_dim``, a Linear projection to the embedding; ``num_classes``
    is then ignored). Any input of at least 4 pixels works (global pooling absorbs the size).
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"fastnn.models.resnet: argument 'depth' must be 6n + 2 (20, 32, 44, ...); got {depth}")
    if input_size < 4:
        raise ValueError(f"fastnn.models.resnet: argument 'input_size' must be >= 4; got {input_size}")
    outputs = _outputs("resnet", num_classes, embedding_dim)
    n = (depth - 2) // 6
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
    ]
    in_planes = width
    for stage, planes in enumerate((width, 2 * width, 4 * width)):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_basic_block(in_planes, planes, stride))
            in_planes = planes
    layers += [nn.GlobalAvgPool2d(), nn.Linear(in_planes, outputs)]
    return nn.Sequential(*layers)


__all__ = ["lenet5", "mlp", "resnet", "simple_cnn", "split_head"]
