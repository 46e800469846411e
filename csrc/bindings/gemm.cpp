// Binding of the gemm kernels (cpu/gemm.h, cuda/gemm.h): matmul with transposes, alpha, beta and
// the fused epilogue (common/shapes/gemm.h).
#include "bindings/backend.h"

namespace fastnn::bind {

namespace {

py::object matmul(py::object a_obj, py::object b_obj, bool trans_a, bool trans_b, double alpha,
                  double beta, py::object out_obj, py::object bias_per_col_obj,
                  py::object bias_per_row_obj, bool relu) {
  const char* op = "matmul";
  const Array a = float_array(op, "a", a_obj, 2);
  const Array b = float_array(op, "b", b_obj, 2);
  require_same_dtype(op, a, b);
  const GemmShape s = GemmShape::for_matmul(op, a.dims, b.dims, trans_a, trans_b);
  Array out;
  if (out_obj.is_none()) {
    if (beta != 0.0)
      throw_value_error("fastnn.", op, ": argument 'out' is required when beta != 0 (got beta=",
                        beta, ")");
    out = new_array(op, "out", a.dtype, {s.M, s.N});
  } else {
    out = float_array(op, "out", out_obj, 2, Access::write);
    require_same_dtype(op, a, out);
    require_dims(op, out, {s.M, s.N}, "(the product's shape)");
    require_no_overlap(op, out, a);
    require_no_overlap(op, out, b);
  }
  auto bias_arg = [&](const py::object& obj, const char* name, int64_t length, const char* why) {
    Array bias = optional_float_array(op, name, obj, 1);
    if (bias) {
      require_same_dtype(op, a, bias);
      require_dims(op, bias, {length}, why);
      require_no_overlap(op, out, bias);
    }
    return bias;
  };
  const Array bias_col =
      bias_arg(bias_per_col_obj, "bias_per_col", s.N, "(one per column of the product)");
  const Array bias_row =
      bias_arg(bias_per_row_obj, "bias_per_row", s.M, "(one per row of the product)");
  const Backend::Context context;
  dispatch_float(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    GemmEpilogue<T> epilogue;
    epilogue.bias_per_col = data_or_null<T>(bias_col);
    epilogue.bias_per_row = data_or_null<T>(bias_row);
    epilogue.relu = relu;
    py::gil_scoped_release release;
    kernels::gemm<T>(s, static_cast<T>(alpha), a.data<T>(), b.data<T>(), static_cast<T>(beta),
                     out.data<T>(), epilogue, context.exec());
  });
  return out.object;
}

}  // namespace

void init_gemm(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("out") = py::none(), py::arg("bias_per_col") = py::none(),
        py::arg("bias_per_row") = py::none(), py::arg("relu") = false,
        "out = relu?(alpha * op(a) @ op(b) + beta * out + biases) (see fastnn.ops.matmul).");
}

}  // namespace fastnn::bind
