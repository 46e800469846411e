// CUDA bindings for cuda/dropout.h (the contract of bindings/dropout.cpp): the same seed gives
// the same mask as the CPU backend.
#include "bindings/seed.h"
#include "bindings_cuda/device_arrays.h"
#include "common/shapes/dropout.h"
#include "cuda/dropout.h"

namespace fastnn::bind {

namespace {

py::tuple dropout_forward(py::object x_obj, double p, py::object seed_obj) {
  const char* op = "dropout";
  DeviceArray x = device_float_array(op, "x", x_obj);
  validate_dropout_probability(op, p);
  const uint64_t seed = seed_arg(op, seed_obj);
  DeviceArray y = new_device_array(op, "y", x.dtype, x.dims);
  DeviceArray mask = new_device_array(op, "mask", Dtype::uint8, x.dims);
  const OpContext context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::dropout_forward<T>(x.data<T>(), y.data<T>(), mask.data<uint8_t>(), x.numel, p, seed, context.exec());
  });
  return py::make_tuple(y.object, mask.object);
}

py::object dropout_backward(py::object dy_obj, py::object mask_obj, double p) {
  const char* op = "dropout_backward";
  DeviceArray dy = device_float_array(op, "grad_out", dy_obj);
  DeviceArray mask = device_byte_array(op, "mask", mask_obj);
  require_dims(op, mask, dy.dims, "(the shape of grad_out)");
  validate_dropout_probability(op, p);
  DeviceArray dx = new_device_array(op, "dx", dy.dtype, dy.dims);
  const OpContext context;
  dispatch_float(dy.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::dropout_backward<T>(dy.data<T>(), mask.data<uint8_t>(), dx.data<T>(), dy.numel, p, context.exec());
  });
  return dx.object;
}

}  // namespace

void init_dropout(py::module_& m) {
  m.def("dropout_forward", &dropout_forward, py::arg("x"), py::arg("p"), py::arg("seed"));
  m.def("dropout_backward", &dropout_backward, py::arg("grad_out"), py::arg("mask"), py::arg("p"));
}

}  // namespace fastnn::bind
