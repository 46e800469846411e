// CUDA bindings for cuda/linear.h (the contract of bindings/linear.cpp).
#include "bindings_cuda/device_arrays.h"
#include "cuda/linear.h"

namespace fastnn::bind {

namespace {

py::object linear_forward(py::object x_obj, py::object w_obj, py::object b_obj) {
  const char* op = "linear";
  DeviceArray x = device_float_array(op, "x", x_obj);
  DeviceArray w = device_float_array(op, "weight", w_obj);
  const LinearShape s = LinearShape::from(op, x.dims, w.dims);
  require_same_dtype(op, x, w);
  DeviceArray b = optional_device_float_array(op, "bias", b_obj, 1);
  if (b) {
    require_same_dtype(op, x, b);
    require_dims(op, b, {s.out_features}, "(out_features,)");
  }
  DeviceArray y = new_device_array(op, "y", x.dtype, {s.batch, s.out_features});
  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::linear_forward<T>(x.data<T>(), w.data<T>(), b ? b.data<T>() : nullptr, y.data<T>(), s,
                            context.exec());
  });
  return y.object;
}

// Returns (dx or None, dweight, dbias or None); dweight / dbias accumulate into given arrays.
py::tuple linear_backward(py::object x_obj, py::object w_obj, py::object dy_obj,
                          py::object dw_obj, py::object db_obj, bool compute_dx,
                          bool compute_dbias) {
  const char* op = "linear_backward";
  DeviceArray x = device_float_array(op, "x", x_obj);
  DeviceArray w = device_float_array(op, "weight", w_obj);
  const LinearShape s = LinearShape::from(op, x.dims, w.dims);
  require_same_dtype(op, x, w);
  DeviceArray dy = device_float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, {s.batch, s.out_features}, "(batch, out_features)");

  auto grad_arg = [&](py::object obj, const char* name, std::vector<int64_t> dims) {
    DeviceArray g = optional_device_float_array(op, name, obj, -1, Access::write);
    if (g) {
      require_same_dtype(op, x, g);
      require_dims(op, g, dims, "(the parameter's shape)");
      require_no_overlap(op, g, x);
      require_no_overlap(op, g, w);
      require_no_overlap(op, g, dy);
    } else {
      g = new_device_array(op, name, x.dtype, dims);
    }
    return g;
  };
  const bool accumulate_w = !dw_obj.is_none(), accumulate_b = !db_obj.is_none();
  DeviceArray dw = grad_arg(dw_obj, "grad_weight", {s.out_features, s.in_features});
  DeviceArray db = compute_dbias ? grad_arg(db_obj, "grad_bias", {s.out_features}) : DeviceArray{};
  DeviceArray dx = compute_dx ? new_device_array(op, "dx", x.dtype, {s.batch, s.in_features}) : DeviceArray{};

  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (dx) cuda::linear_backward_input<T>(dy.data<T>(), w.data<T>(), dx.data<T>(), s, context.exec());
    cuda::linear_backward_weight<T>(dy.data<T>(), x.data<T>(), dw.data<T>(), accumulate_w, s, context.exec());
    if (db)
      cuda::bias_backward_rows<T>(dy.data<T>(), db.data<T>(), s.batch, s.out_features, accumulate_b,
                                  context.exec());
  });
  return py::make_tuple(dx ? dx.object : py::none(), dw.object, db ? db.object : py::none());
}

}  // namespace

void init_linear(py::module_& m) {
  m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias") = py::none());
  m.def("linear_backward", &linear_backward, py::arg("x"), py::arg("weight"),
        py::arg("grad_out"), py::arg("grad_weight") = py::none(),
        py::arg("grad_bias") = py::none(), py::arg("compute_input_grad") = true,
        py::arg("compute_bias_grad") = true);
}

}  // namespace fastnn::bind
