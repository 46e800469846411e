// Row L2 normalisation forward and backward; see l2_normalize.h. Blocks of 8 warps, one row per
// warp; a warp's sums are butterfly shuffles, so every row's result is the same from run to run.
#include "cuda/l2_normalize.h"

#include <cmath>

#include "cuda/device.cuh"
#include "cuda/warp_rows.cuh"

namespace fastnn::cuda {
namespace {

template <class T>
__device__ inline double row_norm(const T* x, int64_t cols, int lane) {
  double sum = 0;
  for (int64_t c = lane; c < cols; c += kWarpSize) sum += static_cast<double>(x[c]) * x[c];
  return ::sqrt(warp_sum(sum));
}

template <class T>
__global__ void l2_normalize_kernel(const T* x, T* y, double* norms, double eps, RowsShape s) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T* xr = x + row * s.cols;
  T* yr = y + row * s.cols;
  const double norm = row_norm(xr, s.cols, lane);
  if (norms && lane == 0) norms[row] = norm;
  const double denominator = norm > eps ? norm : eps;  // divided, as on the CPU (exact +-1 rows)
  for (int64_t c = lane; c < s.cols; c += kWarpSize) yr[c] = static_cast<T>(xr[c] / denominator);
}

// src is y when `norms` is given, else x (its norms found here). dy and dx may be the same
// array: every lane reads its columns of dy for the dot product before the shuffles, and
// writes only its own columns after them.
template <class T>
__global__ void l2_normalize_backward_kernel(const T* dy, const T* src, const double* norms, T* dx, double eps,
                                             bool accumulate, RowsShape s) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T* dyr = dy + row * s.cols;
  const T* sr = src + row * s.cols;
  T* dxr = dx + row * s.cols;
  const double norm = norms ? norms[row] : row_norm(sr, s.cols, lane);
  const double to_y = norms ? 1.0 : 1.0 / (norm > eps ? norm : eps);
  const bool linear = !(norm > eps);  // the same for the whole warp
  double dot = 0;
  if (!linear) {
    for (int64_t c = lane; c < s.cols; c += kWarpSize) dot += static_cast<double>(dyr[c]) * (sr[c] * to_y);
    dot = warp_sum(dot);
  }
  const double inv = 1.0 / (linear ? eps : norm);
  for (int64_t c = lane; c < s.cols; c += kWarpSize) {
    const double g = (static_cast<double>(dyr[c]) - sr[c] * to_y * dot) * inv;
    dxr[c] = static_cast<T>(accumulate ? dxr[c] + g : g);
  }
}

}  // namespace

template <class T>
void l2_normalize_rows(const T* x, T* y, double* norms, double eps, const RowsShape& s, const Exec& exec) {
  if (s.rows == 0) return;
  FASTNN_LAUNCH(row_blocks(s.rows), kRowBlockThreads, 0, exec.stream, l2_normalize_kernel<T>)(x, y, norms, eps, s);
  check_launch("l2_normalize");
}

template <class T>
void l2_normalize_rows_backward(const T* dy, const T* y, const double* norms, T* dx, double eps,
                                bool accumulate, const RowsShape& s, const Exec& exec) {
  if (s.rows == 0) return;
  FASTNN_LAUNCH(row_blocks(s.rows), kRowBlockThreads, 0, exec.stream, l2_normalize_backward_kernel<T>)(
      dy, y, norms, dx, eps, accumulate, s);
  check_launch("l2_normalize_backward");
}

template <class T>
void l2_normalize_forward(const T* x, T* y, double eps, const RowsShape& s, const Exec& exec) {
  l2_normalize_rows(x, y, static_cast<double*>(nullptr), eps, s, exec);
}

template <class T>
void l2_normalize_backward(const T* dy, const T* x, T* dx, double eps, const RowsShape& s, const Exec& exec) {
  if (s.rows == 0) return;
  FASTNN_LAUNCH(row_blocks(s.rows), kRowBlockThreads, 0, exec.stream, l2_normalize_backward_kernel<T>)(
      dy, x, static_cast<const double*>(nullptr), dx, eps, false, s);
  check_launch("l2_normalize_backward");
}

#define FASTNN_INSTANTIATE(T)                                                                       \
  template void l2_normalize_forward<T>(const T*, T*, double, const RowsShape&, const Exec&);       \
  template void l2_normalize_backward<T>(const T*, const T*, T*, double, const RowsShape&, const Exec&); \
  template void l2_normalize_rows<T>(const T*, T*, double*, double, const RowsShape&, const Exec&); \
  template void l2_normalize_rows_backward<T>(const T*, const T*, const double*, T*, double, bool,    \
                                              const RowsShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cuda
