"""Numerical gradient check of a module's backward against its forward.

The module is copied and cast to float64 (the CPU kernels accept float64), a random upstream
gradient ``g`` is drawn, and the analytic ``backward(g)`` (input gradient and every parameter
gradient) is compared with central differences of ``f = sum(g * forward(x))``.
"""

from __future__ import annotations

import copy

import numpy as np

from fastnn.nn.module import Module


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def _numerical(f, arr: np.ndarray, index: tuple, eps: float) -> float:
    old = arr[index]
    arr[index] = old + eps
    plus = f()
    arr[index] = old - eps
    minus = f()
    arr[index] = old
    return (plus - minus) / (2.0 * eps)


def _refuse_random_layers(module: Module) -> None:
    """ValueError when a layer would draw a new random mask at every forward (Dropout in
    training mode): finite differences of such a function measure the noise, not the gradient."""
    from fastnn.nn.dropout import Dropout

    for name, m in module.named_modules():
        if isinstance(m, Dropout) and m.training and 0.0 < m.p < 1.0:
            where = f" (at '{name}')" if name else ""
            raise ValueError(
                f"fastnn.gradcheck: {m!r}{where} is in training mode, so every forward draws a new mask "
                f"and no gradient can match finite differences: call .eval() on the module first "
                f"(gradcheck(model.eval(), x))"
            )


def gradcheck(
    module: Module,
    x: np.ndarray,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    max_checks: int = 64,
    seed: int = 0,
) -> bool:
    """Checks ``module.backward`` against central differences of ``module.forward`` at ``x``.

    Up to ``max_checks`` entries (chosen at random) of the input and of each parameter are
    checked, in float64, on a copy of the module (the original is untouched). Stochastic layers
    must be in eval mode: a Dropout in training mode raises ValueError saying to call
    ``.eval()``. Returns True, or raises :class:`GradcheckError` naming the first entry
    whose analytic and numerical gradients differ by more than ``atol + rtol * |numerical|``.
    """
    _refuse_random_layers(module)
    rng = np.random.default_rng(seed)
    m = copy.deepcopy(module)
    for p in m.parameters():
        p.data = np.asarray(p.data, dtype=np.float64).copy()
        p.grad = None
    for mod in m.modules():
        for name, b in list(mod._buffers.items()):
            if isinstance(b, np.ndarray) and b.dtype.kind == "f":
                mod._set_buffer(name, b.astype(np.float64))
    x = np.array(x, dtype=np.float64)
    y = m(x)
    g = rng.standard_normal(np.shape(y))
    dx = m.backward(g)

    def f() -> float:
        return float(np.sum(g * m(x)))

    targets = [("input", x, dx)] + [(name, p.data, p.grad) for name, p in m.named_parameters()]
    for name, arr, analytic in targets:
        if analytic is None:
            raise GradcheckError(f"gradcheck: no gradient was produced for {name}")
        flat = np.arange(arr.size)
        picks = flat if arr.size <= max_checks else rng.choice(flat, size=max_checks, replace=False)
        for k in picks:
            idx = np.unravel_index(int(k), arr.shape)
            num = _numerical(f, arr, idx, eps)
            ana = float(np.asarray(analytic)[idx])
            if abs(ana - num) > atol + rtol * abs(num):
                raise GradcheckError(
                    f"gradcheck: {type(module).__name__} gradient of {name}[{', '.join(str(int(i)) for i in idx)}]: "
                    f"analytic {ana:.8g}, numerical {num:.8g}"
                )
    return True
