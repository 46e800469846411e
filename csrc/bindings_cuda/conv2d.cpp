// CUDA bindings for cuda/conv2d.h (the contract of bindings/conv2d.cpp): stride, padding and
// dilation arrive as (h, w) pairs; Conv2dShape::from checks every number.
#include <array>

#include <pybind11/stl.h>

#include "bindings_cuda/device_arrays.h"
#include "cuda/conv2d.h"

namespace fastnn::bind {

namespace {

using Pair = std::array<int64_t, 2>;

struct Conv2dInputs {
  DeviceArray x, weight;
  Conv2dShape shape;
};

Conv2dInputs conv2d_inputs(const char* op, py::object x_obj, py::object w_obj, const Pair& stride,
                           const Pair& padding, const Pair& dilation, int64_t groups) {
  Conv2dParams params;
  params.stride_h = stride[0], params.stride_w = stride[1];
  params.pad_h = padding[0], params.pad_w = padding[1];
  params.dilation_h = dilation[0], params.dilation_w = dilation[1];
  params.groups = groups;
  Conv2dInputs in;
  in.x = device_float_array(op, "x", x_obj);
  in.weight = device_float_array(op, "weight", w_obj);
  require_same_dtype(op, in.x, in.weight);
  in.shape = Conv2dShape::from(op, in.x.dims, in.weight.dims, params);
  return in;
}

py::object conv2d_forward(py::object x_obj, py::object w_obj, py::object b_obj, Pair stride,
                          Pair padding, Pair dilation, int64_t groups) {
  const char* op = "conv2d";
  const Conv2dInputs in = conv2d_inputs(op, x_obj, w_obj, stride, padding, dilation, groups);
  const Conv2dShape& s = in.shape;
  DeviceArray b = optional_device_float_array(op, "bias", b_obj, 1);
  if (b) {
    require_same_dtype(op, in.x, b);
    require_dims(op, b, {s.out_channels}, "(C_out,)");
  }
  DeviceArray y = new_device_array(op, "y", in.x.dtype, s.output_dims());
  const OpContext context;
  dispatch_float(in.x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::conv2d_forward<T>(in.x.data<T>(), in.weight.data<T>(), b ? b.data<T>() : nullptr, y.data<T>(), s,
                            context.exec());
  });
  return y.object;
}

// Returns (dx or None, dweight, dbias or None); dweight / dbias accumulate into given arrays.
py::tuple conv2d_backward(py::object x_obj, py::object w_obj, py::object dy_obj, py::object dw_obj,
                          py::object db_obj, Pair stride, Pair padding, Pair dilation, int64_t groups,
                          bool compute_dx, bool compute_dbias) {
  const char* op = "conv2d_backward";
  const Conv2dInputs in = conv2d_inputs(op, x_obj, w_obj, stride, padding, dilation, groups);
  const Conv2dShape& s = in.shape;
  const DeviceArray& x = in.x;
  const DeviceArray& w = in.weight;
  DeviceArray dy = device_float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, s.output_dims(), "(the conv2d output's shape (N, C_out, H_out, W_out))");

  auto grad_arg = [&](py::object obj, const char* name, std::vector<int64_t> dims) {
    DeviceArray g = optional_device_float_array(op, name, obj, -1, Access::write);
    if (!g) return new_device_array(op, name, x.dtype, dims);
    require_same_dtype(op, x, g);
    require_dims(op, g, dims, "(the parameter's shape)");
    require_no_overlap(op, g, x);
    require_no_overlap(op, g, w);
    require_no_overlap(op, g, dy);
    return g;
  };
  const bool accumulate_w = !dw_obj.is_none(), accumulate_b = !db_obj.is_none();
  DeviceArray dw = grad_arg(dw_obj, "grad_weight", s.weight_dims());
  DeviceArray db = compute_dbias ? grad_arg(db_obj, "grad_bias", {s.out_channels}) : DeviceArray{};
  DeviceArray dx = compute_dx ? new_device_array(op, "dx", x.dtype, x.dims) : DeviceArray{};

  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (dx) cuda::conv2d_backward_input<T>(dy.data<T>(), w.data<T>(), dx.data<T>(), s, context.exec());
    cuda::conv2d_backward_weight<T>(dy.data<T>(), x.data<T>(), dw.data<T>(), accumulate_w, s, context.exec());
    if (db) cuda::conv2d_backward_bias<T>(dy.data<T>(), db.data<T>(), accumulate_b, s, context.exec());
  });
  return py::make_tuple(dx ? dx.object : py::none(), dw.object, db ? db.object : py::none());
}

}  // namespace

void init_conv2d(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("stride") = Pair{1, 1},
        py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1},
        py::arg("groups") = 1);
  m.def("conv2d_backward", &conv2d_backward, py::arg("x"), py::arg("weight"),
        py::arg("grad_out"), py::arg("grad_weight") = py::none(),
        py::arg("grad_bias") = py::none(), py::arg("stride") = Pair{1, 1},
        py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1},
        py::arg("groups") = 1, py::arg("compute_input_grad") = true,
        py::arg("compute_bias_grad") = true);
}

}  // namespace fastnn::bind
