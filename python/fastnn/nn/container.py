"""Containers."""

from __future__ import annotations

from typing import Iterator

from fastnn._backend import Array
from fastnn.nn.activation import ReLU
from fastnn.nn.linear import WeightedLayer
from fastnn.nn.module import Module
from fastnn.nn.pool import MaxPool2d


def _unpatched(*modules: Module) -> bool:
    """No forward or backward replaced on the instance (e.g. a hook that wants to see the
    pre-activation or the ReLU's own gradient): such modules are never fused."""
    return not any("forward" in vars(m) or "backward" in vars(m) for m in modules)


def _fuses_with_relu(layer: Module, activation: Module) -> bool:
    """Whether ``layer`` then ``activation`` can run as ``layer.forward_relu``: a Linear or
    Conv2d whose forward no subclass replaced, followed by a plain ReLU."""
    return (
        type(activation) is ReLU
        and isinstance(layer, WeightedLayer)
        and type(layer).forward is WeightedLayer.forward
        and _unpatched(layer, activation)
    )


def _absorbs_relu_backward(activation: Module, pool: Module) -> bool:
    """Whether a plain ReLU followed by a plain MaxPool2d can run its backward as
    ``pool.backward_through_relu``."""
    return type(activation) is ReLU and type(pool) is MaxPool2d and _unpatched(activation, pool)


class Sequential(Module):
    """Runs its modules in order; backward runs them in reverse.

    A Linear or Conv2d directly followed by a ReLU runs as one fused op (the ReLU applied in the
    GEMM's epilogue, saving a pass over the activations), and the backward of a ReLU followed by
    a MaxPool2d masks the pool's smaller gradient instead of the ReLU's; outputs and gradients
    are the same as unfused for finite values. Set ``fuse_relu = False`` to run every module on
    its own.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"fastnn.nn.Sequential: argument {i} must be a Module; got {type(m).__name__}")
            setattr(self, str(i), m)
        self.fuse_relu = True

    def forward(self, x: Array) -> Array:
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            m = modules[i]
            if self.fuse_relu and i + 1 < len(modules) and _fuses_with_relu(m, modules[i + 1]):
                x = m.forward_relu(x)
                modules[i + 1].keep_fused_output(x)
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def backward(self, grad_out: Array) -> Array:
        return self._backward_through(list(self._modules.values()), grad_out)

    def _backward_through(self, modules: list[Module], grad_out: Array) -> Array:
        """Runs the backward of ``modules`` in reverse order."""
        i = len(modules) - 1
        while i >= 0:
            if self.fuse_relu and i > 0 and _absorbs_relu_backward(modules[i - 1], modules[i]):
                grad_out = modules[i].backward_through_relu(grad_out)
                i -= 2
            else:
                grad_out = modules[i].backward(grad_out)
                i -= 1
        return grad_out

    def backward_params(self, grad_out: Array) -> None:
        """Parameter gradients only: the leading modules without parameters (Flatten...) get
        no backward call, and the first one with parameters skips its input gradient."""
        modules = list(self._modules.values())
        first = next((i for i, m in enumerate(modules) if any(True for _ in m.parameters())), len(modules))
        grad_out = self._backward_through(modules[first + 1:], grad_out)
        if first < len(modules):
            modules[first].backward_params(grad_out)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        setattr(self, str(len(self._modules)), module)
        return self
