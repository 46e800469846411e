// BCE-with-logits; see bce_logits.h. Threads split fixed chunks of elements and the chunk sums
// are added in chunk order, so the loss does not depend on the thread count.
#include "cpu/bce_logits.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/shapes/bce_logits.h"
#include "common/threading.h"

namespace fastnn::cpu {

template <class T>
LossResult bce_with_logits(const T* x, const T* t, const T* pos_weight, T* grad, int64_t n,
                       int64_t classes, const Exec&) {
  constexpr int64_t kChunk = 4096;
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> chunk_loss(static_cast<size_t>(n_chunks));
  const int nt = threads_for(n, 16384);
  // The mean's divisor (and the gradient's) needs the known targets counted first; an integer
  // count is the same in any order.
  int64_t known = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : known)
  for (int64_t i = 0; i < n; ++i) known += bce_target_unknown(t[i]) ? 0 : 1;
  const T inv_known = known > 0 ? T(1) / static_cast<T>(known) : T(0);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t q = 0; q < n_chunks; ++q) {
    double sum = 0;
    const int64_t end = std::min(n, (q + 1) * kChunk);
    for (int64_t i = q * kChunk; i < end; ++i) {
      const T xi = x[i], ti = t[i];
      if (bce_target_unknown(ti)) {
        if (grad) grad[i] = T(0);
        continue;
      }
      const T pw = pos_weight ? pos_weight[i % classes] : T(1);
      const T log1p_term = std::log1p(std::exp(-std::fabs(xi)));
      const T softplus_pos = std::max(xi, T(0)) + log1p_term;    // softplus(x)
      const T softplus_neg = std::max(-xi, T(0)) + log1p_term;   // softplus(-x)
      sum += static_cast<double>(pw * ti * softplus_neg + (T(1) - ti) * softplus_pos);
      if (grad) {
        const T e = std::exp(-std::fabs(xi));
        // sigmoid(x) and sigmoid(-x) = 1 - sigmoid(x), each without cancellation: the hard
        // targets' gradient stays accurate to a few ulps where sigmoid(x) rounds to 1.
        const T sig_pos = T(1) / (T(1) + e), sig_small = e / (T(1) + e);
        const T sig = xi >= T(0) ? sig_pos : sig_small, sig_neg = xi >= T(0) ? sig_small : sig_pos;
        grad[i] = ((T(1) - ti) * sig - pw * ti * sig_neg) * inv_known;
      }
    }
    chunk_loss[q] = sum;
  }
  double total = 0;
  for (double l : chunk_loss) total += l;
  return {known > 0 ? total / static_cast<double>(known) : 0.0, -1};
}

template LossResult bce_with_logits<float>(const float*, const float*, const float*, float*, int64_t,
                                       int64_t, const Exec&);
template LossResult bce_with_logits<double>(const double*, const double*, const double*, double*,
                                        int64_t, int64_t, const Exec&);

}  // namespace fastnn::cpu
