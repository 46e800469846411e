"""Ready-made classifiers, built by name from the command line (``--model``).

Every builder takes ``in_channels``, ``num_classes`` and ``input_size`` (the side of the square
input images) so that one call shape serves every dataset.
"""

from __future__ import annotations

from typing import Sequence

from fastnn import nn


def mlp(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, hidden: Sequence[int] = (256,)) -> nn.Sequential:
    """Flatten, then Linear + ReLU per ``hidden`` width, then a Linear classifier."""
    widths = [in_channels * input_size * input_size, *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*layers)


__all__ = ["mlp"]
