"""Registry entry (tests/opinfo.py) of add_relu, a residual sum and the ReLU after it in one pass
(nn.Residual.forward_relu)."""

from __future__ import annotations

from conftest import ODD_SIZES
from fastnn import ops
from fastnn import reference as ref
from opinfo_base import CPU_ONLY, ELEMENTWISE, OpInfo, Sample, err, other_dtype, randn, readonly


def _samples(rng, dtype):
    for shape in [(n,) for n in ODD_SIZES] + [(2, 3, 5, 7), (0, 4), (9, 16, 8, 8)]:
        yield Sample(f"{shape}", (randn(rng, shape, dtype, 2.0), randn(rng, shape, dtype, 2.0)))


def _errors(dtype):
    op = ops.add_relu
    yield err("int", lambda xp: op(xp.arange(3), xp.ones(3, dtype)), TypeError, "fastnn.add_relu: argument 'a'", "int")
    yield err("mixed dtypes", lambda xp: op(xp.ones(3, dtype), xp.ones(3, other_dtype(dtype))), TypeError,
              "fastnn.add_relu", "'b'")
    yield err("shape", lambda xp: op(xp.ones((2, 3), dtype), xp.ones((3, 2), dtype)), ValueError,
              "fastnn.add_relu: argument 'b' must have shape (2, 3)")
    yield err("strided", lambda xp: op(xp.ones(10, dtype)[::2], xp.ones(5, dtype)), ValueError,
              "fastnn.add_relu: argument 'a' must be C-contiguous")
    yield err("out shape", lambda xp: op(xp.ones(4, dtype), xp.ones(4, dtype), out=xp.ones(5, dtype)), ValueError,
              "fastnn.add_relu: argument 'out' must have shape (4,)")
    yield err("out overlapping", lambda xp: (lambda v: op(v[:4], v[4:], out=v[2:6]))(xp.ones(8, dtype)), ValueError,
              "fastnn.add_relu", "'out' must not share memory with 'a'")
    yield err("read-only out", lambda xp: op(xp.ones(3, dtype), xp.ones(3, dtype), out=readonly(xp, 3, dtype)), ValueError,
              "fastnn.add_relu", "'out'", "writeable", backends=CPU_ONLY)


op_db: list[OpInfo] = [
    OpInfo("add_relu", ops.add_relu, ref.add_relu, _samples, _errors,
           tol=ELEMENTWISE),  # one correctly rounded add, then an exact max
]
