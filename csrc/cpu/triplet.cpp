// Triplet margin loss with batch-hard or all-triplet mining; see triplet.h for the math.
// Passes: G = e e^T (GEMM) -> distances in place -> per anchor (threads split anchors): mining,
// its loss terms and, for the gradient, its row of dloss/dd -> the weights S = W / d -> the
// matrix diag(rowsum M) - M, M = S + S^T, in the distances' place -> grad = that matrix @ e (GEMM).
#include "cpu/triplet.h"

#include <cmath>
#include <vector>

#include "common/threading.h"
#include "common/triplet_rules.h"
#include "cpu/gemm.h"

namespace fastnn::cpu {
namespace {

// f(a) for every anchor a, the anchors split over threads when there is `work_per_anchor` to share.
template <class F>
void for_each_anchor(int64_t rows, int64_t work_per_anchor, F f) {
  const int nt = threads_for(rows * work_per_anchor);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t a = 0; a < rows; ++a) f(a);
}

// The Gram matrix g (n, n) replaced by the distances.
template <class T>
void distances_from_gram(T* g, int64_t n) {
  std::vector<T> sq(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) sq[i] = g[i * n + i];
  for_each_anchor(n, n, [&](int64_t a) {
    T* row = g + a * n;
    for (int64_t j = 0; j < n; ++j) row[j] = std::sqrt(squared_distance_from_gram(sq[a], sq[j], row[j]));
  });
}

struct AnchorTerms {
  double loss_sum = 0;   // sum of the anchor's active hinges
  int64_t triplets = 0;  // how many triplets (batch_hard: 0 or 1) the mean counts for it
};

// Anchor a's farthest positive and closest negative. dloss_dd (the anchor's row, or null) gets +1
// at the positive and -1 at the negative when the triplet is active, 0 elsewhere.
template <class T, class Label>
AnchorTerms mine_batch_hard(const T* d, const Label* labels, int64_t n, int64_t a, T margin, T* dloss_dd) {
  int64_t p = -1, q = -1;
  for (int64_t j = 0; j < n; ++j) {
    if (j == a) continue;
    if (labels[j] == labels[a]) {
      if (farther_positive(d[j], j, p < 0 ? T(0) : d[p], p)) p = j;
    } else if (closer_negative(d[j], j, q < 0 ? T(0) : d[q], q)) {
      q = j;
    }
  }
  if (dloss_dd)
    for (int64_t j = 0; j < n; ++j) dloss_dd[j] = T(0);
  if (p < 0 || q < 0) return {};
  const T h = triplet_hinge(margin, d[p], d[q]);
  if (!triplet_active(h)) return {0.0, 1};
  if (dloss_dd) dloss_dd[p] = T(1), dloss_dd[q] = T(-1);
  return {static_cast<double>(h), 1};
}

// Every triplet of anchor a: each positive against every negative. dloss_dd (or null) gets, per
// positive, its number of active triplets and, per negative, minus its number.
template <class T, class Label>
AnchorTerms mine_all(const T* d, const Label* labels, int64_t n, int64_t a, T margin, T* dloss_dd) {
  std::vector<int64_t> positives, negatives;
  std::vector<T> negative_d;
  for (int64_t j = 0; j < n; ++j) {
    if (labels[j] != labels[a]) {
      negatives.push_back(j);
      negative_d.push_back(d[j]);
    } else if (j != a) {
      positives.push_back(j);
    }
  }
  if (dloss_dd)
    for (int64_t j = 0; j < n; ++j) dloss_dd[j] = T(0);
  AnchorTerms terms;
  const int64_t n_neg = static_cast<int64_t>(negatives.size());
  for (int64_t p : positives) {
    int64_t active = 0;
    for (int64_t k = 0; k < n_neg; ++k) {
      const T h = triplet_hinge(margin, d[p], negative_d[k]);
      if (!triplet_active(h)) continue;
      terms.loss_sum += h;
      ++active;
      if (dloss_dd) dloss_dd[negatives[k]] -= T(1);
    }
    if (dloss_dd) dloss_dd[p] = static_cast<T>(active);
  }
  terms.triplets = static_cast<int64_t>(positives.size()) * n_neg;
  return terms;
}

// grad = (diag(rowsum M) - M) @ e with M = S + S^T, S = scale * dloss_dd / d. dloss_dd becomes S;
// dist becomes diag(rowsum M) - M.
template <class T>
void gradient(T* dloss_dd, T* dist, const T* e, T* grad, int64_t n, int64_t dims, T scale) {
  for_each_anchor(n, n, [&](int64_t a) {
    T* w = dloss_dd + a * n;
    const T* d = dist + a * n;
    for (int64_t j = 0; j < n; ++j) w[j] = weight_over_distance(w[j] * scale, d[j]);
  });
  for_each_anchor(n, n, [&](int64_t i) {
    T* row = dist + i * n;
    double diagonal = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      const T m = dloss_dd[i * n + j] + dloss_dd[j * n + i];
      diagonal += m;
      row[j] = -m;
    }
    row[i] = static_cast<T>(diagonal);
  });
  gemm(GemmShape::dense(n, dims, n, false, false), T(1), dist, e, T(0), grad);
}

}  // namespace

template <class T, class Label>
LossResult triplet_margin_loss(const T* embeddings, const Label* labels, T margin, T* grad,
                               const TripletShape& s, const Exec&) {
  const int64_t n = s.rows;
  std::vector<T> dist(static_cast<size_t>(n * n));
  gemm(GemmShape::dense(n, n, s.dims, false, true), T(1), embeddings, embeddings, T(0), dist.data());
  distances_from_gram(dist.data(), n);

  std::vector<T> dloss_dd(grad ? static_cast<size_t>(n * n) : 0);
  std::vector<AnchorTerms> anchors(static_cast<size_t>(n));
  const bool hard = s.mining == TripletMining::batch_hard;
  for_each_anchor(n, hard ? n : n * n, [&](int64_t a) {
    const T* d = dist.data() + a * n;
    T* w = grad ? dloss_dd.data() + a * n : nullptr;
    anchors[a] = hard ? mine_batch_hard(d, labels, n, a, margin, w) : mine_all(d, labels, n, a, margin, w);
  });
  double loss_sum = 0;
  int64_t triplets = 0;
  for (const AnchorTerms& t : anchors) loss_sum += t.loss_sum, triplets += t.triplets;

  if (grad) {
    const T scale = triplets > 0 ? static_cast<T>(1.0 / static_cast<double>(triplets)) : T(0);
    gradient(dloss_dd.data(), dist.data(), embeddings, grad, n, s.dims, scale);
  }
  return {triplets > 0 ? loss_sum / static_cast<double>(triplets) : 0.0, -1};
}

#define FASTNN_INSTANTIATE(T, Label)                                                             \
  template LossResult triplet_margin_loss<T, Label>(const T*, const Label*, T, T*, const TripletShape&, \
                                                    const Exec&);
FASTNN_INSTANTIATE(float, int32_t)
FASTNN_INSTANTIATE(float, int64_t)
FASTNN_INSTANTIATE(double, int32_t)
FASTNN_INSTANTIATE(double, int64_t)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
