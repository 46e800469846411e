// Bindings of the softmax family and the fused softmax cross-entropy (cpu/softmax_xent.h,
// cuda/softmax_xent.h). The loss comes back as a Python float (on the GPU, reading it waits for
// the stream). An invalid label raises the same ValueError on both backends: the CPU checks
// labels before the kernel, the GPU kernel flags the first bad one.
#include <string>

#include "bindings/backend.h"
#include "common/shapes/rows.h"

namespace fastnn::bind {

namespace {

enum class Family { softmax, log_softmax };

// softmax / log_softmax over the last axis of a 2-D (N, C) array.
py::object softmax_family_forward(const char* op, py::object x_obj, Family family) {
  const Array x = float_array(op, "x", x_obj);
  const RowsShape s = RowsShape::from(op, "x", x.dims, false);
  const Array y = new_array(op, "y", x.dtype, x.dims);
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (family == Family::log_softmax)
      kernels::log_softmax_forward<T>(x.data<T>(), y.data<T>(), s, context.exec());
    else
      kernels::softmax_forward<T>(x.data<T>(), y.data<T>(), s, context.exec());
  });
  return y.object;
}

py::object softmax_family_backward(const char* op, py::object y_obj, py::object dy_obj,
                                   Family family) {
  const Array y = float_array(op, "y", y_obj);
  const RowsShape s = RowsShape::from(op, "y", y.dims, false);
  const Array dy = float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, y, dy);
  require_dims(op, dy, y.dims, "(the shape of y)");
  const Array dx = new_array(op, "dx", y.dtype, y.dims);
  const Backend::Context context;
  dispatch_float(y.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    if (family == Family::log_softmax)
      kernels::log_softmax_backward<T>(y.data<T>(), dy.data<T>(), dx.data<T>(), s, context.exec());
    else
      kernels::softmax_backward<T>(y.data<T>(), dy.data<T>(), dx.data<T>(), s, context.exec());
  });
  return dx.object;
}

// Returns (mean loss as a Python float, dloss/dlogits or None).
py::tuple softmax_cross_entropy(py::object logits_obj, py::object labels_obj,
                                double label_smoothing, bool compute_grad) {
  const char* op = "softmax_cross_entropy";
  const Array logits = float_array(op, "logits", logits_obj);
  const RowsShape s = RowsShape::from(op, "logits", logits.dims, true);
  const Array labels = label_array(op, "labels", labels_obj);
  require_dims(op, labels, {s.rows}, "(one label per row of logits)");
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    throw_value_error("fastnn.", op, ": argument 'label_smoothing' must lie in [0, 1]; got ",
                      label_smoothing);
  if constexpr (Backend::host_memory) {
    dispatch_index(labels.dtype, [&](auto index_zero) {
      validate_labels(op, labels.data<decltype(index_zero)>(), s.rows, s.cols);
    });
  }
  const Array grad =
      compute_grad ? new_array(op, "grad", logits.dtype, logits.dims) : Array{};
  LossResult result;
  const Backend::Context context;
  dispatch_float(logits.dtype, [&](auto zero) {
    using T = decltype(zero);
    dispatch_index(labels.dtype, [&](auto index_zero) {
      using Label = decltype(index_zero);
      py::gil_scoped_release release;
      result = kernels::softmax_cross_entropy<T, Label>(
          logits.data<T>(), labels.data<Label>(), static_cast<T>(label_smoothing),
          data_or_null<T>(grad), s, context.exec());
    });
  });
  if (result.first_invalid >= 0) {
    dispatch_index(labels.dtype, [&](auto index_zero) {
      throw_bad_label(op, s.cols, result.first_invalid,
                      Backend::read<decltype(index_zero)>(labels, result.first_invalid));
    });
  }
  return py::make_tuple(result.loss, grad.result());
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
