// Softmax, log-softmax and fused softmax cross-entropy; see softmax_xent.h. Blocks of 8 warps,
// one row per warp; a warp's reductions are butterfly shuffles, so every row's result is the
// same from run to run.
#include "cuda/softmax_xent.h"

#include <cmath>

#include "cuda/device.cuh"
#include "cuda/warp_rows.cuh"

namespace fastnn::cuda {
namespace {

template <class T>
__device__ inline T row_max(const T* x, int64_t cols, int lane) {
  T m = x[0];
  for (int64_t c = lane; c < cols; c += kWarpSize) m = x[c] > m ? x[c] : m;
  return warp_max(m);
}

// sum_c exp(x[c] - m) in double (the CPU's log_sum_exp_shifted, before the log).
template <class T>
__device__ inline double sum_exp_shifted(const T* x, int64_t cols, T m, int lane) {
  double sum = 0;
  for (int64_t c = lane; c < cols; c += kWarpSize) sum += ::exp(static_cast<double>(x[c]) - m);
  return warp_sum(sum);
}

template <class T>
__global__ void softmax_forward_kernel(const T* x, T* y, RowsShape s) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T* xr = x + row * s.cols;
  T* yr = y + row * s.cols;
  const T m = row_max(xr, s.cols, lane);
  T sum = 0;
  for (int64_t c = lane; c < s.cols; c += kWarpSize) sum += (yr[c] = math::exp(xr[c] - m));
  const T inv = T(1) / warp_sum(sum);
  for (int64_t c = lane; c < s.cols; c += kWarpSize) yr[c] *= inv;
}

template <class T>
__global__ void log_softmax_forward_kernel(const T* x, T* y, RowsShape s) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T* xr = x + row * s.cols;
  T* yr = y + row * s.cols;
  const T m = row_max(xr, s.cols, lane);
  const T shift = m + static_cast<T>(::log(sum_exp_shifted(xr, s.cols, m, lane)));
  for (int64_t c = lane; c < s.cols; c += kWarpSize) yr[c] = xr[c] - shift;
}

template <class T>
__global__ void softmax_backward_kernel(const T* y, const T* dy, T* dx, RowsShape s) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T *yr = y + row * s.cols, *dyr = dy + row * s.cols;
  T* dxr = dx + row * s.cols;
  double dot = 0;  // dy - <dy, y> cancels when one class dominates
  for (int64_t c = lane; c < s.cols; c += kWarpSize) dot += static_cast<double>(dyr[c]) * yr[c];
  dot = warp_sum(dot);
  for (int64_t c = lane; c < s.cols; c += kWarpSize)
    dxr[c] = static_cast<T>(yr[c] * (static_cast<double>(dyr[c]) - dot));
}

template <class T>
__global__ void log_softmax_backward_kernel(const T* y, const T* dy, T* dx, RowsShape s) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T *yr = y + row * s.cols, *dyr = dy + row * s.cols;
  T* dxr = dx + row * s.cols;
  double sum = 0;
  for (int64_t c = lane; c < s.cols; c += kWarpSize) sum += dyr[c];
  sum = warp_sum(sum);
  for (int64_t c = lane; c < s.cols; c += kWarpSize)
    dxr[c] = static_cast<T>(dyr[c] - ::exp(static_cast<double>(yr[c])) * sum);
}

template <class T, class Label>
__global__ void softmax_cross_entropy_kernel(const T* logits, const Label* labels, double eps,
                                             T* grad, RowsShape s, double* row_loss,
                                             unsigned long long* first_invalid) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T* xr = logits + row * s.cols;
  const int64_t target = static_cast<int64_t>(labels[row]);
  if (target < 0 || target >= s.cols) {
    if (lane == 0) {
      atomicMin(first_invalid, static_cast<unsigned long long>(row));
      row_loss[row] = NAN;
    }
    if (grad)
      for (int64_t c = lane; c < s.cols; c += kWarpSize) grad[row * s.cols + c] = T(NAN);
    return;
  }
  const double off_target = eps / static_cast<double>(s.cols);
  const double on_target = 1.0 - eps + off_target;
  const T m = row_max(xr, s.cols, lane);
  const double lse = ::log(sum_exp_shifted(xr, s.cols, m, lane));
  // -sum_c q_c log p_c = lse - (1 - eps)(x_y - m) - (eps / C) sum_c (x_c - m), in double: x - m
  // can overflow float32 for logits near its range limit.
  const double md = m;
  double shifted_sum = 0;
  if (eps != 0.0) {
    for (int64_t c = lane; c < s.cols; c += kWarpSize) shifted_sum += static_cast<double>(xr[c]) - md;
    shifted_sum = warp_sum(shifted_sum);
  }
  if (lane == 0)
    row_loss[row] = lse - (1.0 - eps) * (static_cast<double>(xr[target]) - md) - off_target * shifted_sum;
  if (grad) {
    const T inv_rows = T(1) / static_cast<T>(s.rows);
    const T scale = static_cast<T>(::exp(-lse)) * inv_rows;  // 1 / (N * sum exp)
    const T q_off = static_cast<T>(off_target) * inv_rows;
    const T q_on_extra = static_cast<T>(on_target - off_target) * inv_rows;
    T* gr = grad + row * s.cols;
    for (int64_t c = lane; c < s.cols; c += kWarpSize) {
      T g = math::exp(xr[c] - m) * scale - q_off;
      if (c == target) g -= q_on_extra;
      gr[c] = g;
    }
  }
}

constexpr int kThreads = kRowBlockThreads;

}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, const RowsShape& s, const Exec& exec) {
  if (s.rows == 0) return;
  FASTNN_LAUNCH(row_blocks(s.rows), kThreads, 0, exec.stream, softmax_forward_kernel<T>)(x, y, s);
  check_launch("softmax_forward");
}

template <class T>
void log_softmax_forward(const T* x, T* y, const RowsShape& s, const Exec& exec) {
  if (s.rows == 0) return;
  FASTNN_LAUNCH(row_blocks(s.rows), kThreads, 0, exec.stream, log_softmax_forward_kernel<T>)(x, y, s);
  check_launch("log_softmax_forward");
}

template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec& exec) {
  if (s.rows == 0) return;
  FASTNN_LAUNCH(row_blocks(s.rows), kThreads, 0, exec.stream, softmax_backward_kernel<T>)(y, dy, dx, s);
  check_launch("softmax_backward");
}

template <class T>
void log_softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec& exec) {
  if (s.rows == 0) return;
  FASTNN_LAUNCH(row_blocks(s.rows), kThreads, 0, exec.stream, log_softmax_backward_kernel<T>)(y, dy, dx, s);
  check_launch("log_softmax_backward");
}

template <class T, class Label>
LossResult softmax_cross_entropy(const T* logits, const Label* labels, T label_smoothing, T* grad,
                                 const RowsShape& s, const Exec& exec) {
  auto* row_loss = static_cast<double*>(exec.scratch(s.rows * sizeof(double), "softmax_cross_entropy"));
  LossScratch* scratch = new_loss_scratch(exec);
  FASTNN_LAUNCH(row_blocks(s.rows), kThreads, 0, exec.stream, softmax_cross_entropy_kernel<T, Label>)(
      logits, labels, static_cast<double>(label_smoothing), grad, s, row_loss, &scratch->first_invalid);
  check_launch("softmax_cross_entropy");
  return finish_loss(row_loss, s.rows, static_cast<double>(s.rows), scratch, exec);
}

#define FASTNN_INSTANTIATE(T)                                                                     \
  template void softmax_forward<T>(const T*, T*, const RowsShape&, const Exec&);                 \
  template void log_softmax_forward<T>(const T*, T*, const RowsShape&, const Exec&);             \
  template void softmax_backward<T>(const T*, const T*, T*, const RowsShape&, const Exec&);      \
  template void log_softmax_backward<T>(const T*, const T*, T*, const RowsShape&, const Exec&);  \
  template LossResult softmax_cross_entropy<T, int32_t>(const T*, const int32_t*, T, T*,          \
                                                        const RowsShape&, const Exec&);           \
  template LossResult softmax_cross_entropy<T, int64_t>(const T*, const int64_t*, T, T*,          \
                                                        const RowsShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cuda
