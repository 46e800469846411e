// Bindings of the activation kernels (cpu/activation.h, cuda/activation.h): one forward and one
// backward entry point, the activation named by a string ("relu", "leaky_relu", "sigmoid",
// "tanh", "gelu"); and add_relu, a residual sum with the ReLU after it.
#include <string>

#include "bindings/backend.h"

namespace fastnn::bind {

namespace {

py::object activation_forward(const std::string& name, py::object x_obj, double negative_slope) {
  const Activation act = parse_activation(name);
  const char* op = name.c_str();
  const Array x = float_array(op, "x", x_obj);
  const Array y = new_array(op, "y", x.dtype, x.dims);
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::activation_forward<T>(act, x.data<T>(), y.data<T>(), x.numel,
                                   static_cast<T>(negative_slope), context.exec());
  });
  return y.object;
}

py::object activation_backward(const std::string& name, py::object saved_obj, py::object dy_obj,
                               double negative_slope) {
  const Activation act = parse_activation(name);
  const std::string op = name + "_backward";
  const char* saved_name = activation_backward_uses_output(act) ? "y" : "x";
  const Array saved = float_array(op.c_str(), saved_name, saved_obj);
  const Array dy = float_array(op.c_str(), "grad_out", dy_obj);
  require_same_dtype(op.c_str(), saved, dy);
  require_dims(op.c_str(), dy, saved.dims, "(the shape of the forward tensor)");
  const Array dx = new_array(op.c_str(), "dx", saved.dtype, saved.dims);
  const Backend::Context context;
  dispatch_float(saved.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::activation_backward<T>(act, saved.data<T>(), dy.data<T>(), dx.data<T>(), saved.numel,
                                    static_cast<T>(negative_slope), context.exec());
  });
  return dx.object;
}

// y = max(a + b, 0), into `out` when given: a fresh array, or a or b itself (each element is
// read before its own output is written, so only a partial overlap is refused).
py::object add_relu(py::object a_obj, py::object b_obj, py::object out_obj) {
  const char* op = "add_relu";
  const Array a = float_array(op, "a", a_obj);
  const Array b = float_array(op, "b", b_obj);
  require_same_dtype(op, a, b);
  require_dims(op, b, a.dims, "(the shape of a)");
  Array y;
  if (out_obj.is_none()) {
    y = new_array(op, "out", a.dtype, a.dims);
  } else {
    y = float_array(op, "out", out_obj, -1, Access::write);
    require_same_dtype(op, a, y);
    require_dims(op, y, a.dims, "(the shape of a)");
    for (const Array* in : {&a, &b})
      if (in->address != y.address) require_no_overlap(op, y, *in);
  }
  const Backend::Context context;
  dispatch_float(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::add_relu<T>(a.data<T>(), b.data<T>(), y.data<T>(), a.numel, context.exec());
  });
  return y.object;
}

}  // namespace

void init_activation(py::module_& m) {
  m.def("activation_forward", &activation_forward, py::arg("name"), py::arg("x"),
        py::arg("negative_slope") = 0.01);
  m.def("activation_backward", &activation_backward, py::arg("name"), py::arg("saved"),
        py::arg("grad_out"), py::arg("negative_slope") = 0.01);
  m.def("add_relu", &add_relu, py::arg("a"), py::arg("b"), py::arg("out") = py::none());
}

}  // namespace fastnn::bind
