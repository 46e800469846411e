// Binding of the triplet margin loss (cpu/triplet.h, cuda/triplet.h). Labels may hold any
// integers (only equality matters), so there is nothing data-dependent to check.
#include <string>

#include "bindings/backend.h"
#include "common/shapes/triplet.h"

namespace fastnn::bind {

namespace {

// Returns (mean loss as a Python float, dloss/dembeddings or None).
py::tuple triplet_margin_loss(py::object embeddings_obj, py::object labels_obj, double margin,
                              const std::string& mining, bool compute_grad) {
  const char* op = "triplet_margin_loss";
  const Array e = float_array(op, "embeddings", embeddings_obj);
  const TripletShape s = TripletShape::from(op, e.dims, margin, mining);
  const Array labels = label_array(op, "labels", labels_obj);
  require_dims(op, labels, {s.rows}, "(one label per row of embeddings)");
  const Array grad = compute_grad ? new_array(op, "grad", e.dtype, e.dims) : Array{};
  LossResult result;
  const Backend::Context context;
  dispatch_float(e.dtype, [&](auto zero) {
    using T = decltype(zero);
    dispatch_index(labels.dtype, [&](auto index_zero) {
      using Label = decltype(index_zero);
      py::gil_scoped_release release;
      result = kernels::triplet_margin_loss<T, Label>(e.data<T>(), labels.data<Label>(),
                                                      static_cast<T>(margin), data_or_null<T>(grad),
                                                      s, context.exec());
    });
  });
  return py::make_tuple(result.loss, grad.result());
}

// Lets nn.TripletMarginLoss reject a bad margin or mining name when built, by the ops' rule.
void triplet_check_params(const std::string& caller, double margin, const std::string& mining) {
  TripletShape::check_params(caller.c_str(), margin, mining);
}

}  // namespace

void init_triplet(py::module_& m) {
  m.def("triplet_margin_loss", &triplet_margin_loss, py::arg("embeddings"), py::arg("labels"),
        py::arg("margin") = 1.0, py::arg("mining") = "batch_hard", py::arg("compute_grad") = true);
  m.def("triplet_check_params", &triplet_check_params, py::arg("caller"), py::arg("margin"),
        py::arg("mining"));
}

}  // namespace fastnn::bind
