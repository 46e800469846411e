// Overflow-checked size arithmetic: every element count a kernel or binding allocates is
// computed here first, so a product past int64 raises ValueError instead of wrapping.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "common/errors.h"

namespace fastnn {

// a * b, or ValueError naming the op when the product overflows int64 (sizes are >= 0).
inline int64_t checked_mul(int64_t a, int64_t b, const char* op) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) {
    throw_value_error("fastnn.", op, ": size ", a, " * ", b, " overflows int64");
  }
  return r;
}

inline int64_t checked_numel(const std::vector<int64_t>& dims, const char* op) {
  int64_t n = 1;
  for (int64_t d : dims) n = checked_mul(n, d, op);
  return n;
}

}  // namespace fastnn
