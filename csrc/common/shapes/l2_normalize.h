// Rows of an (N, D) array for the L2 normalisation ops (cpu/l2_normalize.h): the kernels take a
// RowsShape (rows = N, cols = D); this is the validation and the eps rule, shared by both
// backends' bindings and the layer (through l2_normalize_check_params).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/errors.h"
#include "common/shapes/rows.h"

namespace fastnn {

// `what` names the argument, e.g. "x"; a 2-D (N, D) array with D >= 1 (N may be 0).
inline RowsShape l2_rows_from(const char* op, const char* what, const std::vector<int64_t>& dims) {
  if (dims.size() != 2)
    throw_value_error("fastnn.", op, ": argument '", what, "' must be 2-D (batch, features); got shape ",
                      shape_str(dims));
  if (dims[1] < 1)
    throw_value_error("fastnn.", op, ": argument '", what, "' must have at least one feature; got shape ",
                      shape_str(dims));
  return RowsShape{dims[0], dims[1]};
}

// eps is the smallest norm divided by: a zero row gives zeros rather than 0 / 0.
inline void validate_l2_eps(const char* op, double eps) {
  if (!(eps > 0.0 && std::isfinite(eps)))
    throw_value_error("fastnn.", op, ": argument 'eps' must be a finite number > 0; got ", eps);
}

}  // namespace fastnn
