// Argument checks of the batch-norm bindings, shared by the CPU bindings (ArrayArg,
// bindings/batchnorm.cpp) and the CUDA bindings (DeviceArray, bindings_cuda/batchnorm.cpp), so
// both reject the same input with the same words. Include after the array header: the checks
// (require_same_dtype, require_dims, require_no_overlap) are found for either array type.
#pragma once

#include "common/errors.h"
#include "common/shapes/batchnorm.h"

namespace fastnn::bind {

// An optional array's data, or null.
template <class T, class Array>
T* data_or_null(const Array& a) {
  return a ? a.template data<T>() : nullptr;
}

// A given per-channel array: (C,) with x's dtype, distinct from x's memory.
template <class Array>
void check_channel_array(const char* op, const Array& a, const Array& x, const BatchNormShape& s) {
  require_same_dtype(op, x, a);
  require_dims(op, a, {s.channels}, "(one value per channel, C = x.shape[1])");
  require_no_overlap(op, a, x);
}

// The running statistics, both given or neither.
inline void require_running_stats_together(const char* op, bool has_mean, bool has_var) {
  if (has_mean != has_var)
    throw_value_error("fastnn.", op,
                      ": arguments 'running_mean' and 'running_var' must be given together; got ",
                      has_mean ? "running_mean only" : "running_var only");
}

}  // namespace fastnn::bind
