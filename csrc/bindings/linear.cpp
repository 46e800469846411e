// Bindings of the linear kernels (cpu/linear.h, cuda/linear.h).
#include "bindings/backend.h"

namespace fastnn::bind {

namespace {

py::object linear_forward(py::object x_obj, py::object w_obj, py::object b_obj, bool relu) {
  const char* op = "linear";
  const Array x = float_array(op, "x", x_obj);
  const Array w = float_array(op, "weight", w_obj);
  const LinearShape s = LinearShape::from(op, x.dims, w.dims);
  require_same_dtype(op, x, w);
  const Array b = optional_float_array(op, "bias", b_obj, 1);
  if (b) {
    require_same_dtype(op, x, b);
    require_dims(op, b, {s.out_features}, "(out_features,)");
  }
  const Array y = new_array(op, "y", x.dtype, {s.batch, s.out_features});
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::linear_forward<T>(x.data<T>(), w.data<T>(), data_or_null<T>(b), y.data<T>(), s, relu,
                               context.exec());
  });
  return y.object;
}

// Returns (dx or None, dweight, dbias or None). dweight / dbias accumulate into the given arrays
// (the .grad convention; with accumulate false they are written over) or are freshly written
// when None is given.
py::tuple linear_backward(py::object x_obj, py::object w_obj, py::object dy_obj, py::object dw_obj,
                          py::object db_obj, bool compute_dx, bool compute_dbias,
                          bool accumulate) {
  const char* op = "linear_backward";
  const Array x = float_array(op, "x", x_obj);
  const Array w = float_array(op, "weight", w_obj);
  const LinearShape s = LinearShape::from(op, x.dims, w.dims);
  require_same_dtype(op, x, w);
  const Array dy = float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, {s.batch, s.out_features}, "(batch, out_features)");
  require_unused_grad_absent(op, "grad_bias", db_obj, compute_dbias, "bias=False");
  const ParamGrad dw =
      param_grad(op, "grad_weight", dw_obj, x, {s.out_features, s.in_features}, {&x, &w, &dy},
                 accumulate);
  const ParamGrad db =
      compute_dbias
          ? param_grad(op, "grad_bias", db_obj, x, {s.out_features}, {&x, &w, &dy}, accumulate)
          : ParamGrad{};
  const Array dx = compute_dx ? new_array(op, "dx", x.dtype, {s.batch, s.in_features}) : Array{};
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (dx)
      kernels::linear_backward_input<T>(dy.data<T>(), w.data<T>(), dx.data<T>(), s, context.exec());
    kernels::linear_backward_weight<T>(dy.data<T>(), x.data<T>(), dw.array.data<T>(), dw.accumulate,
                                       s, context.exec());
    if (db.array)
      kernels::bias_backward_rows<T>(dy.data<T>(), db.array.data<T>(), s.batch, s.out_features,
                                     db.accumulate, context.exec());
  });
  return py::make_tuple(dx.result(), dw.array.object, db.array.result());
}

}  // namespace

void init_linear(py::module_& m) {
  m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("relu") = false);
  m.def("linear_backward", &linear_backward, py::arg("x"), py::arg("weight"), py::arg("grad_out"),
        py::arg("grad_weight") = py::none(), py::arg("grad_bias") = py::none(),
        py::arg("compute_input_grad") = true, py::arg("compute_bias_grad") = true,
        py::arg("accumulate") = true);
}

}  // namespace fastnn::bind
