"""Parameter and Module: the base of every layer.

fastnn has no autograd. A module's ``forward`` caches what its ``backward`` needs;
``backward(grad_out)`` returns the gradient with respect to the module's input and adds the
gradients of its parameters into their ``.grad`` arrays (allocating them on first use).
The outermost ``Sequential.backward`` returns its input gradient as a :class:`DeferredGradient`,
computed only if used: data needs no gradient (PyTorch's rule for inputs without requires_grad).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from fastnn._backend import Array
from fastnn._device import parse_device, to_device, to_device_like
from fastnn.nn.deferred import _PENDING_GRADIENTS, _before_handing_out


# How many events that may change the module tree or a module's settings have happened in this
# process (train()/eval(), to(), load_state_dict, assigning a Parameter, Module, buffer or public
# attribute). Eval-mode plans (nn/fuse.py) fix which layers they fuse and with what settings, and
# are rebuilt when this count moves; they read every value (weights, statistics) afresh at each
# call, so writes into arrays need no count.
_module_events = 0


def note_modules_changed() -> None:
    """Records that a module's structure or settings may have changed (fastnn calls it wherever
    it changes them), so eval-mode plans are rebuilt (:mod:`fastnn.nn.fuse`)."""
    global _module_events
    _module_events += 1


def modules_version() -> int:
    """The count :func:`note_modules_changed` moves."""
    return _module_events


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

    # ``_grad_zeroed``: zero_grad() asked for zeros and nobody has read or written the array
    # since. The zeros are written when ``.grad`` is next read; a layer's backward instead writes
    # its gradient over the array (grad_for_backward): PyTorch's default zero_grad drops the
    # gradients for the same reason, and here the array (and its memory) stays.
    __slots__ = ("_data", "_grad", "_grad_zeroed")

    def __init__(self, data: Array) -> None:
        """Wraps ``data`` (a NumPy or CuPy array, used as is: no copy); no gradient yet."""
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            raise TypeError(f"fastnn.nn.Parameter: argument 'data' must be an array; got {type(data).__name__}")
        self._data = data
        self._grad: Array | None = None
        self._grad_zeroed = False

    @property
    def data(self) -> Array:
        """The array (written in place by optimisers and by in-place operators)."""
        if _PENDING_GRADIENTS:  # a deferred input gradient that reads this array keeps a copy first
            _before_handing_out(self._data)
        return self._data

    @data.setter
    def data(self, value: Array) -> None:
        self._data = value

    @property
    def grad(self) -> Array | None:
        """The gradient accumulated by backward passes (None until the first one)."""
        if self._grad_zeroed:
            self._grad.fill(0)
            self._grad_zeroed = False
        return self._grad

    @grad.setter
    def grad(self, value: Array | None) -> None:
        self._grad = value
        self._grad_zeroed = False

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Makes ``.grad`` zero (or None with ``set_to_none``), keeping its array. The zeros
        cost nothing until used: the next backward writes its gradient over the array instead
        of adding into it (a pass over the memory saved, twice for a large weight), and a read
        of ``.grad`` before then writes them."""
        if set_to_none:
            self.grad = None
        elif self._grad is not None:
            self._grad_zeroed = True

    def grad_for_backward(self) -> tuple[Array | None, bool]:
        """``(array, accumulate)`` for a backward op's ``grad_*`` argument: the gradient array
        and whether the op must add into it (False after :meth:`zero_grad`: it may overwrite)."""
        return self._grad, not self._grad_zeroed

    @property
    def shape(self) -> tuple[int, ...]:
        """The data's shape."""
        return tuple(self._data.shape)

    @property
    def dtype(self) -> np.dtype:
        """The data's dtype."""
        return self._data.dtype

    @property
    def size(self) -> int:
        """The data's element count."""
        return int(self._data.size)

    @property
    def ndim(self) -> int:
        """The data's number of axes."""
        return int(self._data.ndim)

    def accumulate_grad(self, grad: Array) -> None:
        """Adds ``grad`` into ``.grad`` (adopting ``grad`` itself when ``.grad`` is None)."""
        if self.grad is None:
            self.grad = grad
        elif self.grad is not grad:
            self.grad += grad

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
        """The length of the data's first axis."""
        return len(self._data)

    def __getitem__(self, index: Any) -> Array:
        """``p.data[index]`` (a view or copy of the data, as NumPy indexing gives)."""
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
        """Empty tables of parameters, child modules and buffers; training mode. Subclasses call
        it before assigning any attribute."""
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        """Sets the attribute; a :class:`Parameter` or Module value is also registered under
        ``name`` (and any earlier registration of another kind under that name dropped)."""
        d = self.__dict__
        if "_parameters" not in d:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if (name[:1] == "_" and not isinstance(value, (Parameter, Module)) and name not in d["_parameters"]
                and name not in d["_modules"] and name not in d["_buffers"]):
            # A forward cache (every layer sets a few per step): nothing to register or unregister.
            object.__setattr__(self, name, value)
            return
        # A Parameter (Module) replacing one keeps its place in the table, so the state dict's
        # order survives ``layer.weight = ...`` and in-place operators (``layer.weight *= 2``).
        keep = self._parameters if isinstance(value, Parameter) else self._modules if isinstance(value, Module) else None
        for table in (self._parameters, self._modules, self._buffers):
            if table is not keep:
                table.pop(name, None)
        if keep is not None:
            keep[name] = value
        if keep is not None or not name.startswith("_"):  # private names are forward caches
            note_modules_changed()
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        """Deletes the attribute and its registration as a parameter, module or buffer."""
        for table in (self._parameters, self._modules, self._buffers):
            if table.pop(name, None) is not None:
                note_modules_changed()
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: Array) -> None:
        """Registers ``array`` as state saved in :meth:`state_dict` but not trained."""
        object.__setattr__(self, name, array)
        self._buffers[name] = array
        note_modules_changed()

    def _set_buffer(self, name: str, array: Array) -> None:
        object.__setattr__(self, name, array)
        self._buffers[name] = array
        note_modules_changed()

    def forward(self, x: Array) -> Array:
        """The layer's output for input ``x`` (a batch: N on axis 0). Caches what
        :meth:`backward` needs, so a backward refers to the most recent forward. Subclasses
        implement it; calling the module (``module(x)``) runs it."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_out: Array) -> Array:
        """Backpropagates through the most recent :meth:`forward` (fastnn has no autograd).

        ``grad_out`` is dL/dy, the gradient of the loss with respect to this module's output
        (the output's shape). Returns dL/dx, the gradient with respect to the forward's input,
        and adds each parameter's gradient into its ``.grad`` (allocated on first use; call
        ``zero_grad()`` or the optimiser's between steps). RuntimeError when no forward ran."""
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def backward_params(self, grad_out: Array) -> None:
        """Like :meth:`backward` when nobody needs the input's gradient (a training step on
        data): accumulates the parameter gradients only. Layers that can skip the input
        gradient's work (Linear, Conv2d: a third of their backward FLOPs) override this."""
        self.backward(grad_out)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Runs :meth:`forward`."""
        return self.forward(*args, **kwargs)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for this module (name ``prefix``) and every one below it,
        depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        """This module and every module below it, depth first."""
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules, in registration order."""
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
        """Every parameter here and below, each once even if shared."""
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Array]]:
        """(dotted name, array) of every buffer (non-trained state such as running
        statistics) here and below."""
        for mod_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def train(self, mode: bool = True) -> "Module":
        """Sets training mode (BatchNorm batch statistics, Dropout active) here and below."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        note_modules_changed()
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
        note_modules_changed()
        return self

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zeroes every parameter's ``.grad`` in place (or drops it with ``set_to_none``)."""
        for p in self.parameters():
            p.zero_grad(set_to_none)

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
        note_modules_changed()  # before the copies: one may fail after others landed
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

    def num_parameters(self, include_buffers: bool = False) -> int:
        """The number of trainable parameter elements here and below, each shared parameter
        once (PyTorch's ``sum(p.numel() for p in model.parameters())``). With
        ``include_buffers`` the floating-point buffers (BatchNorm's running statistics) count
        too: Keras' "Total params", trainable and non-trainable."""
        count = sum(p.size for p in self.parameters())
        if include_buffers:
            count += sum(int(b.size) for _, b in self.named_buffers() if b.dtype.kind == "f")
        return count

    def summary(self, input_shape: Sequence[int], dtype: Any = np.float32,
                print_fn: Callable[[str], Any] | None = print) -> str:
        """Prints a Keras-style table of the direct sub-layers: name and type, output shape
        for an input of ``input_shape`` (one example's shape, without the batch axis, e.g.
        ``(1, 28, 28)``), and parameter count; then total, trainable and non-trainable
        (float buffers, such as running statistics) counts. Returns the text too.

        The shapes come from a forward pass of one zero example through a copy of the module
        in eval mode, so the module itself (its mode, caches, running statistics) is untouched.
        A layer that rejects the shape it gets raises its error, naming it, as in a real pass.
        Pass ``print_fn=None`` to only get the text."""
        text = _summary(self, tuple(int(d) for d in input_shape), dtype)
        if print_fn is not None:
            print_fn(text)
        return text

    def extra_repr(self) -> str:
        """The layer's settings as shown inside its repr's parentheses (PyTorch's hook)."""
        return ""

    def __repr__(self) -> str:
        """PyTorch's layout: the class, its :meth:`extra_repr`, then each child indented."""
        children = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        return head + "\n" + "\n".join(children) + "\n)"


def _summary(module: Module, input_shape: tuple[int, ...], dtype: Any) -> str:
    """The text of :meth:`Module.summary`."""
    import copy

    model = copy.deepcopy(module).eval()
    rows: list[tuple[str, str, str, int]] = []
    children = list(model._modules.items()) or [("", model)]
    shapes: dict[int, tuple[int, ...]] = {}
    for name, child in children:
        if child is model:
            continue
        original = child.forward

        def recording(*args: Any, _key: int = id(child), _forward: Any = original, **kwargs: Any) -> Any:
            y = _forward(*args, **kwargs)
            shapes[_key] = tuple(getattr(y, "shape", ()))
            return y

        object.__setattr__(child, "forward", recording)  # on the copy only; also disables fusion
    like = next((p.data for p in model.parameters()), np.zeros(0, dtype))
    x = to_device_like(np.zeros((1,) + input_shape, dtype=dtype), like)
    y = model(x)
    if len(children) == 1 and children[0][1] is model:
        shapes[id(model)] = tuple(y.shape)

    def shape_text(shape: tuple[int, ...] | None) -> str:
        return "?" if shape is None else "(" + ", ".join(["N"] + [str(d) for d in shape[1:]]) + ")"

    counted: set[int] = set()
    for name, child in children:
        own = 0
        for p in child.parameters():
            if id(p) not in counted:
                counted.add(id(p))
                own += p.size
        own += sum(int(b.size) for _, b in child.named_buffers() if b.dtype.kind == "f")  # as Keras counts
        label = f"{name} ({type(child).__name__})" if name else type(child).__name__
        rows.append((label, shape_text(shapes.get(id(child))), f"{own:,}", own))
    total = module.num_parameters(include_buffers=True)
    trainable = module.num_parameters()
    widths = [max(len("Layer (type)"), *(len(r[0]) for r in rows)) + 2,
              max(len("Output Shape"), *(len(r[1]) for r in rows)) + 2,
              max(len("Param #"), *(len(r[2]) for r in rows))]
    line_width = sum(widths)
    lines = [f'Model: "{type(module).__name__}"', "_" * line_width,
             "Layer (type)".ljust(widths[0]) + "Output Shape".ljust(widths[1]) + "Param #",
             "=" * line_width]
    for i, (label, shape, count, _) in enumerate(rows):
        lines.append(label.ljust(widths[0]) + shape.ljust(widths[1]) + count)
        lines.append("_" * line_width if i < len(rows) - 1 else "=" * line_width)
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * line_width]
    return "\n".join(lines)


def forward_cache_missing(module: Module) -> RuntimeError:
    """The error every layer raises when backward runs before forward."""
    return RuntimeError(f"{type(module).__name__}.backward called before forward")
