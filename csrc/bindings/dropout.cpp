// Bindings for cpu/dropout.h.
#include "bindings/arrays.h"
#include "bindings/seed.h"
#include "common/shapes/dropout.h"
#include "cpu/dropout.h"

namespace fastnn::bind {

namespace {

// Returns (y, mask): mask is uint8 0/1 of x's shape, the input of dropout_backward.
py::tuple dropout_forward(py::object x_obj, double p, py::object seed_obj) {
  const char* op = "dropout";
  ArrayArg x = float_array(op, "x", x_obj);
  validate_dropout_probability(op, p);
  const uint64_t seed = seed_arg(op, seed_obj);
  py::array y = new_array(op, x.dtype, x.dims);
  py::array mask = new_array(op, Dtype::uint8, x.dims);
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    T* py_ = static_cast<T*>(y.mutable_data());
    uint8_t* pm = static_cast<uint8_t*>(mask.mutable_data());
    const int64_t n = x.numel;
    py::gil_scoped_release release;
    cpu::dropout_forward<T>(px, py_, pm, n, p, seed);
  });
  return py::make_tuple(y, mask);
}

py::array dropout_backward(py::object dy_obj, py::object mask_obj, double p) {
  const char* op = "dropout_backward";
  ArrayArg dy = float_array(op, "grad_out", dy_obj);
  ArrayArg mask = byte_array(op, "mask", mask_obj);
  require_dims(op, mask, dy.dims, "(the shape of grad_out)");
  validate_dropout_probability(op, p);
  py::array dx = new_array(op, dy.dtype, dy.dims);
  dispatch_float(dy.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* pdy = dy.data<T>();
    const uint8_t* pm = mask.data<uint8_t>();
    T* pdx = static_cast<T*>(dx.mutable_data());
    const int64_t n = dy.numel;
    py::gil_scoped_release release;
    cpu::dropout_backward<T>(pdy, pm, pdx, n, p);
  });
  return dx;
}

}  // namespace

void init_dropout(py::module_& m) {
  m.def("dropout_forward", &dropout_forward, py::arg("x"), py::arg("p"), py::arg("seed"));
  m.def("dropout_backward", &dropout_backward, py::arg("grad_out"), py::arg("mask"), py::arg("p"));
}

}  // namespace fastnn::bind
