"""Matrix product with transposes, alpha and beta."""

from __future__ import annotations

from fastnn._args import real
from fastnn._backend import Array, backend_for


def matmul(
    a: Array,
    b: Array,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    out: Array | None = None,
    bias_per_col: Array | None = None,
    bias_per_row: Array | None = None,
    relu: bool = False,
) -> Array:
    """``alpha * op(a) @ op(b) + beta * out`` for 2-D arrays, where ``op(m)`` is ``m.T`` when
    the matching ``trans_*`` flag is set.

    With ``out`` given the result is written into it (and returned); ``beta != 0`` requires
    ``out``, whose old contents are then scaled and added — how backward passes accumulate
    into ``.grad``. With ``beta == 0`` the old contents of ``out`` are ignored (NaN included).

    The optional epilogue is fused into the product (applied while each tile is in
    registers, after the whole sum): ``bias_per_col`` (N,) is added to every row,
    ``bias_per_row`` (M,) to every column, then ``relu`` clamps at zero.
    """
    return backend_for("matmul", a).matmul(
        a, b, trans_a, trans_b, real("matmul", "alpha", alpha), real("matmul", "beta", beta), out, bias_per_col, bias_per_row, bool(relu)
    )
