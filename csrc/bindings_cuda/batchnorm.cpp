// CUDA bindings for cuda/batchnorm.h (the contract of bindings/batchnorm.cpp).
#include "bindings_cuda/device_arrays.h"
#include "bindings/batchnorm_args.h"
#include "cuda/batchnorm.h"

namespace fastnn::bind {

namespace {

// A per-channel (C,) array with x's dtype, distinct from x's memory (nullable).
DeviceArray channel_array(const char* op, const char* name, py::object obj, const DeviceArray& x,
                          const BatchNormShape& s, Access access = Access::read) {
  DeviceArray a = optional_device_float_array(op, name, obj, -1, access);
  if (a) check_channel_array(op, a, x, s);
  return a;
}

py::tuple batch_norm_train(py::object x_obj, py::object w_obj, py::object b_obj, py::object rm_obj,
                           py::object rv_obj, double momentum, double eps) {
  const char* op = "batch_norm_train";
  DeviceArray x = device_float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, /*training=*/true);
  BatchNormShape::validate_hyperparameters(op, momentum, eps);
  DeviceArray w = channel_array(op, "weight", w_obj, x, s);
  DeviceArray b = channel_array(op, "bias", b_obj, x, s);
  DeviceArray rm = channel_array(op, "running_mean", rm_obj, x, s, Access::write);
  DeviceArray rv = channel_array(op, "running_var", rv_obj, x, s, Access::write);
  require_running_stats_together(op, bool(rm), bool(rv));
  require_no_overlap(op, rm, rv);
  DeviceArray y = new_device_array(op, "y", x.dtype, x.dims);
  DeviceArray save_mean = new_device_array(op, "save_mean", x.dtype, {s.channels});
  DeviceArray save_inv_std = new_device_array(op, "save_inv_std", x.dtype, {s.channels});
  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::batch_norm_train_forward<T>(x.data<T>(), data_or_null<T>(w), data_or_null<T>(b), y.data<T>(),
                                      save_mean.data<T>(), save_inv_std.data<T>(), data_or_null<T>(rm),
                                      data_or_null<T>(rv), momentum, eps, s, context.exec());
  });
  return py::make_tuple(y.object, save_mean.object, save_inv_std.object);
}

py::object batch_norm_eval(py::object x_obj, py::object w_obj, py::object b_obj, py::object rm_obj,
                           py::object rv_obj, double eps) {
  const char* op = "batch_norm_eval";
  DeviceArray x = device_float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, /*training=*/false);
  BatchNormShape::validate_hyperparameters(op, 0.0, eps);
  DeviceArray w = channel_array(op, "weight", w_obj, x, s);
  DeviceArray b = channel_array(op, "bias", b_obj, x, s);
  if (rm_obj.is_none() || rv_obj.is_none())
    throw_value_error("fastnn.", op, ": arguments 'running_mean' and 'running_var' are required");
  DeviceArray rm = channel_array(op, "running_mean", rm_obj, x, s);
  DeviceArray rv = channel_array(op, "running_var", rv_obj, x, s);
  DeviceArray y = new_device_array(op, "y", x.dtype, x.dims);
  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::batch_norm_eval_forward<T>(x.data<T>(), data_or_null<T>(w), data_or_null<T>(b), rm.data<T>(),
                                     rv.data<T>(), y.data<T>(), eps, s, context.exec());
  });
  return y.object;
}

// Returns (dx or None, dweight or None, dbias or None), as the CPU binding: parameter gradients
// when `weight` is given, accumulated into grad_weight / grad_bias when given (a missing one of
// the two starts from zeros), else freshly written.
py::tuple batch_norm_backward(py::object dy_obj, py::object x_obj, py::object w_obj, py::object mean_obj,
                              py::object inv_std_obj, py::object dw_obj, py::object db_obj, bool training,
                              bool compute_dx) {
  const char* op = "batch_norm_backward";
  DeviceArray x = device_float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, training);
  DeviceArray dy = device_float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, x.dims, "(the shape of x)");
  DeviceArray w = channel_array(op, "weight", w_obj, x, s);
  DeviceArray mean = channel_array(op, "mean", mean_obj, x, s);
  DeviceArray inv_std = channel_array(op, "inv_std", inv_std_obj, x, s);
  if (!mean || !inv_std) throw_value_error("fastnn.", op, ": arguments 'mean' and 'inv_std' are required");
  DeviceArray dw, db;
  const bool param_grads = bool(w);
  bool accumulate = false;
  const OpContext context;
  if (param_grads) {
    dw = channel_array(op, "grad_weight", dw_obj, x, s, Access::write);
    db = channel_array(op, "grad_bias", db_obj, x, s, Access::write);
    for (const DeviceArray* g : {&dw, &db}) {
      if (!*g) continue;
      require_no_overlap(op, *g, dy);
      require_no_overlap(op, *g, w);
      require_no_overlap(op, *g, mean);
      require_no_overlap(op, *g, inv_std);
    }
    require_no_overlap(op, dw, db);
    accumulate = dw || db;
    for (DeviceArray* g : {&dw, &db}) {
      if (*g) continue;
      *g = new_device_array(op, g == &dw ? "grad_weight" : "grad_bias", x.dtype, {s.channels});
      if (accumulate)
        cuda::check_cuda(cudaMemsetAsync(g->data<void>(), 0, g->nbytes(), context.exec().stream),
                         "zeroing a parameter gradient");
    }
  }
  DeviceArray dx = compute_dx ? new_device_array(op, "dx", x.dtype, x.dims) : DeviceArray{};
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::batch_norm_backward<T>(dy.data<T>(), x.data<T>(), data_or_null<T>(w), mean.data<T>(), inv_std.data<T>(),
                                 data_or_null<T>(dx), data_or_null<T>(dw), data_or_null<T>(db), accumulate, training,
                                 s, context.exec());
  });
  return py::make_tuple(dx ? dx.object : py::none(), param_grads ? dw.object : py::none(),
                        param_grads ? db.object : py::none());
}

}  // namespace

void init_batchnorm(py::module_& m) {
  m.def("batch_norm_train", &batch_norm_train, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("momentum") = 0.1, py::arg("eps") = 1e-5);
  m.def("batch_norm_eval", &batch_norm_eval, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("eps") = 1e-5);
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("grad_out"), py::arg("x"), py::arg("weight"),
        py::arg("mean"), py::arg("inv_std"), py::arg("grad_weight") = py::none(), py::arg("grad_bias") = py::none(),
        py::arg("training") = true, py::arg("compute_input_grad") = true);
}

}  // namespace fastnn::bind
