// Binding of the similarity family (cpu/similarity.h, cuda/similarity.h): pairwise similarity
// and its backward, top-k per row, and the blocked similarity top-k. Shapes, the metric and k
// are checked by common/shapes/similarity.h, the same on both backends.
#include <string>

#include "bindings/backend.h"
#include "common/shapes/similarity.h"

namespace fastnn::bind {

namespace {

// The two embedding sets, checked: same dtype, 2-D, the same dim.
SimilarityShape embedding_pair(const char* op, const Array& a, const Array& b, const std::string& metric) {
  require_same_dtype(op, a, b);
  return SimilarityShape::from(op, a.name, a.dims, b.name, b.dims, parse_metric(op, metric));
}

py::object pairwise_similarity(py::object a_obj, py::object b_obj, const std::string& metric) {
  const char* op = "pairwise_similarity";
  const Array a = float_array(op, "a", a_obj, 2);
  const Array b = float_array(op, "b", b_obj, 2);
  const SimilarityShape s = embedding_pair(op, a, b, metric);
  const Array out = new_array(op, "out", a.dtype, {s.rows_a, s.rows_b});
  const Backend::Context context;
  dispatch_float(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::pairwise_similarity<T>(a.data<T>(), b.data<T>(), out.data<T>(), s, context.exec());
  });
  return out.object;
}

py::tuple pairwise_similarity_backward(py::object grad_obj, py::object a_obj, py::object b_obj,
                                       const std::string& metric) {
  const char* op = "pairwise_similarity_backward";
  const Array grad = float_array(op, "grad", grad_obj, 2);
  const Array a = float_array(op, "a", a_obj, 2);
  const Array b = float_array(op, "b", b_obj, 2);
  const SimilarityShape s = embedding_pair(op, a, b, metric);
  require_same_dtype(op, a, grad);
  require_dims(op, grad, {s.rows_a, s.rows_b}, "(rows of 'a', rows of 'b')");
  const Array da = new_array(op, "grad_a", a.dtype, a.dims);
  const Array db = new_array(op, "grad_b", a.dtype, b.dims);
  const Backend::Context context;
  dispatch_float(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::pairwise_similarity_backward<T>(grad.data<T>(), a.data<T>(), b.data<T>(), da.data<T>(),
                                             db.data<T>(), s, context.exec());
  });
  return py::make_tuple(da.object, db.object);
}

// The (rows, k) values in the scores' dtype and their int64 columns.
struct TopKOutputs {
  Array values, indices;
  TopKOutputs(const char* op, Dtype dtype, const TopKShape& t)
      : values(new_array(op, "values", dtype, {t.rows, t.k})), indices(new_array(op, "indices", Dtype::int64, {t.rows, t.k})) {}
  py::tuple result() const { return py::make_tuple(values.object, indices.object); }
};

py::tuple topk(py::object scores_obj, int64_t k, bool largest) {
  const char* op = "topk";
  const Array scores = float_array(op, "scores", scores_obj, 2);
  const TopKShape t = TopKShape::from(op, "scores", scores.dims[0], scores.dims[1], k, largest);
  const TopKOutputs out(op, scores.dtype, t);
  const Backend::Context context;
  dispatch_float(scores.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::topk<T>(scores.data<T>(), out.values.data<T>(), out.indices.data<int64_t>(), t, context.exec());
  });
  return out.result();
}

// largest: None picks the metric's own order (similarities largest, distances smallest).
py::tuple similarity_topk(py::object query_obj, py::object gallery_obj, int64_t k, const std::string& metric,
                          py::object largest_obj) {
  const char* op = "similarity_topk";
  const Array query = float_array(op, "query", query_obj, 2);
  const Array gallery = float_array(op, "gallery", gallery_obj, 2);
  const SimilarityShape s = embedding_pair(op, query, gallery, metric);
  const bool largest = largest_obj.is_none() ? metric_prefers_largest(s.metric) : largest_obj.cast<bool>();
  const TopKShape t = TopKShape::from(op, "gallery", s.rows_a, s.rows_b, k, largest);
  const TopKOutputs out(op, query.dtype, t);
  const Backend::Context context;
  dispatch_float(query.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernels::similarity_topk<T>(query.data<T>(), gallery.data<T>(), out.values.data<T>(),
                                out.indices.data<int64_t>(), s, t, context.exec());
  });
  return out.result();
}

}  // namespace

void init_similarity(py::module_& m) {
  m.def("pairwise_similarity", &pairwise_similarity, py::arg("a"), py::arg("b"), py::arg("metric") = "cosine",
        "(N, M) similarity of the rows of a (N, D) and b (M, D) (see fastnn.ops.pairwise_similarity).");
  m.def("pairwise_similarity_backward", &pairwise_similarity_backward, py::arg("grad"), py::arg("a"),
        py::arg("b"), py::arg("metric") = "cosine",
        "(grad_a, grad_b) of pairwise_similarity (see fastnn.ops.pairwise_similarity_backward).");
  m.def("topk", &topk, py::arg("scores"), py::arg("k"), py::arg("largest") = true,
        "(values, indices) of each row's k best, best first (see fastnn.ops.topk).");
  m.def("similarity_topk", &similarity_topk, py::arg("query"), py::arg("gallery"), py::arg("k"),
        py::arg("metric") = "cosine", py::arg("largest") = py::none(),
        "topk(pairwise_similarity(query, gallery)) without the full matrix (see fastnn.ops.similarity_topk).");
}

}  // namespace fastnn::bind
