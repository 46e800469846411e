// The arguments every conv2d binding converts first: x and weight, and the shape they make with
// the (h, w) hyper-parameters. Shared by the op bindings (bindings/conv2d.cpp) and the CPU's
// plan query (bindings/cpu/conv2d_plan.cpp). Include after bindings/backend.h.
#pragma once

#include <array>

#include "bindings/arguments.h"
#include "common/shapes/conv2d.h"

namespace fastnn::bind {

using Pair = std::array<int64_t, 2>;

inline Conv2dParams conv2d_params(const Pair& stride, const Pair& padding, const Pair& dilation,
                                  int64_t groups) {
  Conv2dParams p;
  p.stride_h = stride[0], p.stride_w = stride[1];
  p.pad_h = padding[0], p.pad_w = padding[1];
  p.dilation_h = dilation[0], p.dilation_w = dilation[1];
  p.groups = groups;
  return p;
}

struct Conv2dInputs {
  Array x, weight;
  Conv2dShape shape;
};

inline Conv2dInputs conv2d_inputs(const char* op, const py::handle& x_obj,
                                  const py::handle& w_obj, const Conv2dParams& params) {
  Conv2dInputs in;
  in.x = float_array(op, "x", x_obj);
  in.weight = float_array(op, "weight", w_obj);
  require_same_dtype(op, in.x, in.weight);
  in.shape = Conv2dShape::from(op, in.x.dims, in.weight.dims, params);
  return in;
}

}  // namespace fastnn::bind
