// Bindings of the conv2d kernels (cpu/conv2d.h, cuda/conv2d.h). stride, padding and dilation
// arrive as (h, w) pairs (fastnn.ops turns ints into pairs); Conv2dShape::from checks every
// number. conv2d_check_params lets nn.Conv2d apply the same rule (Conv2dShape::validate_params)
// when it is built, before any array exists.
#include <array>
#include <string>

#include <pybind11/stl.h>

#include "bindings/backend.h"
#include "bindings/conv2d_args.h"

namespace fastnn::bind {

namespace {

py::object conv2d_forward(py::object x_obj, py::object w_obj, py::object b_obj, Pair stride,
                          Pair padding, Pair dilation, int64_t groups, bool relu) {
  const char* op = "conv2d";
  const Conv2dInputs in =
      conv2d_inputs(op, x_obj, w_obj, conv2d_params(stride, padding, dilation, groups));
  const Conv2dShape& s = in.shape;
  const Array b = optional_float_array(op, "bias", b_obj, 1);
  if (b) {
    require_same_dtype(op, in.x, b);
    require_dims(op, b, {s.out_channels}, "(C_out,)");
  }
  const Array y = new_array(op, "y", in.x.dtype, s.output_dims());
  const Backend::Context context;
  dispatch_float(in.x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::conv2d_forward<T>(in.x.data<T>(), in.weight.data<T>(), data_or_null<T>(b),
                               y.data<T>(), s, relu, context.exec());
  });
  return y.object;
}

// Returns (dx or None, dweight, dbias or None). dweight / dbias accumulate into the given arrays
// (the .grad convention; with accumulate false they are written over) or are freshly written
// when None is given.
py::tuple conv2d_backward(py::object x_obj, py::object w_obj, py::object dy_obj,
                          py::object dw_obj, py::object db_obj, Pair stride, Pair padding,
                          Pair dilation, int64_t groups, bool compute_dx, bool compute_dbias,
                          bool accumulate) {
  const char* op = "conv2d_backward";
  const Conv2dInputs in =
      conv2d_inputs(op, x_obj, w_obj, conv2d_params(stride, padding, dilation, groups));
  const Conv2dShape& s = in.shape;
  const Array& x = in.x;
  const Array& w = in.weight;
  const Array dy = float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, s.output_dims(), "(the conv2d output's shape (N, C_out, H_out, W_out))");
  require_unused_grad_absent(op, "grad_bias", db_obj, compute_dbias, "bias=False");
  const ParamGrad dw =
      param_grad(op, "grad_weight", dw_obj, x, s.weight_dims(), {&x, &w, &dy}, accumulate);
  const ParamGrad db =
      compute_dbias
          ? param_grad(op, "grad_bias", db_obj, x, {s.out_channels}, {&x, &w, &dy}, accumulate)
          : ParamGrad{};
  const Array dx = compute_dx ? new_array(op, "dx", x.dtype, x.dims) : Array{};
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (dx)
      kernels::conv2d_backward_input<T>(dy.data<T>(), w.data<T>(), dx.data<T>(), s, context.exec());
    kernels::conv2d_backward_weight<T>(dy.data<T>(), x.data<T>(), dw.array.data<T>(),
                                       dw.accumulate, s, context.exec());
    if (db.array)
      kernels::conv2d_backward_bias<T>(dy.data<T>(), db.array.data<T>(), db.accumulate, s,
                                       context.exec());
  });
  return py::make_tuple(dx.result(), dw.array.object, db.array.result());
}

// Lets a layer reject bad hyper-parameters at construction, by the same rule as the ops.
void conv2d_check_params(const std::string& caller, int64_t in_channels, int64_t out_channels,
                         Pair kernel_size, Pair stride, Pair padding, Pair dilation,
                         int64_t groups) {
  Conv2dShape::validate_params(caller.c_str(), in_channels, out_channels, kernel_size[0],
                               kernel_size[1], conv2d_params(stride, padding, dilation, groups));
}

}  // namespace

void init_conv2d(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("stride") = Pair{1, 1},
        py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1},
        py::arg("groups") = 1, py::arg("relu") = false);
  m.def("conv2d_backward", &conv2d_backward, py::arg("x"), py::arg("weight"),
        py::arg("grad_out"), py::arg("grad_weight") = py::none(),
        py::arg("grad_bias") = py::none(), py::arg("stride") = Pair{1, 1},
        py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1},
        py::arg("groups") = 1, py::arg("compute_input_grad") = true,
        py::arg("compute_bias_grad") = true, py::arg("accumulate") = true);
  m.def("conv2d_check_params", &conv2d_check_params, py::arg("caller"), py::arg("in_channels"),
        py::arg("out_channels"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"));
}

}  // namespace fastnn::bind
