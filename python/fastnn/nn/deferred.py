"""The input gradient of data, computed only when used (:class:`DeferredGradient`), and the
table of those still pending, which parameters and optimisers consult before the arrays such
a gradient reads may change."""

from __future__ import annotations

import weakref
from typing import Any, Callable, Iterator

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from fastnn._backend import Array


class DeferredGradient(NDArrayOperatorsMixin):
    """A model's input gradient, computed when it is first used (PyTorch's rule for data).

    PyTorch computes dL/dx only for an input with ``requires_grad``, which data never has.
    fastnn arrays carry no such mark, so :meth:`fastnn.nn.Sequential.backward` returns this
    stand-in instead: the first layer's input-gradient product (a third of its backward
    FLOPs) runs only when something reads the result. The README's loop,
    ``model.backward(loss_fn.backward())``, drops it and so costs what ``backward_params``
    costs; ``dx = model.backward(g)`` followed by any use of ``dx`` gets the gradient.

    It acts as the array it stands for: ``np.asarray(dx)``, ufuncs and operators (``dx + 1``:
    plain arrays come back), ``dx.shape``, ``dx[i]``, ``len(dx)``, any array attribute or method
    (``dx.sum()``, ``dx.get()`` on the GPU), ``cupy.asarray(dx)``; :meth:`resolve` returns the
    array itself (pass that to fastnn.ops). It is the gradient of the backward that made it:
    it keeps a copy of the first layer's weight as soon as that weight is handed out for a
    possible write (:attr:`Parameter.data`, in-place operators, ``np.asarray(p)``), so no update
    of the weights before the first use changes it, and an optimiser step and the next forward of
    any Sequential (which rewrite the weights and the layer caches it reads) compute
    still-referenced deferred gradients first.
    """

    __slots__ = ("_compute", "_reads", "_array", "__weakref__")

    def __init__(self, compute: Callable[..., Array], reads: tuple[Array, ...] = ()) -> None:
        """``compute(*reads)`` returns the gradient; it runs at most once. ``reads`` are the
        parameter arrays it reads (a layer's weight): if one is handed out through
        :attr:`Parameter.data` (to be written, perhaps) before then, this gradient first keeps a
        copy of it as it is, and computes from the copy. Copying only then, not at every
        backward, saves an MLP's step a pass over its largest weight."""
        self._compute: Callable[..., Array] | None = compute
        self._reads = reads
        self._array: Array | None = None
        key = id(self)
        _PENDING_GRADIENTS[key] = weakref.ref(self, lambda _, key=key: _PENDING_GRADIENTS.pop(key, None))

    def resolve(self) -> Array:
        """The gradient as a NumPy (or CuPy) array, computed on the first call."""
        if self._compute is not None:
            compute, self._compute = self._compute, None
            _PENDING_GRADIENTS.pop(id(self), None)
            reads, self._reads = self._reads, ()
            self._array = compute(*reads)
        return self._array

    def _keep_copy_of(self, array: Array) -> None:
        """Replaces ``array`` among the arrays still to be read by a copy of it."""
        if any(r is array for r in self._reads):
            copy = array.copy()
            self._reads = tuple(copy if r is array else r for r in self._reads)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The gradient as a NumPy array (no copy unless ``dtype`` or ``copy`` asks for one)."""
        array = self.resolve()
        if copy:
            return np.array(array, dtype=dtype, copy=True)
        return np.asarray(array, dtype=dtype)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """Runs ``ufunc`` on the resolved gradient (a plain array comes back)."""
        if "out" in kwargs:
            kwargs["out"] = _resolve_all(kwargs["out"])
        return getattr(ufunc, method)(*_resolve_all(inputs), **kwargs)

    @property
    def __cuda_array_interface__(self) -> dict:
        """The resolved CuPy gradient's interface (AttributeError for a NumPy one)."""
        return self.resolve().__cuda_array_interface__

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks: shape, dtype, sum(), get(), ...
        if name in DeferredGradient.__slots__:  # unset slot (copy.copy's bare instance)
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __getitem__(self, index: Any) -> Any:
        """``resolve()[index]``."""
        return self.resolve()[index]

    def __len__(self) -> int:
        """The length of the gradient's first axis."""
        return len(self.resolve())

    def __iter__(self) -> Iterator[Any]:
        """Iterates over the gradient's first axis."""
        return iter(self.resolve())

    def __bool__(self) -> bool:
        """The array's truth value (ValueError for more than one element, as NumPy's)."""
        return bool(self.resolve())

    def __repr__(self) -> str:
        return f"DeferredGradient({self.resolve()!r})"


def _resolve_all(values: tuple) -> tuple:
    return tuple(v.resolve() if isinstance(v, DeferredGradient) else v for v in values)


# Deferred gradients not yet computed and still referenced somewhere, by id (a WeakSet would
# compare them with ==, which is element-wise here): resolved before anything that would change
# what they read (an optimiser step, a forward), and given copies of the parameter arrays they
# read before those are handed out (Parameter.data). The README loop's gradient is dropped at
# once, so this is empty there and checking it costs nothing.
_PENDING_GRADIENTS: "dict[int, weakref.ref[DeferredGradient]]" = {}


def _before_handing_out(array: Array) -> None:
    """Makes every pending deferred gradient that reads ``array`` keep a copy of it."""
    for ref in list(_PENDING_GRADIENTS.values()):
        grad = ref()
        if grad is not None:
            grad._keep_copy_of(array)


def resolve_pending_gradients() -> None:
    """Computes every deferred input gradient still referenced (see :class:`DeferredGradient`)."""
    if _PENDING_GRADIENTS:
        for ref in list(_PENDING_GRADIENTS.values()):
            grad = ref()
            if grad is not None:
                grad.resolve()
