// Bindings for cpu/conv2d.h. stride, padding and dilation arrive as (h, w) pairs (fastnn.ops
// turns ints into pairs); Conv2dShape::from checks every number.
#include <array>

#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "cpu/conv2d.h"

namespace fastnn::bind {

namespace {

using Pair = std::array<int64_t, 2>;

Conv2dParams conv2d_params(const Pair& stride, const Pair& padding, const Pair& dilation,
                           int64_t groups) {
  Conv2dParams p;
  p.stride_h = stride[0], p.stride_w = stride[1];
  p.pad_h = padding[0], p.pad_w = padding[1];
  p.dilation_h = dilation[0], p.dilation_w = dilation[1];
  p.groups = groups;
  return p;
}

// x and weight checked and converted, and the shape they make with the hyper-parameters.
struct Conv2dInputs {
  ArrayArg x, weight;
  Conv2dShape shape;
};

Conv2dInputs conv2d_inputs(const char* op, py::object x_obj, py::object w_obj,
                           const Conv2dParams& params) {
  Conv2dInputs in;
  in.x = float_array(op, "x", x_obj);
  in.weight = float_array(op, "weight", w_obj);
  require_same_dtype(op, in.x, in.weight);
  in.shape = Conv2dShape::from(op, in.x.dims, in.weight.dims, params);
  return in;
}

py::array conv2d_forward(py::object x_obj, py::object w_obj, py::object b_obj, Pair stride,
                         Pair padding, Pair dilation, int64_t groups, bool relu) {
  const char* op = "conv2d";
  const Conv2dInputs in = conv2d_inputs(op, x_obj, w_obj,
                                        conv2d_params(stride, padding, dilation, groups));
  const Conv2dShape& s = in.shape;
  ArrayArg b = optional_float_array(op, "bias", b_obj, 1);
  if (b) {
    require_same_dtype(op, in.x, b);
    require_dims(op, b, {s.out_channels}, "(C_out,)");
  }
  py::array y = new_array(op, in.x.dtype, s.output_dims());
  dispatch_float(in.x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = in.x.data<T>();
    const T* pw = in.weight.data<T>();
    const T* pb = b ? b.data<T>() : nullptr;
    T* py_ = static_cast<T*>(y.mutable_data());
    py::gil_scoped_release release;
    cpu::conv2d_forward<T>(px, pw, pb, py_, s, relu);
  });
  return y;
}

// Returns (dx or None, dweight, dbias or None). dweight / dbias accumulate into the given arrays
// (the .grad convention) or are freshly written when None is given.
py::tuple conv2d_backward(py::object x_obj, py::object w_obj, py::object dy_obj,
                          py::object dw_obj, py::object db_obj, Pair stride, Pair padding,
                          Pair dilation, int64_t groups, bool compute_dx, bool compute_dbias) {
  const char* op = "conv2d_backward";
  const Conv2dInputs in = conv2d_inputs(op, x_obj, w_obj,
                                        conv2d_params(stride, padding, dilation, groups));
  const Conv2dShape& s = in.shape;
  const ArrayArg& x = in.x;
  const ArrayArg& w = in.weight;
  ArrayArg dy = float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, s.output_dims(), "(the conv2d output's shape (N, C_out, H_out, W_out))");

  const ParamGrad dw = param_grad(op, "grad_weight", dw_obj, x, s.weight_dims(), {&x, &w, &dy});
  const ParamGrad db = compute_dbias
                           ? param_grad(op, "grad_bias", db_obj, x, {s.out_channels}, {&x, &w, &dy})
                           : ParamGrad{};
  py::array dx;
  if (compute_dx) dx = new_array(op, x.dtype, x.dims);

  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    const T* pw = w.data<T>();
    const T* pdy = dy.data<T>();
    T* pdw = dw.arg.data<T>();
    T* pdb = compute_dbias ? db.arg.data<T>() : nullptr;
    T* pdx = compute_dx ? static_cast<T*>(dx.mutable_data()) : nullptr;
    py::gil_scoped_release release;
    if (pdx) cpu::conv2d_backward_input<T>(pdy, pw, pdx, s);
    cpu::conv2d_backward_weight<T>(pdy, px, pdw, dw.accumulate, s);
    if (pdb) cpu::conv2d_backward_bias<T>(pdy, pdb, db.accumulate, s);
  });
  py::object db_out = compute_dbias ? py::object(db.arg.array) : py::none();
  py::object dx_out = compute_dx ? py::object(dx) : py::none();
  return py::make_tuple(dx_out, dw.arg.array, db_out);
}

// {"forward": ..., "input_grad": ..., "weight_grad": ...}: the methods cpu/conv2d.cpp takes for
// these arguments (tests use it to cover every path).
py::dict conv2d_plan(py::object x_obj, py::object w_obj, Pair stride, Pair padding,
                     Pair dilation, int64_t groups) {
  const char* op = "conv2d_plan";
  const Conv2dInputs in = conv2d_inputs(op, x_obj, w_obj,
                                        conv2d_params(stride, padding, dilation, groups));
  cpu::Conv2dPlan plan;
  dispatch_float(in.x.dtype, [&](auto zero) { plan = cpu::conv2d_plan<decltype(zero)>(in.shape); });
  py::dict d;
  d["forward"] = plan.forward;
  d["input_grad"] = plan.input_grad;
  d["weight_grad"] = plan.weight_grad;
  return d;
}

}  // namespace

void init_conv2d(py::module_& m) {
  m.def("_conv2d_plan", &conv2d_plan, py::arg("x"), py::arg("weight"),
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Pair{0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1);
  m.def("conv2d_forward", &conv2d_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("stride") = Pair{1, 1},
        py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1},
        py::arg("groups") = 1, py::arg("relu") = false);
  m.def("conv2d_backward", &conv2d_backward, py::arg("x"), py::arg("weight"),
        py::arg("grad_out"), py::arg("grad_weight") = py::none(),
        py::arg("grad_bias") = py::none(), py::arg("stride") = Pair{1, 1},
        py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1},
        py::arg("groups") = 1, py::arg("compute_input_grad") = true,
        py::arg("compute_bias_grad") = true);
}

}  // namespace fastnn::bind
