// CUDA bindings for cuda/activation.h (the contract of bindings/activation.cpp).
#include <string>

#include "bindings_cuda/device_arrays.h"
#include "cuda/activation.h"

namespace fastnn::bind {

namespace {

py::object activation_forward(const std::string& name, py::object x_obj, double negative_slope) {
  const Activation act = parse_activation(name);
  const char* op = name.c_str();
  DeviceArray x = device_float_array(op, "x", x_obj);
  DeviceArray y = new_device_array(op, "y", x.dtype, x.dims);
  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::activation_forward<T>(act, x.data<T>(), y.data<T>(), x.numel, static_cast<T>(negative_slope),
                                context.exec());
  });
  return y.object;
}

py::object activation_backward(const std::string& name, py::object saved_obj, py::object dy_obj,
                               double negative_slope) {
  const Activation act = parse_activation(name);
  const std::string op = name + "_backward";
  DeviceArray saved = device_float_array(op.c_str(), activation_backward_uses_output(act) ? "y" : "x", saved_obj);
  DeviceArray dy = device_float_array(op.c_str(), "grad_out", dy_obj);
  require_same_dtype(op.c_str(), saved, dy);
  require_dims(op.c_str(), dy, saved.dims, "(the shape of the forward tensor)");
  DeviceArray dx = new_device_array(op.c_str(), "dx", saved.dtype, saved.dims);
  const OpContext context;
  dispatch_float(saved.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::activation_backward<T>(act, saved.data<T>(), dy.data<T>(), dx.data<T>(), saved.numel,
                                 static_cast<T>(negative_slope), context.exec());
  });
  return dx.object;
}

}  // namespace

void init_activation(py::module_& m) {
  m.def("activation_forward", &activation_forward, py::arg("name"), py::arg("x"),
        py::arg("negative_slope") = 0.01);
  m.def("activation_backward", &activation_backward, py::arg("name"), py::arg("saved"),
        py::arg("grad_out"), py::arg("negative_slope") = 0.01);
}

}  // namespace fastnn::bind
