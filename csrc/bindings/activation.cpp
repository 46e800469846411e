// Bindings for cpu/activation.h: one forward and one backward entry point, the activation named
// by a string ("relu", "leaky_relu", "sigmoid", "tanh", "gelu").
#include <string>

#include "bindings/arrays.h"
#include "cpu/activation.h"

namespace fastnn::bind {

namespace {

py::array activation_forward(const std::string& name, py::object x_obj, double negative_slope) {
  const Activation act = parse_activation(name);
  const std::string op = name;
  ArrayArg x = float_array(op.c_str(), "x", x_obj);
  py::array y = new_array(op.c_str(), x.dtype, x.dims);
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    T* py_ = static_cast<T*>(y.mutable_data());
    py::gil_scoped_release release;
    cpu::activation_forward<T>(act, px, py_, x.numel, static_cast<T>(negative_slope));
  });
  return y;
}

py::array activation_backward(const std::string& name, py::object saved_obj, py::object dy_obj,
                              double negative_slope) {
  const Activation act = parse_activation(name);
  const std::string op = name + "_backward";
  const char* saved_name = activation_backward_uses_output(act) ? "y" : "x";
  ArrayArg saved = float_array(op.c_str(), saved_name, saved_obj);
  ArrayArg dy = float_array(op.c_str(), "grad_out", dy_obj);
  require_same_dtype(op.c_str(), saved, dy);
  require_dims(op.c_str(), dy, saved.dims, "(the shape of the forward tensor)");
  py::array dx = new_array(op.c_str(), saved.dtype, saved.dims);
  dispatch_float(saved.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* ps = saved.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = static_cast<T*>(dx.mutable_data());
    py::gil_scoped_release release;
    cpu::activation_backward<T>(act, ps, pdy, pdx, saved.numel, static_cast<T>(negative_slope));
  });
  return dx;
}

}  // namespace

void init_activation(py::module_& m) {
  m.def("activation_forward", &activation_forward, py::arg("name"), py::arg("x"),
        py::arg("negative_slope") = 0.01);
  m.def("activation_backward", &activation_backward, py::arg("name"), py::arg("saved"),
        py::arg("grad_out"), py::arg("negative_slope") = 0.01);
}

}  // namespace fastnn::bind
