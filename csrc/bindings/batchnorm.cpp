// Bindings of the batch-norm kernels (cpu/batchnorm.h, cuda/batchnorm.h).
#include "bindings/backend.h"
#include "common/shapes/batchnorm.h"

namespace fastnn::bind {

namespace {

// A per-channel (C,) array with x's dtype, distinct from x's memory (absent for None).
Array channel_array(const char* op, const char* name, py::object obj, const Array& x,
                    const BatchNormShape& s, Access access = Access::read) {
  Array a = optional_float_array(op, name, obj, -1, access);
  if (a) {
    require_same_dtype(op, x, a);
    require_dims(op, a, {s.channels}, "(one value per channel, C = x.shape[1])");
    require_no_overlap(op, a, x);
  }
  return a;
}

// Returns (y, save_mean, save_inv_std); running_mean / running_var (or None) updated in place.
py::tuple batch_norm_train(py::object x_obj, py::object w_obj, py::object b_obj,
                           py::object rm_obj, py::object rv_obj, double momentum, double eps,
                           bool relu) {
  const char* op = "batch_norm_train";
  const Array x = float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, /*training=*/true);
  BatchNormShape::validate_hyperparameters(op, momentum, eps);
  const Array w = channel_array(op, "weight", w_obj, x, s);
  const Array b = channel_array(op, "bias", b_obj, x, s);
  const Array rm = channel_array(op, "running_mean", rm_obj, x, s, Access::write);
  const Array rv = channel_array(op, "running_var", rv_obj, x, s, Access::write);
  if (bool(rm) != bool(rv))
    throw_value_error("fastnn.", op,
                      ": arguments 'running_mean' and 'running_var' must be given together; got ",
                      rm ? "running_mean only" : "running_var only");
  require_no_overlap(op, rm, rv);
  const Array y = new_array(op, "y", x.dtype, x.dims);
  const Array save_mean = new_array(op, "save_mean", x.dtype, {s.channels});
  const Array save_inv_std = new_array(op, "save_inv_std", x.dtype, {s.channels});
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::batch_norm_train_forward<T>(x.data<T>(), data_or_null<T>(w), data_or_null<T>(b),
                                         y.data<T>(), save_mean.data<T>(), save_inv_std.data<T>(),
                                         data_or_null<T>(rm), data_or_null<T>(rv), momentum, eps, relu,
                                         s, context.exec());
  });
  return py::make_tuple(y.object, save_mean.object, save_inv_std.object);
}

py::object batch_norm_eval(py::object x_obj, py::object w_obj, py::object b_obj,
                           py::object rm_obj, py::object rv_obj, double eps, bool relu) {
  const char* op = "batch_norm_eval";
  const Array x = float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, /*training=*/false);
  BatchNormShape::validate_hyperparameters(op, 0.0, eps);
  const Array w = channel_array(op, "weight", w_obj, x, s);
  const Array b = channel_array(op, "bias", b_obj, x, s);
  if (rm_obj.is_none() || rv_obj.is_none())
    throw_value_error("fastnn.", op, ": arguments 'running_mean' and 'running_var' are required");
  const Array rm = channel_array(op, "running_mean", rm_obj, x, s);
  const Array rv = channel_array(op, "running_var", rv_obj, x, s);
  const Array y = new_array(op, "y", x.dtype, x.dims);
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::batch_norm_eval_forward<T>(x.data<T>(), data_or_null<T>(w), data_or_null<T>(b),
                                        rm.data<T>(), rv.data<T>(), y.data<T>(), eps, relu, s,
                                        context.exec());
  });
  return y.object;
}

// Returns (dx or None, dweight or None, dbias or None). Parameter gradients are computed when
// `weight` is given; they accumulate into grad_weight / grad_bias when given (a missing one of
// the two starts from zeros), else they are freshly written. With relu, grad_out is the
// gradient of relu(y), masked inside the kernel by y's sign recomputed from x, weight and bias.
py::tuple batch_norm_backward(py::object dy_obj, py::object x_obj, py::object w_obj,
                              py::object mean_obj, py::object inv_std_obj, py::object dw_obj,
                              py::object db_obj, bool training, bool compute_dx, py::object b_obj,
                              bool relu) {
  const char* op = "batch_norm_backward";
  const Array x = float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, training);
  const Array dy = float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, x.dims, "(the shape of x)");
  const Array w = channel_array(op, "weight", w_obj, x, s);
  const Array mean = channel_array(op, "mean", mean_obj, x, s);
  const Array inv_std = channel_array(op, "inv_std", inv_std_obj, x, s);
  const Array b = channel_array(op, "bias", b_obj, x, s);
  if (!mean || !inv_std)
    throw_value_error("fastnn.", op, ": arguments 'mean' and 'inv_std' are required");
  require_unused_grad_absent(op, "grad_weight", dw_obj, bool(w), "weight is None");
  require_unused_grad_absent(op, "grad_bias", db_obj, bool(w), "weight is None");
  Array dw, db;
  const bool param_grads = bool(w);
  bool accumulate = false;
  const Backend::Context context;
  if (param_grads) {
    dw = channel_array(op, "grad_weight", dw_obj, x, s, Access::write);
    db = channel_array(op, "grad_bias", db_obj, x, s, Access::write);
    for (const Array* g : {&dw, &db}) {
      if (!*g) continue;
      require_no_overlap(op, *g, dy);
      require_no_overlap(op, *g, w);
      require_no_overlap(op, *g, mean);
      require_no_overlap(op, *g, inv_std);
      require_no_overlap(op, *g, b);
    }
    require_no_overlap(op, dw, db);
    accumulate = dw || db;
    for (Array* g : {&dw, &db}) {
      if (*g) continue;
      *g = new_array(op, g == &dw ? "grad_weight" : "grad_bias", x.dtype, {s.channels});
      if (accumulate) Backend::zero(*g, context);
    }
  }
  const Array dx = compute_dx ? new_array(op, "dx", x.dtype, x.dims) : Array{};
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::batch_norm_backward<T>(dy.data<T>(), x.data<T>(), data_or_null<T>(w), data_or_null<T>(b),
                                    mean.data<T>(), inv_std.data<T>(), data_or_null<T>(dx),
                                    data_or_null<T>(dw), data_or_null<T>(db), accumulate, training,
                                    relu, s, context.exec());
  });
  return py::make_tuple(dx.result(), dw.result(), db.result());
}

}  // namespace

void init_batchnorm(py::module_& m) {
  m.def("batch_norm_train", &batch_norm_train, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("momentum") = 0.1,
        py::arg("eps") = 1e-5, py::arg("relu") = false);
  m.def("batch_norm_eval", &batch_norm_eval, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("eps") = 1e-5,
        py::arg("relu") = false);
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("grad_out"), py::arg("x"),
        py::arg("weight"), py::arg("mean"), py::arg("inv_std"),
        py::arg("grad_weight") = py::none(), py::arg("grad_bias") = py::none(),
        py::arg("training") = true, py::arg("compute_input_grad") = true,
        py::arg("bias") = py::none(), py::arg("relu") = false);
}

}  // namespace fastnn::bind
