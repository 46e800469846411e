// The targets BCE-with-logits accepts, shared by both backends' kernels and the CPU binding: a
// probability in [0, 1], or exactly -1 for "unknown" (a missing attribute label: no loss, zero
// gradient, left out of the mean). Anything else (NaN included) is invalid.
#pragma once

#include "common/host_device.h"
#include "common/shapes/rows.h"

namespace fastnn {

constexpr double kUnknownTarget = -1.0;

template <class T>
FASTNN_HOST_DEVICE inline bool bce_target_unknown(T t) {
  return t == T(kUnknownTarget);
}

template <class T>
FASTNN_HOST_DEVICE inline bool bce_target_valid(T t) {
  return (t >= T(0) && t <= T(1)) || bce_target_unknown(t);
}

// ValueError naming the first invalid target (the message of a probability outside [0, 1], as
// the GPU raises it after its kernel flags the same index).
template <class T>
void validate_bce_targets(const char* op, const char* arg, const T* values, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!bce_target_valid(values[i])) throw_bad_probability(op, arg, i, values[i]);
  }
}

}  // namespace fastnn
