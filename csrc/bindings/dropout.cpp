// Bindings of the dropout kernels (cpu/dropout.h, cuda/dropout.h): the same seed drops the same
// elements on both backends (common/dropout_mask.h).
#include "bindings/backend.h"
#include "bindings/seed.h"
#include "common/shapes/dropout.h"

namespace fastnn::bind {

namespace {

// Returns (y, mask): mask is uint8 0/1 of x's shape, the input of dropout_backward.
py::tuple dropout_forward(py::object x_obj, double p, py::object seed_obj) {
  const char* op = "dropout";
  const Array x = float_array(op, "x", x_obj);
  validate_dropout_probability(op, p);
  const uint64_t seed = seed_arg(op, seed_obj);
  const Array y = new_array(op, "y", x.dtype, x.dims);
  const Array mask = new_array(op, "mask", Dtype::uint8, x.dims);
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::dropout_forward<T>(x.data<T>(), y.data<T>(), mask.data<uint8_t>(), x.numel, p, seed,
                                context.exec());
  });
  return py::make_tuple(y.object, mask.object);
}

py::object dropout_backward(py::object dy_obj, py::object mask_obj, double p) {
  const char* op = "dropout_backward";
  const Array dy = float_array(op, "grad_out", dy_obj);
  const Array mask = byte_array(op, "mask", mask_obj);
  require_dims(op, mask, dy.dims, "(the shape of grad_out)");
  validate_dropout_probability(op, p);
  const Array dx = new_array(op, "dx", dy.dtype, dy.dims);
  const Backend::Context context;
  dispatch_float(dy.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::dropout_backward<T>(dy.data<T>(), mask.data<uint8_t>(), dx.data<T>(), dy.numel, p,
                                 context.exec());
  });
  return dx.object;
}

}  // namespace

void init_dropout(py::module_& m) {
  m.def("dropout_forward", &dropout_forward, py::arg("x"), py::arg("p"), py::arg("seed"));
  m.def("dropout_backward", &dropout_backward, py::arg("grad_out"), py::arg("mask"), py::arg("p"));
}

}  // namespace fastnn::bind
