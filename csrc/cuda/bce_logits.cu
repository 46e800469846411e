// BCE-with-logits; see bce_logits.h.
#include "cuda/bce_logits.h"

#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void bce_with_logits_kernel(const T* x, const T* t, const T* pos_weight, T* grad,
                                       int64_t n, int64_t classes, double* block_sums,
                                       unsigned long long* first_invalid) {
  __shared__ double shared[kWarpSize];
  const T inv_n = T(1) / static_cast<T>(n);
  double sum = 0;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) {
    const T xi = x[i], ti = t[i];
    if (!(ti >= T(0) && ti <= T(1))) atomicMin(first_invalid, static_cast<unsigned long long>(i));
    const T pw = pos_weight ? pos_weight[i % classes] : T(1);
    const T e = math::exp(-math::abs(xi));
    const T log1p_term = math::log1p(e);
    const T softplus_pos = (xi > T(0) ? xi : T(0)) + log1p_term;   // softplus(x)
    const T softplus_neg = (-xi > T(0) ? -xi : T(0)) + log1p_term;  // softplus(-x)
    sum += static_cast<double>(pw * ti * softplus_neg + (T(1) - ti) * softplus_pos);
    if (grad) {
      const T sig = xi >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      grad[i] = (sig * (pw * ti + T(1) - ti) - pw * ti) * inv_n;
    }
  }
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) block_sums[blockIdx.x] = sum;
}

}  // namespace

template <class T>
LossResult bce_with_logits(const T* logits, const T* targets, const T* pos_weight, T* grad,
                           int64_t n, int64_t classes, const Exec& exec) {
  const unsigned int blocks = blocks_for(n, kThreads);
  auto* block_sums = static_cast<double*>(exec.scratch(blocks * sizeof(double), "bce_with_logits"));
  LossScratch* scratch = new_loss_scratch(exec);
  FASTNN_LAUNCH(blocks, kThreads, 0, exec.stream, bce_with_logits_kernel<T>)(
      logits, targets, pos_weight, grad, n, classes, block_sums, &scratch->first_invalid);
  check_launch("bce_with_logits");
  return finish_loss(block_sums, blocks, static_cast<double>(n), scratch, exec);
}

template LossResult bce_with_logits<float>(const float*, const float*, const float*, float*, int64_t,
                                           int64_t, const Exec&);
template LossResult bce_with_logits<double>(const double*, const double*, const double*, double*,
                                            int64_t, int64_t, const Exec&);

}  // namespace fastnn::cuda
