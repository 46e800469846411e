// Shape of a fully connected layer, shared by both backends and the bindings.
//   x: (N, in_features)  weight: (out_features, in_features)  bias: (out_features,)
//   y: (N, out_features)
#pragma once

#include <cstdint>
#include <vector>

#include "common/errors.h"
#include "common/sizes.h"

namespace fastnn {

struct LinearShape {
  int64_t batch = 0, in_features = 0, out_features = 0;

  // From the arrays' dims; raises ValueError naming `op` and the argument that disagrees.
  static LinearShape from(const char* op, const std::vector<int64_t>& x_dims,
                          const std::vector<int64_t>& weight_dims) {
    if (x_dims.size() != 2)
      throw_value_error("fastnn.", op, ": argument 'x' must be 2-D (batch, in_features); got shape ",
                        shape_str(x_dims));
    if (weight_dims.size() != 2)
      throw_value_error("fastnn.", op,
                        ": argument 'weight' must be 2-D (out_features, in_features); got shape ",
                        shape_str(weight_dims));
    if (weight_dims[1] != x_dims[1])
      throw_value_error("fastnn.", op, ": argument 'weight' must have ", x_dims[1],
                        " columns to match x's in_features; got shape ", shape_str(weight_dims));
    LinearShape s{x_dims[0], x_dims[1], weight_dims[0]};
    if (s.in_features == 0 || s.out_features == 0)
      throw_value_error("fastnn.", op, ": in_features and out_features must be >= 1; got weight shape ",
                        shape_str(weight_dims));
    checked_mul(s.batch, s.out_features, op);
    checked_mul(s.batch, s.in_features, op);
    checked_mul(s.out_features, s.in_features, op);
    return s;
  }
};

}  // namespace fastnn
