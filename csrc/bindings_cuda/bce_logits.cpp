// CUDA binding for cuda/bce_logits.h (the contract of bindings/bce_logits.cpp); targets outside
// [0, 1], found on the device, raise the CPU backend's ValueError.
#include "bindings_cuda/device_arrays.h"
#include "common/shapes/rows.h"
#include "cuda/bce_logits.h"

namespace fastnn::bind {

namespace {

// Returns (mean loss as a Python float, dloss/dlogits or None).
py::tuple bce_with_logits(py::object logits_obj, py::object targets_obj, py::object pos_obj,
                          bool compute_grad) {
  const char* op = "bce_with_logits";
  DeviceArray x = device_float_array(op, "logits", logits_obj);
  if (x.ndim() < 1 || x.numel == 0)
    throw_value_error("fastnn.", op, ": argument 'logits' must have at least one element; got shape ",
                      shape_str(x.dims));
  DeviceArray t = device_float_array(op, "targets", targets_obj);
  require_same_dtype(op, x, t);
  require_dims(op, t, x.dims, "(the shape of logits)");
  const int64_t classes = x.dims.back();
  DeviceArray pw = optional_device_float_array(op, "pos_weight", pos_obj, 1);
  if (pw) {
    require_same_dtype(op, x, pw);
    require_dims(op, pw, {classes}, "(one weight per class, the last axis of logits)");
  }
  DeviceArray grad = compute_grad ? new_device_array(op, "grad", x.dtype, x.dims) : DeviceArray{};
  cuda::LossResult result;
  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    result = cuda::bce_with_logits<T>(x.data<T>(), t.data<T>(), pw ? pw.data<T>() : nullptr,
                                      grad ? grad.data<T>() : nullptr, x.numel, classes, context.exec());
  });
  if (result.first_invalid >= 0) {
    dispatch_float(x.dtype, [&](auto zero) {
      using T = decltype(zero);
      throw_bad_probability(op, "targets", result.first_invalid, read_element<T>(t, result.first_invalid));
    });
  }
  return py::make_tuple(result.loss, grad ? grad.object : py::none());
}

}  // namespace

void init_bce_logits(py::module_& m) {
  m.def("bce_with_logits", &bce_with_logits, py::arg("logits"), py::arg("targets"),
        py::arg("pos_weight") = py::none(), py::arg("compute_grad") = true);
}

}  // namespace fastnn::bind
