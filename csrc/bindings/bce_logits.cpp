// Binding of binary cross-entropy on logits (cpu/bce_logits.h, cuda/bce_logits.h). Targets
// outside [0, 1] other than -1 (unknown) raise the same ValueError on both backends: checked on the host before the CPU
// kernel, flagged by the GPU kernel.
#include "bindings/backend.h"
#include "common/shapes/bce_logits.h"

namespace fastnn::bind {

namespace {

// Returns (mean loss as a Python float, dloss/dlogits or None).
py::tuple bce_with_logits(py::object logits_obj, py::object targets_obj, py::object pos_obj,
                          bool compute_grad) {
  const char* op = "bce_with_logits";
  const Array x = float_array(op, "logits", logits_obj);
  if (x.ndim() < 1 || x.numel == 0)
    throw_value_error("fastnn.", op, ": argument 'logits' must have at least one element; got shape ",
                      shape_str(x.dims));
  const Array t = float_array(op, "targets", targets_obj);
  require_same_dtype(op, x, t);
  require_dims(op, t, x.dims, "(the shape of logits)");
  const int64_t classes = x.dims.back();
  const Array pw = optional_float_array(op, "pos_weight", pos_obj, 1);
  if (pw) {
    require_same_dtype(op, x, pw);
    require_dims(op, pw, {classes}, "(one weight per class, the last axis of logits)");
  }
  if constexpr (Backend::host_memory) {
    dispatch_float(x.dtype, [&](auto zero) {
      validate_bce_targets(op, "targets", t.data<decltype(zero)>(), t.numel);
    });
  }
  const Array grad = compute_grad ? new_array(op, "grad", x.dtype, x.dims) : Array{};
  LossResult result;
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    result = kernels::bce_with_logits<T>(x.data<T>(), t.data<T>(), data_or_null<T>(pw),
                                         data_or_null<T>(grad), x.numel, classes, context.exec());
  });
  if (result.first_invalid >= 0) {
    dispatch_float(x.dtype, [&](auto zero) {
      using T = decltype(zero);
      throw_bad_probability(op, "targets", result.first_invalid,
                            Backend::read<T>(t, result.first_invalid));
    });
  }
  return py::make_tuple(result.loss, grad.result());
}

}  // namespace

void init_bce_logits(py::module_& m) {
  m.def("bce_with_logits", &bce_with_logits, py::arg("logits"), py::arg("targets"),
        py::arg("pos_weight") = py::none(), py::arg("compute_grad") = true);
}

}  // namespace fastnn::bind
