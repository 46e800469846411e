// Dropout kernels; see dropout.h. Elementwise: each element's draw depends only on (seed, index),
// so the grid's shape does not matter.
#include "cuda/dropout.h"

#include "common/dropout_mask.h"
#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

template <class T>
__global__ void dropout_forward_kernel(const T* x, T* y, uint8_t* mask, int64_t n, uint64_t key,
                                       uint64_t threshold, T scale) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) {
    const bool keep = dropout_keep_bits_keyed(key, static_cast<uint64_t>(i)) >= threshold;
    mask[i] = keep ? 1 : 0;
    y[i] = keep ? x[i] * scale : T(0);
  }
}

template <class T>
__global__ void dropout_backward_kernel(const T* dy, const uint8_t* mask, T* dx, int64_t n, T scale) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) dx[i] = mask[i] ? dy[i] * scale : T(0);
}

constexpr int kThreads = 256;

}  // namespace

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double p, uint64_t seed,
                     const Exec& exec) {
  if (n == 0) return;
  FASTNN_LAUNCH(blocks_for(n, kThreads), kThreads, 0, exec.stream, dropout_forward_kernel<T>)(
      x, y, mask, n, dropout_key(seed), dropout_drop_threshold(p), static_cast<T>(dropout_keep_scale(p)));
  check_launch("dropout_forward");
}

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double p, const Exec& exec) {
  if (n == 0) return;
  FASTNN_LAUNCH(blocks_for(n, kThreads), kThreads, 0, exec.stream, dropout_backward_kernel<T>)(
      dy, mask, dx, n, static_cast<T>(dropout_keep_scale(p)));
  check_launch("dropout_backward");
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, double, uint64_t, const Exec&);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, double, uint64_t, const Exec&);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, double, const Exec&);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, double, const Exec&);

}  // namespace fastnn::cuda
