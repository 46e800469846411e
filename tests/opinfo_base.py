"""The parts of an op-registry entry (tests/opinfo.py) and the helpers its entries and
tests/test_ops.py share: tolerances, samples, error inputs, moving arrays between backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from conftest import FLOAT32_RTOL, FLOAT64_RTOL

BACKENDS = ("cpu", "cuda")
DTYPES = (np.float32, np.float64)


# ---- the entry's parts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tol:
    """Relative Frobenius tolerance per dtype, and why it is what it is. 0 means bit for bit."""

    float32: float
    why: str
    float64: float = FLOAT64_RTOL

    def __call__(self, dtype) -> float:
        return self.float32 if np.dtype(dtype) == np.float32 else self.float64


ELEMENTWISE = Tol(FLOAT32_RTOL, "elementwise: each output a few float32 roundings (libm exp/erf/tanh) from the exact value")
EXACT = Tol(0.0, "a copy of input values (or a mask) chosen by the same rule as the reference", 0.0)


@dataclass
class Sample:
    """One call. ``args`` / ``kwargs`` go to the op and the reference alike, ``op_kwargs`` to the
    op only (index_dtype, the fused relu, ...); ``grad_out`` is dL/d(output) for the backward,
    ``bwd_op_kwargs`` keyword arguments only the op's backward takes (max-pool's window)."""

    desc: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    op_kwargs: dict = field(default_factory=dict)
    grad_out: Any = None
    bwd_op_kwargs: dict = field(default_factory=dict)


@dataclass
class ErrorInput:
    """``call(xp)`` must raise ``exc`` whose message contains every one of ``fragments``; xp is
    numpy or cupy, whichever the backend under test takes."""

    desc: str
    call: Callable[[ModuleType], Any]
    exc: type
    fragments: tuple[str, ...]
    backends: tuple[str, ...] = BACKENDS


def as_dict(result, names: tuple[str, ...]) -> dict:
    if not isinstance(result, tuple):
        result = (result,)
    assert len(result) == len(names), f"{len(result)} outputs, expected {names}"
    return dict(zip(names, result))


@dataclass
class OpInfo:
    """One op of fastnn.ops: what to call, what it must equal, how to feed it, what it rejects."""

    name: str
    op: Callable
    ref: Callable
    sample_inputs: Callable[[np.random.Generator, Any], Iterable[Sample]]
    error_inputs: Callable[[Any], Iterable[ErrorInput]]
    tol: Tol  # the forward outputs
    grad_tol: Tol | None = None  # the backward's outputs and any gradient the forward returns
    backward: Callable | None = None
    backward_ref: Callable | None = None
    outputs: tuple[str, ...] = ("y",)
    grad_outputs: tuple[str, ...] = ()  # forward outputs that are gradients (the losses' dlogits)
    grad_names: tuple[str, ...] = ("dx",)
    # (sample, forward outputs) -> (args, kwargs) of the backward, for the op and the reference.
    backward_inputs: Callable[[Sample, dict], tuple[tuple, dict]] | None = None
    # backward keyword -> the output it accumulates into (given arrays get ``+=``).
    accumulates: dict[str, str] = field(default_factory=dict)
    # (sample, backward args) -> {gradient name: norm to measure its error against} where the
    # output's own norm is the wrong scale (a gradient that cancels).
    grad_scale: Callable[[Sample, tuple], dict[str, float]] | None = None
    call_op: Callable[[OpInfo, Sample], dict] | None = None
    call_ref: Callable[[OpInfo, Sample], dict] | None = None
    backends: tuple[str, ...] = BACKENDS

    def forward(self, sample: Sample) -> dict:
        """The op on ``sample`` (whose arrays it may update in place): {output name: value}."""
        if self.call_op is not None:
            return self.call_op(self, sample)
        return as_dict(self.op(*sample.args, **sample.kwargs, **sample.op_kwargs), self.outputs)

    def forward_ref(self, sample: Sample) -> dict:
        if self.call_ref is not None:
            return self.call_ref(self, sample)
        return as_dict(self.ref(*sample.args, **sample.kwargs), self.outputs)

    def run_backward(self, sample: Sample, fwd: dict, **extra) -> dict:
        args, kwargs = self.backward_inputs(sample, fwd)
        return as_dict(self.backward(*args, **kwargs, **sample.bwd_op_kwargs, **extra), self.grad_names)

    def run_backward_ref(self, sample: Sample, fwd: dict) -> dict:
        args, kwargs = self.backward_inputs(sample, fwd)
        return as_dict(self.backward_ref(*args, **kwargs), self.grad_names)

    def tol_for(self, output: str) -> Tol:
        return self.grad_tol if output in self.grad_outputs or output in self.grad_names else self.tol

    def functions(self) -> set[str]:
        """The fastnn.ops names this entry covers."""
        return {f.__name__ for f in (self.op, self.backward) if f is not None}


# ---- helpers ----------------------------------------------------------------------------------


def randn(rng, shape, dtype, scale=1.0, shift=0.0):
    """Normal samples drawn directly in ``dtype``, times scale plus shift."""
    x = rng.standard_normal(shape, dtype=dtype)
    if scale != 1.0:
        x *= dtype(scale)
    if shift != 0.0:
        x += dtype(shift)
    return x


def readonly(xp, shape, dtype):
    a = xp.ones(shape, dtype)
    a.flags.writeable = False
    return a


def misaligned(n: int) -> np.ndarray:
    return np.zeros(n * 4 + 1, np.uint8)[1:].view(np.float32)  # float32 data at an odd address


CPU_ONLY = ("cpu",)  # misaligned buffers, read-only flags, byte-swapped dtypes: host-only notions


def err(desc, call, exc, *fragments, backends=BACKENDS) -> ErrorInput:
    return ErrorInput(desc, call, exc, fragments, backends)


def other_dtype(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.float32


# ---- moving samples between backends -----------------------------------------------------------


def tree_map(fn, obj):
    """``fn`` applied to every array in nested tuples / lists / dicts (anything else kept)."""
    if isinstance(obj, tuple):
        return tuple(tree_map(fn, v) for v in obj)
    if isinstance(obj, list):
        return [tree_map(fn, v) for v in obj]
    if isinstance(obj, dict):
        return {k: tree_map(fn, v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):  # not NumPy scalars
        return fn(obj)
    return obj


def map_sample(fn, s: Sample) -> Sample:
    """A copy of ``s`` with ``fn`` applied to each of its arrays (a copy, a host-to-device move)."""
    return Sample(s.desc, tree_map(fn, s.args), tree_map(fn, s.kwargs), tree_map(fn, s.op_kwargs),
                  tree_map(fn, s.grad_out), tree_map(fn, s.bwd_op_kwargs))


def copy_sample(s: Sample) -> Sample:
    return map_sample(lambda a: a.copy(), s)


def iter_samples(entry: OpInfo, dtype, seed: int = 1234) -> Iterator[Sample]:
    """The entry's samples for ``dtype``, from a fixed seed (the same inputs on every backend)."""
    return iter(entry.sample_inputs(np.random.default_rng(seed), dtype))
