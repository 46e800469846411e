// Bindings of the fused ArcFace loss (cpu/arcface.h, cuda/arcface.h). The loss comes back as a
// Python float (on the GPU, reading it waits for the stream). An invalid label raises
// softmax_cross_entropy's ValueError on both backends: the CPU checks labels before the kernel,
// the GPU kernel flags the first bad one and stops before any gradient is written.
// arcface_check_params lets nn.ArcFaceLoss reject bad hyper-parameters when built.
#include <string>

#include "bindings/backend.h"
#include "common/shapes/arcface.h"
#include "common/shapes/rows.h"

namespace fastnn::bind {

namespace {

// Returns (mean loss, dloss/dembeddings or None); dloss/dweight is added into `weight_grad`
// when one is given (the .grad convention).
py::tuple arcface_loss(py::object embeddings_obj, py::object weight_obj, py::object labels_obj, double scale,
                       double margin, double eps, py::object weight_grad_obj, bool compute_grad) {
  const char* op = "arcface_loss";
  const Array embeddings = float_array(op, "embeddings", embeddings_obj);
  const Array weight = float_array(op, "weight", weight_obj);
  require_same_dtype(op, embeddings, weight);
  const ArcFaceShape s = ArcFaceShape::from(op, embeddings.dims, weight.dims);
  const Array labels = label_array(op, "labels", labels_obj);
  require_dims(op, labels, {s.rows}, "(one label per row of embeddings)");
  const ArcFaceParams p = ArcFaceParams::make(op, scale, margin, eps);
  require_unused_grad_absent(op, "weight_grad", weight_grad_obj, compute_grad, "compute_grad=False");
  const ParamGrad weight_grad = weight_grad_obj.is_none()
                                    ? ParamGrad{}
                                    : param_grad(op, "weight_grad", weight_grad_obj, embeddings,
                                                 {s.classes, s.features}, {&embeddings, &weight});
  if constexpr (Backend::host_memory) {
    dispatch_index(labels.dtype, [&](auto index_zero) {
      validate_labels(op, labels.data<decltype(index_zero)>(), s.rows, s.classes);
    });
  }
  const Array grad = compute_grad ? new_array(op, "grad", embeddings.dtype, embeddings.dims) : Array{};
  LossResult result;
  const Backend::Context context;
  dispatch_float(embeddings.dtype, [&](auto zero) {
    using T = decltype(zero);
    dispatch_index(labels.dtype, [&](auto index_zero) {
      using Label = decltype(index_zero);
      py::gil_scoped_release release;
      result = kernels::arcface_loss<T, Label>(embeddings.data<T>(), weight.data<T>(), labels.data<Label>(), p,
                                               data_or_null<T>(grad), data_or_null<T>(weight_grad.array), s,
                                               context.exec());
    });
  });
  if (result.first_invalid >= 0) {
    dispatch_index(labels.dtype, [&](auto index_zero) {
      throw_bad_label(op, s.classes, result.first_invalid,
                      Backend::read<decltype(index_zero)>(labels, result.first_invalid));
    });
  }
  return py::make_tuple(result.loss, grad.result());
}

// nn.ArcFaceLoss's arguments s, m and eps, by the loss's rule.
void arcface_check_params(const std::string& caller, double s, double m, double eps) {
  ArcFaceParams::make(caller.c_str(), s, m, eps, "s", "m");
}

}  // namespace

void init_arcface(py::module_& m) {
  m.def("arcface_loss", &arcface_loss, py::arg("embeddings"), py::arg("weight"), py::arg("labels"),
        py::arg("scale") = 64.0, py::arg("margin") = 0.5, py::arg("eps") = 1e-12,
        py::arg("weight_grad") = py::none(), py::arg("compute_grad") = true);
  m.def("arcface_check_params", &arcface_check_params, py::arg("caller"), py::arg("s"), py::arg("m"),
        py::arg("eps"));
}

}  // namespace fastnn::bind
