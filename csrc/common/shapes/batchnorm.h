// Shape of batch normalisation, shared by both backends and the bindings.
//   x: (N, C) or (N, C, *spatial), viewed as (N, C, S) with S the product of the spatial sizes
//   (S = 1 for (N, C); S = H * W for NCHW). Statistics are per channel over the N * S values.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/errors.h"
#include "common/sizes.h"

namespace fastnn {

struct BatchNormShape {
  int64_t batch = 0, channels = 0, spatial = 1;

  int64_t values_per_channel() const { return batch * spatial; }
  int64_t numel() const { return batch * channels * spatial; }

  // Training normalises by batch statistics, which need more than one value per channel
  // (PyTorch's rule; the unbiased running variance divides by count - 1).
  static BatchNormShape from(const char* op, const std::vector<int64_t>& x_dims, bool training) {
    if (x_dims.size() < 2)
      throw_value_error("fastnn.", op, ": argument 'x' must be (N, C) or (N, C, H, W); got shape ",
                        shape_str(x_dims));
    BatchNormShape s;
    s.batch = x_dims[0];
    s.channels = x_dims[1];
    if (s.channels < 1)
      throw_value_error("fastnn.", op, ": argument 'x' must have at least one channel; got shape ",
                        shape_str(x_dims));
    for (size_t i = 2; i < x_dims.size(); ++i) s.spatial = checked_mul(s.spatial, x_dims[i], op);
    checked_numel(x_dims, op);
    if (training && s.values_per_channel() <= 1)
      throw_value_error("fastnn.", op,
                        ": expected more than 1 value per channel when training; got input shape ",
                        shape_str(x_dims));
    return s;
  }

  // momentum in [0, 1] (the weight of the new batch in the running estimate); eps >= 0.
  static void validate_hyperparameters(const char* op, double momentum, double eps) {
    if (!(momentum >= 0.0 && momentum <= 1.0))
      throw_value_error("fastnn.", op, ": argument 'momentum' must lie in [0, 1]; got ", momentum);
    if (!(eps >= 0.0) || !std::isfinite(eps))
      throw_value_error("fastnn.", op, ": argument 'eps' must be finite and >= 0; got ", eps);
  }
};

}  // namespace fastnn
