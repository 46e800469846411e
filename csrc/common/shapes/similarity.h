// Shapes, metrics and the ranking rule of the similarity family (cpu/similarity.h,
// cuda/similarity.h), shared by both backends and the bindings.
//   a: (N, D), b: (M, D) -> similarity (N, M), row i of a against row j of b
//   cosine:      a_hat b_hat^T, x_hat = x / max(|x|, 1e-12) per row (F.normalize's eps)
//   dot:         a b^T
//   sqeuclidean: max(|a_i|^2 + |b_j|^2 - 2 a_i . b_j, 0) (rounding can make the sum slightly
//                negative for near-equal rows; a distance is never negative)
// Top-k per row of (rows, cols) scores: the k best, best first. "Best" is a strict total order,
// so results are deterministic and the same on both backends: the larger value (the smaller
// with largest=false), NaN counting as larger than any number (as torch.topk), and between equal
// values the lower column index.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/host_device.h"

namespace fastnn {

enum class Metric { cosine, dot, sqeuclidean };

constexpr double kCosineEps = 1e-12;

inline Metric parse_metric(const char* op, const std::string& name) {
  if (name == "cosine") return Metric::cosine;
  if (name == "dot") return Metric::dot;
  if (name == "sqeuclidean") return Metric::sqeuclidean;
  throw_value_error("fastnn.", op, ": argument 'metric' must be 'cosine', 'dot' or 'sqeuclidean'; got '",
                    name, "'");
}

// Similarities rank best when largest, distances when smallest.
inline bool metric_prefers_largest(Metric m) { return m != Metric::sqeuclidean; }

struct SimilarityShape {
  int64_t rows_a = 0, rows_b = 0, dim = 0;  // N, M, D
  Metric metric = Metric::cosine;

  // `a_name` / `b_name` name the arguments in messages ("a"/"b", "query"/"gallery").
  static SimilarityShape from(const char* op, const char* a_name, const std::vector<int64_t>& a_dims,
                              const char* b_name, const std::vector<int64_t>& b_dims, Metric metric) {
    for (auto [name, dims] : {std::pair{a_name, &a_dims}, std::pair{b_name, &b_dims}}) {
      if (dims->size() != 2)
        throw_value_error("fastnn.", op, ": argument '", name, "' must be 2-D (rows, dim); got shape ",
                          shape_str(*dims));
      if ((*dims)[1] < 1)
        throw_value_error("fastnn.", op, ": argument '", name,
                          "' must have at least one column (dim >= 1); got shape ", shape_str(*dims));
    }
    if (a_dims[1] != b_dims[1])
      throw_value_error("fastnn.", op, ": argument '", b_name, "' must have ", a_dims[1], " columns (the dim of '",
                        a_name, "'); got shape ", shape_str(b_dims));
    return SimilarityShape{a_dims[0], b_dims[0], a_dims[1], metric};
  }
};

struct TopKShape {
  int64_t rows = 0, cols = 0, k = 0;
  bool largest = true;

  // k must lie in [1, cols]: the best k of fewer than k candidates is undefined.
  static TopKShape from(const char* op, const char* scores_name, int64_t rows, int64_t cols, int64_t k,
                        bool largest) {
    if (k < 1 || k > cols)
      throw_value_error("fastnn.", op, ": argument 'k' must lie in [1, ", cols, "] (the columns of '",
                        scores_name, "'); got ", k);
    return TopKShape{rows, cols, k, largest};
  }
};

// The ranking rule above: is (x at column i) better than (y at column j)?
template <class T>
FASTNN_HOST_DEVICE inline bool ranks_before(T x, int64_t i, T y, int64_t j, bool largest) {
  const bool x_nan = x != x, y_nan = y != y;
  if (x_nan || y_nan) {
    if (x_nan != y_nan) return largest ? x_nan : y_nan;
    return i < j;
  }
  if (x != y) return largest ? x > y : x < y;
  return i < j;
}

// The gradient of x_hat = x / max(|x|, eps) for one row: dx = (dx_hat - x_hat (x_hat . dx_hat)) / |x|
// where |x| > eps; dx_hat / eps where the norm is clamped (x_hat is then x / eps, linear in x).
// `inv_norm` is 1 / max(|x|, eps) and `clamped` says which case holds.
template <class T>
FASTNN_HOST_DEVICE inline T normalize_backward(T dx_hat, T x_hat, T x_hat_dot_dx_hat, T inv_norm, bool clamped) {
  return clamped ? dx_hat * inv_norm : (dx_hat - x_hat * x_hat_dot_dx_hat) * inv_norm;
}

}  // namespace fastnn
