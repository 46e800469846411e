// CUDA bindings for cuda/softmax_xent.h (the contract of bindings/softmax_xent.cpp). The loss
// comes back as a Python float, which waits for the GPU; an invalid label found on the device
// raises the CPU backend's ValueError.
#include <string>

#include "bindings_cuda/device_arrays.h"
#include "cuda/softmax_xent.h"

namespace fastnn::bind {

namespace {

enum class Family { softmax, log_softmax };

py::object softmax_family_forward(const char* op, py::object x_obj, Family family) {
  DeviceArray x = device_float_array(op, "x", x_obj);
  const RowsShape s = RowsShape::from(op, "x", x.dims, false);
  DeviceArray y = new_device_array(op, "y", x.dtype, x.dims);
  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (family == Family::log_softmax) cuda::log_softmax_forward<T>(x.data<T>(), y.data<T>(), s, context.exec());
    else cuda::softmax_forward<T>(x.data<T>(), y.data<T>(), s, context.exec());
  });
  return y.object;
}

py::object softmax_family_backward(const char* op, py::object y_obj, py::object dy_obj, Family family) {
  DeviceArray y = device_float_array(op, "y", y_obj);
  const RowsShape s = RowsShape::from(op, "y", y.dims, false);
  DeviceArray dy = device_float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, y, dy);
  require_dims(op, dy, y.dims, "(the shape of y)");
  DeviceArray dx = new_device_array(op, "dx", y.dtype, y.dims);
  const OpContext context;
  dispatch_float(y.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (family == Family::log_softmax)
      cuda::log_softmax_backward<T>(y.data<T>(), dy.data<T>(), dx.data<T>(), s, context.exec());
    else
      cuda::softmax_backward<T>(y.data<T>(), dy.data<T>(), dx.data<T>(), s, context.exec());
  });
  return dx.object;
}

// Returns (mean loss as a Python float, dloss/dlogits or None).
py::tuple softmax_cross_entropy(py::object logits_obj, py::object labels_obj,
                                double label_smoothing, bool compute_grad) {
  const char* op = "softmax_cross_entropy";
  DeviceArray logits = device_float_array(op, "logits", logits_obj);
  const RowsShape s = RowsShape::from(op, "logits", logits.dims, true);
  DeviceArray labels = device_label_array(op, "labels", labels_obj);
  require_dims(op, labels, {s.rows}, "(one label per row of logits)");
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    throw_value_error("fastnn.", op, ": argument 'label_smoothing' must lie in [0, 1]; got ",
                      label_smoothing);
  DeviceArray grad = compute_grad ? new_device_array(op, "grad", logits.dtype, logits.dims) : DeviceArray{};
  const bool wide = labels.dtype == Dtype::int64;
  cuda::LossResult result;
  const OpContext context;
  dispatch_float(logits.dtype, [&](auto zero) {
    using T = decltype(zero);
    T* g = grad ? grad.data<T>() : nullptr;
    const T eps = static_cast<T>(label_smoothing);
    py::gil_scoped_release release;
    result = wide ? cuda::softmax_cross_entropy<T>(logits.data<T>(), labels.data<int64_t>(), eps, g, s, context.exec())
                  : cuda::softmax_cross_entropy<T>(logits.data<T>(), labels.data<int32_t>(), eps, g, s, context.exec());
  });
  if (result.first_invalid >= 0) {
    const int64_t value = wide ? read_element<int64_t>(labels, result.first_invalid)
                               : read_element<int32_t>(labels, result.first_invalid);
    throw_bad_label(op, s.cols, result.first_invalid, value);
  }
  return py::make_tuple(result.loss, grad ? grad.object : py::none());
}

}  // namespace

void init_softmax_xent(py::module_& m) {
  m.def("softmax", [](py::object x) { return softmax_family_forward("softmax", x, Family::softmax); },
        py::arg("x"));
  m.def("log_softmax",
        [](py::object x) { return softmax_family_forward("log_softmax", x, Family::log_softmax); },
        py::arg("x"));
  m.def("softmax_backward",
        [](py::object y, py::object dy) {
          return softmax_family_backward("softmax_backward", y, dy, Family::softmax);
        },
        py::arg("y"), py::arg("grad_out"));
  m.def("log_softmax_backward",
        [](py::object y, py::object dy) {
          return softmax_family_backward("log_softmax_backward", y, dy, Family::log_softmax);
        },
        py::arg("y"), py::arg("grad_out"));
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
        py::arg("label_smoothing") = 0.0, py::arg("compute_grad") = true);
}

}  // namespace fastnn::bind
