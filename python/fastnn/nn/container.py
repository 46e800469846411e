"""Containers."""

from __future__ import annotations

from typing import Iterator

from fastnn._backend import Array
from fastnn.nn.module import Module


class Sequential(Module):
    """Runs its modules in order; backward runs them in reverse."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"fastnn.nn.Sequential: argument {i} must be a Module; got {type(m).__name__}")
            setattr(self, str(i), m)

    def forward(self, x: Array) -> Array:
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_out: Array) -> Array:
        for m in reversed(list(self._modules.values())):
            grad_out = m.backward(grad_out)
        return grad_out

    def backward_params(self, grad_out: Array) -> None:
        """Parameter gradients only: the leading modules without parameters (Flatten...) get
        no backward call, and the first one with parameters skips its input gradient."""
        modules = list(self._modules.values())
        first = next((i for i, m in enumerate(modules) if any(True for _ in m.parameters())), len(modules))
        for m in reversed(modules[first + 1:]):
            grad_out = m.backward(grad_out)
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
