// Binding for cpu/bce_logits.h.
#include "bindings/arrays.h"
#include "common/shapes/rows.h"
#include "cpu/bce_logits.h"

namespace fastnn::bind {

namespace {

// Returns (mean loss as a Python float, dloss/dlogits or None).
py::tuple bce_with_logits(py::object logits_obj, py::object targets_obj, py::object pos_obj,
                          bool compute_grad) {
  const char* op = "bce_with_logits";
  ArrayArg x = float_array(op, "logits", logits_obj);
  if (x.ndim() < 1 || x.numel == 0)
    throw_value_error("fastnn.", op, ": argument 'logits' must have at least one element; got shape ",
                      shape_str(x.dims));
  ArrayArg t = float_array(op, "targets", targets_obj);
  require_same_dtype(op, x, t);
  require_dims(op, t, x.dims, "(the shape of logits)");
  const int64_t classes = x.dims.back();
  ArrayArg pw = optional_float_array(op, "pos_weight", pos_obj, 1);
  if (pw) {
    require_same_dtype(op, x, pw);
    require_dims(op, pw, {classes}, "(one weight per class, the last axis of logits)");
  }
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    validate_probabilities(op, "targets", t.data<T>(), t.numel);
  });
  py::array grad;
  if (compute_grad) grad = new_array(op, x.dtype, x.dims);
  double loss = 0;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    const T* pt = t.data<T>();
    const T* ppw = pw ? pw.data<T>() : nullptr;
    T* pg = compute_grad ? static_cast<T*>(grad.mutable_data()) : nullptr;
    const int64_t n = x.numel;
    py::gil_scoped_release release;
    loss = cpu::bce_with_logits<T>(px, pt, ppw, pg, n, classes);
  });
  py::object grad_out = compute_grad ? py::object(grad) : py::none();
  return py::make_tuple(loss, grad_out);
}

}  // namespace

void init_bce_logits(py::module_& m) {
  m.def("bce_with_logits", &bce_with_logits, py::arg("logits"), py::arg("targets"),
        py::arg("pos_weight") = py::none(), py::arg("compute_grad") = true);
}

}  // namespace fastnn::bind
