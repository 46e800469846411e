// csrc/cuda/bce_logits.cu (+ loss_result.cu) run whole on the host by emulate.h, through
// bce_with_logits: the grid-stride loss terms and gradient, the per-block sums (block_sum), the
// one-block finish, and the bad-target flag. Compared with a float64 loop over the definition
// (cpu/bce_logits.h): loss and every gradient element, with and without pos_weight (indexed by
// class), with unknown targets (-1: no loss, zero gradient, the mean over the known ones; all
// unknown: loss 0), without a gradient, and with targets outside [0, 1] other than -1 (the first
// one reported, NaN included). Sizes from 1 to past the emulated GPU's 16 blocks of 256 threads (the loop wraps).
// Tolerance |got - want| <= rtol * (the size of the terms: the gradient's two cancel), rtol 1e-12
// in float64, 2e-6 in float32.
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/bce_logits.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

double softplus(double x) { return std::fmax(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

template <class T>
void check(int64_t rows, int64_t classes, std::mt19937& rng) {
  const int64_t n = rows * classes;
  const double rtol = std::is_same_v<T, double> ? 1e-12 : 2e-6;
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<T> x(n), t(n), pw(classes), grad(n);
  for (auto& v : x) v = static_cast<T>(normal(rng));
  for (auto& v : t) v = static_cast<T>(unit(rng) < 0.3 ? std::round(unit(rng)) : unit(rng));
  for (auto& v : pw) v = static_cast<T>(0.5 + unit(rng));
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  char what[120];
  // Unknown targets (-1): every third one, then all of them (loss 0, zero gradient).
  std::vector<T> some_unknown = t, all_unknown(n, T(-1));
  for (int64_t i = 1; i < n; i += 3) some_unknown[i] = T(-1);
  for (int variant = 0; variant < 4; ++variant) {
    const bool with_pw = variant % 2 == 1;
    const std::vector<T>& tv = variant < 2 ? t : variant == 2 ? some_unknown : all_unknown;
    double loss = 0;
    int64_t known = 0;
    std::vector<double> want(n, 0.0), scale(n, 0.0);
    for (int64_t i = 0; i < n; ++i) known += tv[i] != T(-1);
    for (int64_t i = 0; i < n; ++i) {
      if (tv[i] == T(-1)) continue;
      const double xi = x[i], ti = tv[i], p = with_pw ? double(pw[i % classes]) : 1.0;
      loss += p * ti * softplus(-xi) + (1 - ti) * softplus(xi);
      const double sig = 1 / (1 + std::exp(-xi));
      want[i] = (sig * (p * ti + 1 - ti) - p * ti) / double(known);
      scale[i] = (sig * (p * ti + 1 - ti) + p * ti) / double(known);  // the two terms cancel
    }
    loss = known ? loss / double(known) : 0.0;
    const LossResult r = bce_with_logits(x.data(), tv.data(), with_pw ? pw.data() : nullptr, grad.data(), n, classes, exec);
    std::snprintf(what, sizeof what, "bce_with_logits %s n %ld pos_weight %d unknown targets %d",
                  std::is_same_v<T, double> ? "float64" : "float32", (long)n, with_pw, variant < 2 ? 0 : variant == 2 ? 1 : 2);
    fails += count_outside(what, grad.data(), want, scale, rtol) != 0;
    fails += count_mismatches(what, &r.loss, std::vector<double>{loss}, rtol, rtol) != 0;
    if (r.first_invalid != -1 && fails++ < 20) std::printf("%s: first_invalid %ld\n", what, (long)r.first_invalid);
    const LossResult no_grad = bce_with_logits(x.data(), tv.data(), with_pw ? pw.data() : nullptr, static_cast<T*>(nullptr), n,
                                               classes, exec);
    fails += count_mismatches(what, &no_grad.loss, std::vector<double>{loss}, rtol, rtol) != 0;
  }
  // Bad targets: the first (lowest index) is reported, wherever the grid-stride loop meets it;
  // unknown ones (-1) before it are not bad.
  std::vector<T> bad = t;
  bad[0] = T(-1);
  bad[n - 1] = T(1.5);
  if (n > 3) bad[n / 2] = T(NAN), bad[n / 3] = T(-0.25);
  const LossResult r = bce_with_logits(x.data(), bad.data(), static_cast<const T*>(nullptr), grad.data(), n, classes, exec);
  const int64_t want_first = n > 3 ? n / 3 : n - 1;  // n = 1: the 1.5 overwrote the -1
  if (r.first_invalid != want_first && fails++ < 20)
    std::printf("bce_with_logits n %ld with bad targets: first_invalid %ld, want %ld\n", (long)n, (long)r.first_invalid,
                (long)want_first);
}

int main() {
  std::mt19937 rng(13);
  for (auto [rows, classes] : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {64, 10}, {1100, 5}}) {
    check<float>(rows, classes, rng);
    check<double>(rows, classes, rng);
  }
  std::printf(fails ? "FAILED (%d)\n" : "bce_logits entry points, emulated: ok\n", fails);
  return fails != 0;
}
