// CUDA binding for cuda/gemm.h: matmul with transposes, alpha and beta (as bindings/gemm.cpp),
// and the process-wide matmul precision.
#include <string>

#include "bindings_cuda/device_arrays.h"
#include "cuda/gemm.h"

namespace fastnn::bind {

namespace {

py::object matmul(py::object a_obj, py::object b_obj, bool trans_a, bool trans_b, double alpha,
                  double beta, py::object out_obj) {
  const char* op = "matmul";
  DeviceArray a = device_float_array(op, "a", a_obj, 2);
  DeviceArray b = device_float_array(op, "b", b_obj, 2);
  require_same_dtype(op, a, b);
  const GemmShape s = GemmShape::for_matmul(op, a.dims, b.dims, trans_a, trans_b);
  DeviceArray out;
  if (out_obj.is_none()) {
    if (beta != 0.0)
      throw_value_error("fastnn.", op, ": argument 'out' is required when beta != 0 (got beta=",
                        beta, ")");
    out = new_device_array(op, "out", a.dtype, {s.M, s.N});
  } else {
    out = device_float_array(op, "out", out_obj, 2, Access::write);
    require_same_dtype(op, a, out);
    require_dims(op, out, {s.M, s.N}, "(the product's shape)");
    require_no_overlap(op, out, a);
    require_no_overlap(op, out, b);
  }
  const OpContext context;
  dispatch_float(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    cuda::gemm<T>(s, static_cast<T>(alpha), a.data<T>(), b.data<T>(), static_cast<T>(beta),
                  out.data<T>(), nullptr, context.exec());
  });
  return out.object;
}

void set_matmul_precision(const std::string& precision) {
  if (precision == "highest") cuda::set_matmul_precision(cuda::MatmulPrecision::highest);
  else if (precision == "high") cuda::set_matmul_precision(cuda::MatmulPrecision::high);
  else
    throw_value_error("fastnn.set_matmul_precision: argument 'precision' must be 'highest' or 'high'; got '",
                      precision, "'");
}

std::string get_matmul_precision() {
  return cuda::matmul_precision() == cuda::MatmulPrecision::high ? "high" : "highest";
}

}  // namespace

void init_gemm(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("out") = py::none(),
        "out = alpha * op(a) @ op(b) + beta * out (see fastnn.ops.matmul).");
  m.def("set_matmul_precision", &set_matmul_precision, py::arg("precision"));
  m.def("get_matmul_precision", &get_matmul_precision);
}

}  // namespace fastnn::bind
