// Bindings of the row L2 normalisation (cpu/l2_normalize.h, cuda/l2_normalize.h).
// l2_normalize_check_params lets nn.L2Normalize reject a bad eps when built, by the ops' rule.
#include <string>

#include "bindings/backend.h"
#include "common/shapes/l2_normalize.h"

namespace fastnn::bind {

namespace {

py::object l2_normalize(py::object x_obj, double eps) {
  const char* op = "l2_normalize";
  const Array x = float_array(op, "x", x_obj);
  const RowsShape s = l2_rows_from(op, "x", x.dims);
  validate_l2_eps(op, eps);
  const Array y = new_array(op, "y", x.dtype, x.dims);
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::l2_normalize_forward<T>(x.data<T>(), y.data<T>(), eps, s, context.exec());
  });
  return y.object;
}

py::object l2_normalize_backward(py::object dy_obj, py::object x_obj, double eps) {
  const char* op = "l2_normalize_backward";
  const Array dy = float_array(op, "grad_y", dy_obj);
  const Array x = float_array(op, "x", x_obj);
  const RowsShape s = l2_rows_from(op, "x", x.dims);
  require_same_dtype(op, x, dy);
  require_dims(op, dy, x.dims, "(the shape of x)");
  validate_l2_eps(op, eps);
  const Array dx = new_array(op, "dx", x.dtype, x.dims);
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::l2_normalize_backward<T>(dy.data<T>(), x.data<T>(), dx.data<T>(), eps, s, context.exec());
  });
  return dx.object;
}

void l2_normalize_check_params(const std::string& caller, double eps) { validate_l2_eps(caller.c_str(), eps); }

}  // namespace

void init_l2_normalize(py::module_& m) {
  m.def("l2_normalize", &l2_normalize, py::arg("x"), py::arg("eps") = 1e-12);
  m.def("l2_normalize_backward", &l2_normalize_backward, py::arg("grad_y"), py::arg("x"), py::arg("eps") = 1e-12);
  m.def("l2_normalize_check_params", &l2_normalize_check_params, py::arg("caller"), py::arg("eps"));
}

}  // namespace fastnn::bind
