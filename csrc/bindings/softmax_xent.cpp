// Bindings for cpu/softmax_xent.h.
#include <string>

#include "bindings/arrays.h"
#include "cpu/softmax_xent.h"

namespace fastnn::bind {

namespace {

// softmax / log_softmax over the last axis of a 2-D (N, C) array.
py::array softmax_family_forward(const std::string& op, py::object x_obj, bool log) {
  ArrayArg x = float_array(op.c_str(), "x", x_obj);
  const RowsShape s = RowsShape::from(op.c_str(), "x", x.dims, false);
  py::array y = new_array(op.c_str(), x.dtype, x.dims);
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    T* py_ = static_cast<T*>(y.mutable_data());
    py::gil_scoped_release release;
    if (log) cpu::log_softmax_forward<T>(px, py_, s);
    else cpu::softmax_forward<T>(px, py_, s);
  });
  return y;
}

py::array softmax_family_backward(const std::string& op, py::object y_obj, py::object dy_obj,
                                  bool log) {
  ArrayArg y = float_array(op.c_str(), "y", y_obj);
  const RowsShape s = RowsShape::from(op.c_str(), "y", y.dims, false);
  ArrayArg dy = float_array(op.c_str(), "grad_out", dy_obj);
  require_same_dtype(op.c_str(), y, dy);
  require_dims(op.c_str(), dy, y.dims, "(the shape of y)");
  py::array dx = new_array(op.c_str(), y.dtype, y.dims);
  dispatch_float(y.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* py_ = y.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = static_cast<T*>(dx.mutable_data());
    py::gil_scoped_release release;
    if (log) cpu::log_softmax_backward<T>(py_, pdy, pdx, s);
    else cpu::softmax_backward<T>(py_, pdy, pdx, s);
  });
  return dx;
}

// Returns (mean loss as a Python float, dloss/dlogits or None).
py::tuple softmax_cross_entropy(py::object logits_obj, py::object labels_obj,
                                double label_smoothing, bool compute_grad) {
  const char* op = "softmax_cross_entropy";
  ArrayArg logits = float_array(op, "logits", logits_obj);
  const RowsShape s = RowsShape::from(op, "logits", logits.dims, true);
  ArrayArg labels = label_array(op, "labels", labels_obj);
  require_dims(op, labels, {s.rows}, "(one label per row of logits)");
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    throw_value_error("fastnn.", op, ": argument 'label_smoothing' must lie in [0, 1]; got ",
                      label_smoothing);
  if (labels.dtype == Dtype::int64)
    validate_labels(op, labels.data<int64_t>(), s.rows, s.cols);
  else
    validate_labels(op, labels.data<int32_t>(), s.rows, s.cols);
  py::array grad;
  if (compute_grad) grad = new_array(op, logits.dtype, logits.dims);
  double loss = 0;
  dispatch_float(logits.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = logits.data<T>();
    T* pg = compute_grad ? static_cast<T*>(grad.mutable_data()) : nullptr;
    const T eps = static_cast<T>(label_smoothing);
    const bool wide = labels.dtype == Dtype::int64;
    const void* pl = labels.array.data();
    py::gil_scoped_release release;
    loss = wide ? cpu::softmax_cross_entropy<T>(px, static_cast<const int64_t*>(pl), eps, pg, s)
                : cpu::softmax_cross_entropy<T>(px, static_cast<const int32_t*>(pl), eps, pg, s);
  });
  py::object grad_out = compute_grad ? py::object(grad) : py::none();
  return py::make_tuple(loss, grad_out);
}

}  // namespace

void init_softmax_xent(py::module_& m) {
  m.def("softmax", [](py::object x) { return softmax_family_forward("softmax", x, false); },
        py::arg("x"));
  m.def("log_softmax",
        [](py::object x) { return softmax_family_forward("log_softmax", x, true); },
        py::arg("x"));
  m.def("softmax_backward",
        [](py::object y, py::object dy) {
          return softmax_family_backward("softmax_backward", y, dy, false);
        },
        py::arg("y"), py::arg("grad_out"));
  m.def("log_softmax_backward",
        [](py::object y, py::object dy) {
          return softmax_family_backward("log_softmax_backward", y, dy, true);
        },
        py::arg("y"), py::arg("grad_out"));
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
        py::arg("label_smoothing") = 0.0, py::arg("compute_grad") = true);
}

}  // namespace fastnn::bind
