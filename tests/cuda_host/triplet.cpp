// csrc/cuda/triplet.cu (+ gemm.cu for the two products, loss_result.cu for the finish) run whole
// on the host by emulate.h, through triplet_margin_loss: Gram matrix, distances, the per-anchor
// mining blocks (batch-hard's block arg-max / arg-min, the all-triplet counts), the scale, the
// gradient matrix and its product. Compared with a float64 loop over the definition that lists
// every triplet and takes distances as |a - b| directly (cpu/triplet.h): the loss and every
// gradient element, with and without a gradient, for both minings. Sizes from N = 2 (no triplet)
// to past the 256 threads of a mining block (the candidate loop wraps); a class of one sample and
// a single class; int32 and int64 labels; integer embeddings, whose equal distances test the tie
// rule.
// Tolerance |got - want| <= rtol * scale, scale the size of the terms (the loss: the mean of
// margin + d_ap + d_an; a gradient element: the sum of its |contributions| over the active
// triplets). rtol 1e-9 in float64 (the Gram form of a distance differs from |a - b| by ~1e-15
// relative here), 1e-4 in float32 (float32 distances). The float32 cases are kept small, so no
// hinge lies within float32 rounding of 0 (where the two could disagree on a triplet).
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>
#include <vector>

#include "buffers.h"
#include "cuda/triplet.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

struct Want {
  double loss = 0, loss_scale = 0;
  std::vector<double> grad, grad_scale;
};

template <class T, class Label>
Want definition(const std::vector<T>& e, const std::vector<Label>& labels, int64_t n, int64_t dims, double margin,
                TripletMining mining) {
  std::vector<double> distances(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < dims; ++k) {
        const double diff = double(e[i * dims + k]) - double(e[j * dims + k]);
        s += diff * diff;
      }
      distances[i * n + j] = std::sqrt(s);
    }
  auto dist = [&](int64_t i, int64_t j) { return distances[i * n + j]; };
  struct Triplet { int64_t a, p, q; };
  std::vector<Triplet> triplets;
  for (int64_t a = 0; a < n; ++a) {
    int64_t best_p = -1, best_q = -1;
    for (int64_t p = 0; p < n; ++p) {
      if (p == a || labels[p] != labels[a]) continue;
      for (int64_t q = 0; q < n; ++q) {
        if (labels[q] == labels[a]) continue;
        if (mining == TripletMining::all) triplets.push_back({a, p, q});
        if (best_p < 0 || dist(a, p) > dist(a, best_p)) best_p = p;
        if (best_q < 0 || dist(a, q) < dist(a, best_q)) best_q = q;
      }
    }
    if (mining == TripletMining::batch_hard && best_p >= 0) triplets.push_back({a, best_p, best_q});
  }
  Want w;
  w.grad.assign(n * dims, 0.0);
  w.grad_scale.assign(n * dims, 0.0);
  const double count = static_cast<double>(triplets.size());
  for (const Triplet& t : triplets) {
    const double d_ap = dist(t.a, t.p), d_an = dist(t.a, t.q), h = margin + d_ap - d_an;
    w.loss_scale += (margin + d_ap + d_an) / count;
    if (h < 0) continue;
    w.loss += h / count;
    for (int64_t k = 0; k < dims; ++k) {
      const double ea = e[t.a * dims + k], ep = e[t.p * dims + k], en = e[t.q * dims + k];
      const double up = d_ap > 0 ? (ea - ep) / d_ap / count : 0, un = d_an > 0 ? (ea - en) / d_an / count : 0;
      w.grad[t.a * dims + k] += up - un;
      w.grad[t.p * dims + k] -= up;
      w.grad[t.q * dims + k] += un;
      const double sp = d_ap > 0 ? (std::fabs(ea) + std::fabs(ep)) / d_ap / count : 0;
      const double sn = d_an > 0 ? (std::fabs(ea) + std::fabs(en)) / d_an / count : 0;
      w.grad_scale[t.a * dims + k] += sp + sn;
      w.grad_scale[t.p * dims + k] += sp;
      w.grad_scale[t.q * dims + k] += sn;
    }
  }
  return w;
}

// With `integers`, small integer embeddings: exact distances, many of them equal, so batch-hard's
// tie rule (the lower index) decides across the warps of a mining block.
template <class T, class Label>
void check(int64_t n, int64_t dims, int64_t classes, double margin, std::mt19937& rng, bool integers = false) {
  const double rtol = std::is_same_v<T, double> ? 1e-9 : 1e-4;
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(classes) - 1);
  std::vector<Label> labels(n);
  for (auto& v : labels) v = static_cast<Label>(pick(rng));
  if (n > 2) labels[0] = static_cast<Label>(classes);  // a class of one sample
  std::vector<T> e(n * dims);
  for (auto& v : e) v = static_cast<T>(integers ? std::round(2 * normal(rng)) : normal(rng));
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  Guarded<T> grad(n * dims, 16);
  for (TripletMining mining : {TripletMining::batch_hard, TripletMining::all}) {
    const TripletShape s{n, dims, mining};
    const Want want = definition(e, labels, n, dims, margin, mining);
    char what[160];
    std::snprintf(what, sizeof what, "triplet_margin_loss %s %s N %ld D %ld classes %ld margin %g",
                  std::is_same_v<T, double> ? "float64" : "float32", mining == TripletMining::all ? "all" : "batch_hard",
                  (long)n, (long)dims, (long)classes, margin);
    grad.fill_nan();
    const LossResult r = triplet_margin_loss(e.data(), labels.data(), static_cast<T>(margin), grad.data(), s, exec);
    fails += count_outside(what, grad.data(), want.grad, want.grad_scale, rtol) != 0;
    fails += count_outside(what, &r.loss, {want.loss}, {want.loss_scale}, rtol) != 0;
    if (!grad.guards_intact() && fails++ < 20) std::printf("%s: wrote past the gradient\n", what);
    const LossResult no_grad = triplet_margin_loss(e.data(), labels.data(), static_cast<T>(margin), static_cast<T*>(nullptr), s, exec);
    fails += count_outside(what, &no_grad.loss, {want.loss}, {want.loss_scale}, rtol) != 0;
  }
}

int main() {
  std::mt19937 rng(13);
  check<double, int64_t>(2, 1, 2, 1.0, rng);  // no positive or no negative: loss 0, gradient 0
  check<float, int32_t>(5, 3, 2, 0.5, rng);
  check<float, int64_t>(23, 17, 3, 1.0, rng);
  check<double, int32_t>(9, 4, 1, 1.0, rng);  // one class besides the singleton
  check<double, int64_t>(37, 5, 4, 2.0, rng);
  check<double, int32_t>(300, 3, 7, 0.5, rng);  // more candidates than a mining block's threads
  check<double, int32_t>(70, 1, 3, 0.5, rng, true);  // ties, across warps
  std::printf(fails ? "FAILED (%d)\n" : "triplet entry points, emulated: ok\n", fails);
  return fails != 0;
}
