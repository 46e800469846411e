// Bindings for cpu/batchnorm.h.
#include <algorithm>

#include "bindings/arrays.h"
#include "bindings/batchnorm_args.h"
#include "cpu/batchnorm.h"

namespace fastnn::bind {

namespace {

// A per-channel (C,) array with x's dtype, distinct from x's memory (nullable).
ArrayArg channel_array(const char* op, const char* name, py::object obj, const ArrayArg& x,
                       const BatchNormShape& s, Access access = Access::read) {
  ArrayArg a = optional_float_array(op, name, obj, -1, access);
  if (a) check_channel_array(op, a, x, s);
  return a;
}

// Returns (y, save_mean, save_inv_std); running_mean / running_var (or None) updated in place.
py::tuple batch_norm_train(py::object x_obj, py::object w_obj, py::object b_obj,
                           py::object rm_obj, py::object rv_obj, double momentum, double eps) {
  const char* op = "batch_norm_train";
  ArrayArg x = float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, /*training=*/true);
  BatchNormShape::validate_hyperparameters(op, momentum, eps);
  ArrayArg w = channel_array(op, "weight", w_obj, x, s);
  ArrayArg b = channel_array(op, "bias", b_obj, x, s);
  ArrayArg rm = channel_array(op, "running_mean", rm_obj, x, s, Access::write);
  ArrayArg rv = channel_array(op, "running_var", rv_obj, x, s, Access::write);
  require_running_stats_together(op, bool(rm), bool(rv));
  require_no_overlap(op, rm, rv);
  py::array y = new_array(op, x.dtype, x.dims);
  py::array save_mean = new_array(op, x.dtype, {s.channels});
  py::array save_inv_std = new_array(op, x.dtype, {s.channels});
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    const T *pw = data_or_null<T>(w), *pb = data_or_null<T>(b);
    T *prm = data_or_null<T>(rm), *prv = data_or_null<T>(rv);
    T* py_ = static_cast<T*>(y.mutable_data());
    T* pmean = static_cast<T*>(save_mean.mutable_data());
    T* pinv = static_cast<T*>(save_inv_std.mutable_data());
    py::gil_scoped_release release;
    cpu::batch_norm_train_forward<T>(px, pw, pb, py_, pmean, pinv, prm, prv, momentum, eps, s);
  });
  return py::make_tuple(y, save_mean, save_inv_std);
}

py::array batch_norm_eval(py::object x_obj, py::object w_obj, py::object b_obj,
                          py::object rm_obj, py::object rv_obj, double eps) {
  const char* op = "batch_norm_eval";
  ArrayArg x = float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, /*training=*/false);
  BatchNormShape::validate_hyperparameters(op, 0.0, eps);
  ArrayArg w = channel_array(op, "weight", w_obj, x, s);
  ArrayArg b = channel_array(op, "bias", b_obj, x, s);
  if (rm_obj.is_none() || rv_obj.is_none())
    throw_value_error("fastnn.", op, ": arguments 'running_mean' and 'running_var' are required");
  ArrayArg rm = channel_array(op, "running_mean", rm_obj, x, s);
  ArrayArg rv = channel_array(op, "running_var", rv_obj, x, s);
  py::array y = new_array(op, x.dtype, x.dims);
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    const T *pw = data_or_null<T>(w), *pb = data_or_null<T>(b);
    const T *prm = rm.data<T>(), *prv = rv.data<T>();
    T* py_ = static_cast<T*>(y.mutable_data());
    py::gil_scoped_release release;
    cpu::batch_norm_eval_forward<T>(px, pw, pb, prm, prv, py_, eps, s);
  });
  return y;
}

// Returns (dx or None, dweight or None, dbias or None). Parameter gradients are computed when
// `weight` is given; they accumulate into grad_weight / grad_bias when given (a missing one of
// the two starts from zeros), else they are freshly written.
py::tuple batch_norm_backward(py::object dy_obj, py::object x_obj, py::object w_obj,
                              py::object mean_obj, py::object inv_std_obj, py::object dw_obj,
                              py::object db_obj, bool training, bool compute_dx) {
  const char* op = "batch_norm_backward";
  ArrayArg x = float_array(op, "x", x_obj);
  const BatchNormShape s = BatchNormShape::from(op, x.dims, training);
  ArrayArg dy = float_array(op, "grad_out", dy_obj);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, x.dims, "(the shape of x)");
  ArrayArg w = channel_array(op, "weight", w_obj, x, s);
  ArrayArg mean = channel_array(op, "mean", mean_obj, x, s);
  ArrayArg inv_std = channel_array(op, "inv_std", inv_std_obj, x, s);
  if (!mean || !inv_std)
    throw_value_error("fastnn.", op, ": arguments 'mean' and 'inv_std' are required");
  ArrayArg dw, db;
  const bool param_grads = bool(w);
  bool accumulate = false;
  if (param_grads) {
    dw = channel_array(op, "grad_weight", dw_obj, x, s, Access::write);
    db = channel_array(op, "grad_bias", db_obj, x, s, Access::write);
    for (const ArrayArg* g : {&dw, &db}) {
      if (!*g) continue;
      require_no_overlap(op, *g, dy);
      require_no_overlap(op, *g, w);
      require_no_overlap(op, *g, mean);
      require_no_overlap(op, *g, inv_std);
    }
    require_no_overlap(op, dw, db);
    accumulate = dw || db;
    for (ArrayArg* g : {&dw, &db}) {
      if (*g) continue;
      g->array = new_array(op, x.dtype, {s.channels});
      g->present = true;
      if (accumulate) {
        dispatch_float(x.dtype, [&](auto zero) {
          using T = decltype(zero);
          std::fill(g->data<T>(), g->data<T>() + s.channels, T(0));
        });
      }
    }
  }
  py::array dx;
  if (compute_dx) dx = new_array(op, x.dtype, x.dims);
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T *pdy = dy.data<T>(), *px = x.data<T>(), *pw = data_or_null<T>(w);
    const T *pmean = mean.data<T>(), *pinv = inv_std.data<T>();
    T* pdx = compute_dx ? static_cast<T*>(dx.mutable_data()) : nullptr;
    T *pdw = data_or_null<T>(dw), *pdb = data_or_null<T>(db);
    py::gil_scoped_release release;
    cpu::batch_norm_backward<T>(pdy, px, pw, pmean, pinv, pdx, pdw, pdb, accumulate, training, s);
  });
  py::object dx_out = compute_dx ? py::object(dx) : py::none();
  py::object dw_out = param_grads ? py::object(dw.array) : py::none();
  py::object db_out = param_grads ? py::object(db.array) : py::none();
  return py::make_tuple(dx_out, dw_out, db_out);
}

}  // namespace

void init_batchnorm(py::module_& m) {
  m.def("batch_norm_train", &batch_norm_train, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("momentum") = 0.1,
        py::arg("eps") = 1e-5);
  m.def("batch_norm_eval", &batch_norm_eval, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("eps") = 1e-5);
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("grad_out"), py::arg("x"),
        py::arg("weight"), py::arg("mean"), py::arg("inv_std"),
        py::arg("grad_weight") = py::none(), py::arg("grad_bias") = py::none(),
        py::arg("training") = true, py::arg("compute_input_grad") = true);
}

}  // namespace fastnn::bind
