"""Containers."""

from __future__ import annotations

import threading
import weakref
from typing import Callable, Iterator

import numpy as np

from fastnn._backend import Array
from fastnn.nn.activation import ReLU
from fastnn.nn.fuse import eval_forward
from fastnn.nn.linear import WeightedLayer
from fastnn.nn.deferred import DeferredGradient, resolve_pending_gradients
from fastnn.nn.module import Module, modules_version
from fastnn.nn.norm import BatchNorm1d, BatchNorm2d
from fastnn.nn.pool import MaxPool2d

# Batch norms that fuse with the ReLU after them, by exact type: a subclass may compute its
# statistics otherwise (fastnn.distributed.SyncBatchNorm reduces them over ranks).
_FUSING_NORMS = (BatchNorm1d, BatchNorm2d)


def _unpatched(*modules: Module) -> bool:
    """No forward or backward replaced on the instance (e.g. a hook that wants to see the
    pre-activation or the ReLU's own gradient): such modules are never fused."""
    return not any("forward" in vars(m) or "backward" in vars(m) for m in modules)


def _fuses_with_relu(layer: Module, activation: Module) -> bool:
    """Whether ``layer`` then ``activation`` can run as ``layer.forward_relu``: a Linear or
    Conv2d whose forward no subclass replaced, a BatchNorm1d / BatchNorm2d or a Residual (those
    exact types), followed by a plain ReLU."""
    if type(activation) is not ReLU or not _unpatched(layer, activation):
        return False
    if isinstance(layer, WeightedLayer):
        return type(layer).forward is WeightedLayer.forward
    from fastnn.nn.residual import Residual  # residual.py imports this module

    return type(layer) in _FUSING_NORMS or type(layer) is Residual


def _absorbs_relu_backward(activation: Module, pool: Module) -> bool:
    """Whether a plain ReLU followed by a plain MaxPool2d can run its backward as
    ``pool.backward_through_relu``."""
    return type(activation) is ReLU and type(pool) is MaxPool2d and _unpatched(activation, pool)


def _defers_input_grad(layer: Module) -> bool:
    """Whether ``layer``'s input gradient can be left out of its backward and computed later
    from what the backward had: a Linear or Conv2d whose backward nobody replaced."""
    return (
        isinstance(layer, WeightedLayer)
        and type(layer).backward is WeightedLayer.backward
        and type(layer)._backward is WeightedLayer._backward
        and _unpatched(layer)
    )


# How many Sequential backward calls are running on this thread: only the outermost (0) defers
# its input gradient; a nested one's caller (Residual, an outer Sequential) needs it now.
_backward_depth = threading.local()

_CONTEXT = "_fastnn_sequential_context"

# Callbacks the containers run right after a child's backward, when that child's parameter
# gradients are final for the step: fastnn.distributed starts its gradient all-reduces there, so
# they overlap the backward of the layers before. Weak keys: a hook never keeps a model alive.
_backward_done_hooks: "weakref.WeakKeyDictionary[Module, Callable[[Module], None]]" = weakref.WeakKeyDictionary()
# Whether any hook was ever registered in this process: the containers call backward_done after
# every child's backward, and a WeakKeyDictionary's truth test (its __len__) cost more than
# the call itself in a process that never trains distributed.
_any_backward_done_hook = False


def register_backward_done_hook(module: Module, hook: Callable[[Module], None] | None) -> None:
    """Makes the containers (Sequential, Residual) call ``hook(module)`` each time ``module``'s
    backward inside them has finished (None removes it). A module run outside any container
    (the model itself) gets no call: its gradients are final when its own backward returns."""
    global _any_backward_done_hook
    if hook is None:
        _backward_done_hooks.pop(module, None)
    else:
        _backward_done_hooks[module] = hook
        _any_backward_done_hook = True


def backward_done(module: Module) -> None:
    """Runs ``module``'s backward-done hook, if it has one (containers call this)."""
    if _any_backward_done_hook:
        hook = _backward_done_hooks.get(module)
        if hook is not None:
            hook(module)


def _layer_text(m: Module) -> str:
    """A one-line repr: the layer's own, or ``Type(...)`` for a container."""
    text = repr(m)
    return text if "\n" not in text else f"{type(m).__name__}(...)"


def _shape_dtype(x: object) -> str:
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is None or dtype is None:
        return f"a {type(x).__name__}, not an array"
    return f"shape {tuple(shape)}, dtype {dtype}"


def _hint(layer: Module, x: object, model: Module, model_input: object) -> str:
    """What to do about ``layer`` rejecting ``x``, where the input's shape or dtype says it."""
    from fastnn.nn.conv import Conv2d
    from fastnn.nn.linear import Linear

    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is None or dtype is None:
        return "pass a NumPy array of float32 (np.asarray(x, dtype=np.float32))"
    wanted = next((p.dtype for p in model.parameters()), np.dtype(np.float32))
    if dtype != wanted:
        if np.dtype(dtype).kind in "uib":
            return (f"cast the input to {wanted}: x.astype(np.{wanted}) (images stored as bytes usually also want "
                    f"scaling to [0, 1]: x.astype(np.{wanted}) / 255)")
        return f"cast the input to {wanted}: x.astype(np.{wanted})"
    first = model_input is x
    if isinstance(layer, Linear) and len(shape) == 2 and shape[1] != layer.in_features:
        if first:
            return f"the input must have {layer.in_features} features per row, shape (N, {layer.in_features})"
        return (f"the layers before this Linear turned the model's input of shape {tuple(model_input.shape)} into "
                f"{shape[1]} features, and it was built for {layer.in_features}: the model was built for another "
                f"input size; build it for this one (e.g. fastnn.models.lenet5(input_size=...)) or resize the input")
    if isinstance(layer, Conv2d):
        if len(shape) == 3 and shape[0] == layer.in_channels:
            return "the input must be a batch (N, C, H, W): add the batch axis with x[None]"
        if len(shape) == 4 and shape[1] != layer.in_channels:
            return (f"the input must have {layer.in_channels} channels on axis 1 (N, C, H, W); got {shape[1]}"
                    + (" (channels last? use x.transpose(0, 3, 1, 2))" if shape[3] == layer.in_channels else ""))
    return ""


def _annotate(error: Exception, seq: "Sequential", child: Module, child_input: Array, x: Array) -> None:
    """Adds to ``error``'s message (in place: the type and traceback stay) which layer raised
    it, the input it got and, from the outermost Sequential, the model's input ``x``. Nested
    Sequentials rewrite the same context, so the message is written once, by the outermost."""
    if not error.args or not isinstance(error.args[0], str):
        return
    ctx = getattr(error, _CONTEXT, None)
    if ctx is None:
        ctx = {"layer": child, "x": child_input, "original": error.args[0]}
        try:
            setattr(error, _CONTEXT, ctx)
        except AttributeError:  # an exception type without a __dict__: leave it alone
            return
    layer, at_layer = ctx["layer"], ctx["x"]
    name = next((n for n, m in seq.named_modules() if m is layer), "?")
    message = (f"fastnn.nn.Sequential: layer {name} {_layer_text(layer)} got input of {_shape_dtype(at_layer)}")
    if x is not at_layer:
        message += f" (the model's input: {_shape_dtype(x)})"
    message += f": {ctx['original']}"
    hint = _hint(layer, at_layer, seq, x)
    if hint:
        message += f"\n  what to do: {hint}"
    error.args = (message,) + error.args[1:]


class _StepPlan:
    """How a Sequential runs its modules, worked out once per change of the model:
    ``fuses[i]``, module i runs as ``forward_relu`` with the ReLU after it; ``absorbs[i]``,
    module i (a MaxPool2d) takes the backward of the ReLU before it; ``relu_in_norm[i]``, module
    i (a ReLU fused into the BatchNorm before it) has its backward run inside that BatchNorm's
    (``backward_relu``); ``first_weighted``, the index of the first module with parameters
    (len(modules) if none); ``defers_first``, whether that module's input gradient can be
    deferred."""

    __slots__ = ("modules", "fuses", "absorbs", "relu_in_norm", "first_weighted", "defers_first")

    def __init__(self, modules: list[Module], fuse_relu: bool) -> None:
        self.modules = modules
        self.fuses = [fuse_relu and i + 1 < len(modules) and _fuses_with_relu(m, modules[i + 1])
                      for i, m in enumerate(modules)]
        self.absorbs = [fuse_relu and i > 0 and _absorbs_relu_backward(modules[i - 1], m)
                        for i, m in enumerate(modules)]
        self.relu_in_norm = [i > 0 and self.fuses[i - 1] and type(modules[i - 1]) in _FUSING_NORMS
                             for i in range(len(modules))]
        self.first_weighted = next(
            (i for i, m in enumerate(modules) if any(True for _ in m.parameters())), len(modules))
        self.defers_first = self.first_weighted < len(modules) and _defers_input_grad(modules[self.first_weighted])


class Sequential(Module):
    """Runs its modules in order; backward runs them in reverse.

    A Linear or Conv2d directly followed by a ReLU runs as one fused op (the ReLU applied in the
    GEMM's epilogue, saving a pass over the activations); so do a BatchNorm1d / BatchNorm2d (the
    ReLU in its normalising pass, and the ReLU's backward inside the batch norm's backward
    passes) and a Residual (the sum and the ReLU in one pass). The backward of a ReLU followed by
    a MaxPool2d masks the pool's smaller gradient instead of the ReLU's. Outputs and gradients
    are the same as unfused for finite values (the batch norm's gradient sums up to their
    order). Set ``fuse_relu = False`` to run every module on its own.
    """

    def __init__(self, *modules: Module) -> None:
        """Registers ``modules`` under the names "0", "1", ... in order."""
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"fastnn.nn.Sequential: argument {i} must be a Module; got {type(m).__name__}")
            setattr(self, str(i), m)
        self.fuse_relu = True

    #: Eval-mode forwards of NumPy arrays run through a cached plan (:mod:`fastnn.nn.fuse`):
    #: BatchNorm2d folded into the Conv2d before it, ReLUs in the kernels' epilogue, no
    #: per-layer argument checks. False (or ``fuse_relu = False``) runs the modules one by one.
    fast_eval = True

    def forward(self, x: Array) -> Array:
        """Runs the modules in order. An error raised inside one keeps its type and message,
        and the message gains which layer raised it (dotted name and repr), the shape and
        dtype it got, the model's input, and what to do where that is clear (cast the input to
        float32; a model built for another input size).

        In eval mode a NumPy input runs through the plan of :mod:`fastnn.nn.fuse` (the same
        output up to float32 rounding of the folded weights, the same errors)."""
        resolve_pending_gradients()  # before this forward (planned or not) rewrites what they read
        if not self.training and type(x) is np.ndarray and self.fast_eval and self.fuse_relu:
            y = eval_forward(self, x)
            if y is not None:
                return y
        plan = self._plan()
        modules, fuses = plan.modules, plan.fuses
        given = x
        i = 0
        while i < len(modules):
            m = modules[i]
            try:
                if fuses[i]:
                    y = m.forward_relu(x)
                    modules[i + 1].keep_fused_output(y)
                    step = 2
                else:
                    y = m(x)
                    step = 1
            except Exception as error:
                _annotate(error, self, m, x, given)
                raise
            x = y
            i += step
        return x

    def backward(self, grad_out: Array) -> Array:
        """Runs every module's backward in reverse order; returns dL/dx of the input.

        Called on the outermost model, it returns dL/dx as a :class:`~fastnn.nn.DeferredGradient`:
        the first Linear/Conv2d's input gradient (and the backward of any parameter-free layers
        before it) is computed only when the result is used, so a training step that drops it
        (``model.backward(loss_fn.backward())``) does the work of :meth:`backward_params` and no
        more: data needs no gradient, PyTorch's rule for inputs without ``requires_grad``. A
        Sequential nested in another module returns a plain array."""
        plan = self._plan()
        depth = getattr(_backward_depth, "value", 0)
        _backward_depth.value = depth + 1
        try:
            if depth == 0:
                return self._backward_deferring_input(plan, grad_out)
            return self._backward_through(plan, 0, len(plan.modules), grad_out)
        finally:
            _backward_depth.value = depth

    def _backward_deferring_input(self, plan: "_StepPlan", grad_out: Array) -> Array:
        """The backward with the first weighted layer's input gradient deferred (where it can be:
        otherwise eager)."""
        modules, first = plan.modules, plan.first_weighted
        if not plan.defers_first:
            return self._backward_through(plan, 0, len(modules), grad_out)
        layer = modules[first]
        grad_at_layer = self._backward_through(plan, first + 1, len(modules), grad_out)
        layer.backward_params(grad_at_layer)
        backward_done(layer)
        # What the input gradient reads, held as of now: dx depends on the weight and dy only
        # (x gives the op its shape; the weight gradient it also computes is thrown away). The
        # weight is copied only if someone takes it (Parameter.data) before dx is computed, so
        # that no write into it, such as a hand-written update p.data -= lr * p.grad, can change
        # dx; optimisers and the next forward compute dx first.
        x, weight, op, kwargs = layer._x, layer.weight.data, layer._backward_op, layer._op_kwargs()

        def input_grad(weight: Array) -> Array:
            dx, _, _ = op(x, weight, grad_at_layer, bias=False, input_grad=True, **kwargs)
            return self._backward_through(plan, 0, first, dx)

        return DeferredGradient(input_grad, reads=(weight,))

    def _plan(self) -> "_StepPlan":
        """How forward and backward run the modules (:class:`_StepPlan`). Cached until the
        module tree or a setting may have changed (modules_version: assigning a Parameter,
        Module or public attribute anywhere, an instance's forward or backward included), for
        this object only (a deep copy, which copies the cache, rebuilds it): the per-layer type,
        patch and parameter checks cost a few microseconds a layer at every forward and
        backward."""
        cached = self.__dict__.get("_step_plan")
        version = modules_version()
        if cached is not None and cached[0] == version and cached[1] == id(self):
            return cached[2]
        plan = _StepPlan(list(self._modules.values()), bool(self.fuse_relu))
        object.__setattr__(self, "_step_plan", (version, id(self), plan))  # a cache: no registration
        return plan

    def _backward_through(self, plan: "_StepPlan", start: int, stop: int, grad_out: Array) -> Array:
        """Runs the backward of ``plan.modules[start:stop]`` in reverse order."""
        modules, absorbs, relu_in_norm = plan.modules, plan.absorbs, plan.relu_in_norm
        i = stop - 1
        while i >= start:
            if i > start and absorbs[i]:
                grad_out = modules[i].backward_through_relu(grad_out)
                backward_done(modules[i])
                backward_done(modules[i - 1])
                i -= 2
            elif i > start and relu_in_norm[i]:
                grad_out = modules[i - 1].backward_relu(grad_out, modules[i])
                backward_done(modules[i])
                backward_done(modules[i - 1])
                i -= 2
            else:
                grad_out = modules[i].backward(grad_out)
                backward_done(modules[i])
                i -= 1
        return grad_out

    def backward_params(self, grad_out: Array) -> None:
        """Parameter gradients only: the leading modules without parameters (Flatten...) get
        no backward call, and the first one with parameters skips its input gradient."""
        plan = self._plan()
        first = plan.first_weighted
        grad_out = self._backward_through(plan, first + 1, len(plan.modules), grad_out)
        if first < len(plan.modules):
            plan.modules[first].backward_params(grad_out)
            backward_done(plan.modules[first])

    def __len__(self) -> int:
        """The number of modules."""
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        """The ``i``-th module (negative indices count from the end)."""
        return list(self._modules.values())[i]

    def __iter__(self) -> Iterator[Module]:
        """The modules in order."""
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        """Adds ``module`` at the end; returns self."""
        setattr(self, str(len(self._modules)), module)
        return self
