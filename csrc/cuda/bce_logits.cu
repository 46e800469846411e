// BCE-with-logits; see bce_logits.h.
#include "cuda/bce_logits.h"

#include "common/shapes/bce_logits.h"
#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 256;

// Counts the known targets (an integer atomicAdd: the same total in any order) and flags the
// first invalid one.
template <class T>
__global__ void bce_count_known_kernel(const T* t, int64_t n, unsigned long long* known,
                                       unsigned long long* first_invalid) {
  unsigned long long count = 0;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) {
    const T ti = t[i];
    if (!bce_target_valid(ti)) atomicMin(first_invalid, static_cast<unsigned long long>(i));
    count += bce_target_unknown(ti) ? 0 : 1;
  }
  if (count) atomicAdd(known, count);
}

template <class T>
__global__ void bce_with_logits_kernel(const T* x, const T* t, const T* pos_weight, T* grad,
                                       int64_t n, int64_t classes, const unsigned long long* known,
                                       double* block_sums) {
  __shared__ double shared[kWarpSize];
  const T inv_known = *known ? T(1) / static_cast<T>(*known) : T(0);
  double sum = 0;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) {
    const T xi = x[i], ti = t[i];
    if (bce_target_unknown(ti)) {
      if (grad) grad[i] = T(0);
      continue;
    }
    const T pw = pos_weight ? pos_weight[i % classes] : T(1);
    const T e = math::exp(-math::abs(xi));
    const T log1p_term = math::log1p(e);
    const T softplus_pos = (xi > T(0) ? xi : T(0)) + log1p_term;   // softplus(x)
    const T softplus_neg = (-xi > T(0) ? -xi : T(0)) + log1p_term;  // softplus(-x)
    sum += static_cast<double>(pw * ti * softplus_neg + (T(1) - ti) * softplus_pos);
    if (grad) {
      // sigmoid(x) and sigmoid(-x) each without cancellation (see cpu/bce_logits.cpp).
      const T sig_pos = T(1) / (T(1) + e), sig_small = e / (T(1) + e);
      const T sig = xi >= T(0) ? sig_pos : sig_small, sig_neg = xi >= T(0) ? sig_small : sig_pos;
      grad[i] = ((T(1) - ti) * sig - pw * ti * sig_neg) * inv_known;
    }
  }
  sum = block_sum(sum, shared);
  // Each block's share of the mean: the divisor lives on the device, so the partial sums are
  // divided here and finish_loss adds them with a divisor of 1.
  if (threadIdx.x == 0) block_sums[blockIdx.x] = *known ? sum / static_cast<double>(*known) : 0.0;
}

}  // namespace

template <class T>
LossResult bce_with_logits(const T* logits, const T* targets, const T* pos_weight, T* grad,
                           int64_t n, int64_t classes, const Exec& exec) {
  const unsigned int blocks = blocks_for(n, kThreads);
  auto* block_sums = static_cast<double*>(exec.scratch(blocks * sizeof(double), "bce_with_logits"));
  auto* known = static_cast<unsigned long long*>(exec.scratch(sizeof(unsigned long long), "bce_with_logits"));
  check_cuda(cudaMemsetAsync(known, 0, sizeof(*known), exec.stream), "clearing the known-target count");
  LossScratch* scratch = new_loss_scratch(exec);
  FASTNN_LAUNCH(blocks, kThreads, 0, exec.stream, bce_count_known_kernel<T>)(
      targets, n, known, &scratch->first_invalid);
  check_launch("bce_count_known");
  FASTNN_LAUNCH(blocks, kThreads, 0, exec.stream, bce_with_logits_kernel<T>)(
      logits, targets, pos_weight, grad, n, classes, known, block_sums);
  check_launch("bce_with_logits");
  return finish_loss(block_sums, blocks, 1.0, scratch, exec);
}

template LossResult bce_with_logits<float>(const float*, const float*, const float*, float*, int64_t,
                                           int64_t, const Exec&);
template LossResult bce_with_logits<double>(const double*, const double*, const double*, double*,
                                            int64_t, int64_t, const Exec&);

}  // namespace fastnn::cuda
