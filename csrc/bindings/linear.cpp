// Bindings for cpu/linear.h.
#include "bindings/arrays.h"
#include "cpu/linear.h"

namespace fastnn::bind {

namespace {

py::array linear_forward(py::object x_obj, py::object w_obj, py::object b_obj, bool relu) {
  const char* op = "linear";
  ArrayArg x = float_array(op, "x", x_obj);
  ArrayArg w = float_array(op, "weight", w_obj);
  const LinearShape s = LinearShape::from(op, x.dims, w.dims);
  require_same_dtype(op, x, w);
  ArrayArg b = optional_float_array(op, "bias", b_obj, 1);
  if (b) {
    require_same_dtype(op, x, b);
    require_dims(op, b, {s.out_features}, "(out_features,)");
  }
  py::array y = new_array(op, x.dtype, {s.batch, s.out_features});
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    const T* pw = w.data<T>();
    const T* pb = b ? b.data<T>() : nullptr;
    T* py_ = static_cast<T*>(y.mutable_data());
    py::gil_scoped_release release;
    cpu::linear_forward<T>(px, pw, pb, py_, s, relu);
  });
  return y;
}

// Returns (dx or None, dweight, dbias or None). dweight / dbias accumulate into the given arrays
// (the .grad convention) or are freshly written when None is given.
py::tuple linear_backward(py::object x_obj, py::object w_obj, py::object dy_obj,
                          py::object dw_obj, py::object db_obj, bool compute_dx,
                          bool compute_dbias) {
  const char* op = "linear_backward";
  ArrayArg x = float_array(op, "x", x_obj);
  ArrayArg w = float_array(op, "weight", w_obj);
  const LinearShape s = LinearShape::from(op, x.dims, w.dims);
  require_same_dtype(op, x, w);
  ArrayArg dy = float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, {s.batch, s.out_features}, "(batch, out_features)");

  const ParamGrad dw =
      param_grad(op, "grad_weight", dw_obj, x, {s.out_features, s.in_features}, {&x, &w, &dy});
  const ParamGrad db = compute_dbias
                           ? param_grad(op, "grad_bias", db_obj, x, {s.out_features}, {&x, &w, &dy})
                           : ParamGrad{};
  py::array dx;
  if (compute_dx) dx = new_array(op, x.dtype, {s.batch, s.in_features});

  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    const T* pw = w.data<T>();
    const T* pdy = dy.data<T>();
    T* pdw = dw.arg.data<T>();
    T* pdb = compute_dbias ? db.arg.data<T>() : nullptr;
    T* pdx = compute_dx ? static_cast<T*>(dx.mutable_data()) : nullptr;
    py::gil_scoped_release release;
    if (pdx) cpu::linear_backward_input<T>(pdy, pw, pdx, s);
    cpu::linear_backward_weight<T>(pdy, px, pdw, dw.accumulate, s);
    if (pdb) cpu::bias_backward_rows<T>(pdy, pdb, s.batch, s.out_features, db.accumulate);
  });
  py::object db_out = compute_dbias ? py::object(db.arg.array) : py::none();
  py::object dx_out = compute_dx ? py::object(dx) : py::none();
  return py::make_tuple(dx_out, dw.arg.array, db_out);
}

}  // namespace

void init_linear(py::module_& m) {
  m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("relu") = false);
  m.def("linear_backward", &linear_backward, py::arg("x"), py::arg("weight"),
        py::arg("grad_out"), py::arg("grad_weight") = py::none(),
        py::arg("grad_bias") = py::none(), py::arg("compute_input_grad") = true,
        py::arg("compute_bias_grad") = true);
}

}  // namespace fastnn::bind
