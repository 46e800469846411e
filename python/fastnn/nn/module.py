"""Parameter and Module: the base of every layer.

fastnn has no autograd. A module's ``forward`` caches what its ``backward`` needs;
``backward(grad_out)`` returns the gradient with respect to the module's input and adds the
gradients of its parameters into their ``.grad`` arrays (allocating them on first use).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, Mapping

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from fastnn._backend import Array
from fastnn._device import parse_device, to_device, to_device_like


def _unwrap(value: Any) -> Any:
    """A Parameter's array in its place (recursing into the tuples NumPy passes ``out`` as)."""
    if isinstance(value, Parameter):
        return value.data
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value


class Parameter(NDArrayOperatorsMixin):
    """A trainable array (``.data``) and its gradient (``.grad``, None until a backward).

    Where NumPy (or CuPy) asks for an array, a Parameter gives its data: ``np.asarray(p)``
    (``__array__``), ufuncs and operators (``p * 2``, ``np.exp(p)``, ``p @ x``: plain arrays
    come back, never Parameters), ``len(p)``, ``p[i]``, and ``__cuda_array_interface__`` when the
    data is a CuPy array (``cupy.asarray(p)``). In-place operators (``p *= 0.5``) write into
    ``.data`` and keep the Parameter. ``==`` stays identity, so parameters remain usable as
    dict keys (optimiser state); compare ``p.data`` for element-wise equality.
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: Array) -> None:
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            raise TypeError(f"fastnn.nn.Parameter: argument 'data' must be an array; got {type(data).__name__}")
        self.data = data
        self.grad: Array | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The data's shape."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """The data's dtype."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """The data's element count."""
        return int(self.data.size)

    @property
    def ndim(self) -> int:
        """The data's number of axes."""
        return int(self.data.ndim)

    def accumulate_grad(self, grad: Array) -> None:
        """Adds ``grad`` into ``.grad`` (adopting ``grad`` itself when ``.grad`` is None)."""
        if self.grad is None:
            self.grad = grad
        elif self.grad is not grad:
            self.grad += grad

    # NumPy interoperability -----------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The data as a NumPy array (no copy unless ``dtype`` or ``copy`` asks for one). A
        CuPy array refuses implicit conversion: use ``p.data.get()`` or ``cupy.asarray(p)``."""
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return np.asarray(self.data, dtype=dtype)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """Runs ``ufunc`` on the data of every Parameter among its arguments; the result is a
        plain array (or, for ``out=`` a Parameter, that Parameter, as NumPy returns ``out``)."""
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _unwrap(out)
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if out is not None and len(out) == 1 and isinstance(out[0], Parameter):
            return out[0]
        return result

    @property
    def __cuda_array_interface__(self) -> dict:
        """The CuPy data's interface (AttributeError for NumPy data, as for a NumPy array)."""
        try:
            return self.data.__cuda_array_interface__
        except AttributeError:
            raise AttributeError(
                "fastnn.nn.Parameter: __cuda_array_interface__ exists only for data on the GPU; "
                f"this one is a {type(self.data).__module__}.{type(self.data).__name__}"
            ) from None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: Any) -> Array:
        return self.data[index]

    # Identity, not element-wise, so that parameters work as dict keys and in ``in`` tests.
    __eq__ = object.__eq__  # type: ignore[assignment]
    __ne__ = object.__ne__  # type: ignore[assignment]
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class of layers and containers (PyTorch-shaped, explicit backward).

    Subclasses implement ``forward(x)`` and ``backward(grad_out)``; assigning a
    :class:`Parameter` or a Module to an attribute registers it, and
    :meth:`register_buffer` registers non-trainable state (e.g. running statistics) that
    belongs in the state dict.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # registration ---------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        # A Parameter (Module) replacing one keeps its place in the table, so the state dict's
        # order survives ``layer.weight = ...`` and in-place operators (``layer.weight *= 2``).
        keep = self._parameters if isinstance(value, Parameter) else self._modules if isinstance(value, Module) else None
        for table in (self._parameters, self._modules, self._buffers):
            if table is not keep:
                table.pop(name, None)
        if keep is not None:
            keep[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: Array) -> None:
        """Registers ``array`` as state saved in :meth:`state_dict` but not trained."""
        object.__setattr__(self, name, array)
        self._buffers[name] = array

    def _set_buffer(self, name: str, array: Array) -> None:
        object.__setattr__(self, name, array)
        self._buffers[name] = array

    # computation ----------------------------------------------------------------------
    def forward(self, x: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_out: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def backward_params(self, grad_out: Array) -> None:
        """Like :meth:`backward` when nobody needs the input's gradient (a training step on
        data): accumulates the parameter gradients only. Layers that can skip the input
        gradient's work (Linear, Conv2d: a third of their backward FLOPs) override this."""
        self.backward(grad_out)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # traversal ------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, each parameter once even if shared."""
        seen: set[int] = set()
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Array]]:
        for mod_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    # modes ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Sets training mode (BatchNorm batch statistics, Dropout active) here and below."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode: running statistics, no dropout."""
        return self.train(False)

    def to(self, device: str) -> "Module":
        """Moves every parameter (with its gradient) and buffer to ``device`` — ``"cpu"`` (NumPy
        arrays), ``"cuda"`` (CuPy arrays on the current GPU) or ``"cuda:<index>"`` — in place, and
        returns self. Parameters stay the same objects, so an optimizer built earlier keeps
        working: its state follows the parameters at its next step. RuntimeError when the CUDA
        backend is not available."""
        kind, index = parse_device(device, f"fastnn.nn.{type(self).__name__}.to")
        if kind == "cuda":
            from fastnn import cuda

            if not cuda.is_available():
                raise RuntimeError(
                    f"fastnn.nn.{type(self).__name__}.to({device!r}): the CUDA backend is not available: "
                    f"{cuda.unavailable_reason()}"
                )
        for p in self.parameters():
            p.data = to_device(p.data, kind, index)
            if p.grad is not None:
                p.grad = to_device(p.grad, kind, index)
        for module in self.modules():
            for name, buffer in list(module._buffers.items()):
                module._set_buffer(name, to_device(buffer, kind, index))
        return self

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zeroes every parameter's ``.grad`` in place (or drops it with ``set_to_none``)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.fill(0)

    # state ----------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, Array]":
        """Copies of every parameter and buffer, by dotted name."""
        state: OrderedDict[str, Array] = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = b.copy()
        return state

    def load_state_dict(self, state: Mapping[str, Array], strict: bool = True) -> None:
        """Copies arrays from ``state`` into the parameters and buffers, in place.

        Shapes must match exactly; values are cast to each target's dtype. With ``strict``
        (the default) missing or unexpected keys raise KeyError naming them.
        """
        owner = type(self).__name__
        targets: dict[str, Array] = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        if strict:
            missing = [k for k in targets if k not in state]
            unexpected = [k for k in state if k not in targets]
            if missing or unexpected:
                raise KeyError(
                    f"{owner}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
                )
        for name, target in targets.items():
            if name not in state:
                continue
            value = state[name]
            if tuple(np.shape(value)) != tuple(target.shape):
                raise ValueError(
                    f"{owner}.load_state_dict: '{name}' must have shape {tuple(target.shape)}; "
                    f"got {tuple(np.shape(value))}"
                )
            value = to_device_like(value, target)
            if hasattr(target, "__cuda_array_interface__"):
                target[...] = value.astype(target.dtype, copy=False)
            else:
                np.copyto(target, value, casting="unsafe")

    # display --------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        return head + "\n" + "\n".join(children) + "\n)"


def forward_cache_missing(module: Module) -> RuntimeError:
    """The error every layer raises when backward runs before forward."""
    return RuntimeError(f"{type(module).__name__}.backward called before forward")
