// Argument rules of dropout, shared by both backends and the bindings: any shape (flattened to
// n elements), a drop probability p in [0, 1].
#pragma once

#include "common/errors.h"

namespace fastnn {

inline void validate_dropout_probability(const char* op, double p) {
  if (!(p >= 0.0 && p <= 1.0))  // NaN fails too
    throw_value_error("fastnn.", op, ": argument 'p' must lie in [0, 1]; got ", p);
}

}  // namespace fastnn
