// Softmax, log-softmax and fused softmax cross-entropy; see softmax_xent.h for the math.
// Rows are independent: threads split rows. The batch loss is summed from per-row values in
// row order, so it does not depend on the thread count.
#include "cpu/softmax_xent.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/threading.h"

namespace fastnn::cpu {
namespace {

template <class T>
T row_max(const T* x, int64_t cols) {
  T m = x[0];
  for (int64_t c = 1; c < cols; ++c) m = x[c] > m ? x[c] : m;
  return m;
}

// log sum_c exp(x[c] - m), accumulated in double for float rows of many classes.
template <class T>
double log_sum_exp_shifted(const T* x, int64_t cols, T m) {
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += std::exp(static_cast<double>(x[c]) - m);
  return std::log(sum);
}

template <class F>
void for_each_row(const RowsShape& s, F f) {
  const int nt = threads_for(s.rows * s.cols, 16384);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t n = 0; n < s.rows; ++n) f(n);
}

}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, const RowsShape& s, const Exec&) {
  for_each_row(s, [&](int64_t n) {
    const T* xr = x + n * s.cols;
    T* yr = y + n * s.cols;
    const T m = row_max(xr, s.cols);
    T sum = 0;
    for (int64_t c = 0; c < s.cols; ++c) sum += (yr[c] = std::exp(xr[c] - m));
    const T inv = T(1) / sum;
    for (int64_t c = 0; c < s.cols; ++c) yr[c] *= inv;
  });
}

template <class T>
void log_softmax_forward(const T* x, T* y, const RowsShape& s, const Exec&) {
  for_each_row(s, [&](int64_t n) {
    const T* xr = x + n * s.cols;
    T* yr = y + n * s.cols;
    const T m = row_max(xr, s.cols);
    const T shift = m + static_cast<T>(log_sum_exp_shifted(xr, s.cols, m));
    for (int64_t c = 0; c < s.cols; ++c) yr[c] = xr[c] - shift;
  });
}

template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec&) {
  for_each_row(s, [&](int64_t n) {
    const T* yr = y + n * s.cols;
    const T* dyr = dy + n * s.cols;
    T* dxr = dx + n * s.cols;
    // dy - <dy, y> cancels when one class dominates: form both in double.
    double dot = 0;
    for (int64_t c = 0; c < s.cols; ++c) dot += static_cast<double>(dyr[c]) * yr[c];
    for (int64_t c = 0; c < s.cols; ++c)
      dxr[c] = static_cast<T>(yr[c] * (static_cast<double>(dyr[c]) - dot));
  });
}

template <class T>
void log_softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec&) {
  for_each_row(s, [&](int64_t n) {
    const T* yr = y + n * s.cols;
    const T* dyr = dy + n * s.cols;
    T* dxr = dx + n * s.cols;
    double sum = 0;
    for (int64_t c = 0; c < s.cols; ++c) sum += dyr[c];
    for (int64_t c = 0; c < s.cols; ++c)
      dxr[c] = static_cast<T>(dyr[c] - std::exp(static_cast<double>(yr[c])) * sum);
  });
}

template <class T, class Label>
LossResult softmax_cross_entropy(const T* logits, const Label* labels, T label_smoothing, T* grad,
                             const RowsShape& s, const Exec&) {
  std::vector<double> row_loss(static_cast<size_t>(s.rows));
  const double eps = label_smoothing;
  const double off_target = eps / static_cast<double>(s.cols);
  const double on_target = 1.0 - eps + off_target;
  const T inv_rows = T(1) / static_cast<T>(s.rows);
  for_each_row(s, [&](int64_t n) {
    const T* xr = logits + n * s.cols;
    const int64_t target = static_cast<int64_t>(labels[n]);
    const T m = row_max(xr, s.cols);
    // exp(x_c - m) once per element, in T (the gradient's own values), summed in double; the
    // gradient row holds them until it is scaled. (A double exp for the sum and a float one for
    // the gradient made this ~10x the cost of everything else here: 28 us for 128 x 10.)
    T* gr = grad ? grad + n * s.cols : nullptr;
    double sum = 0;
    for (int64_t c = 0; c < s.cols; ++c) {
      const T e = std::exp(xr[c] - m);
      if (gr) gr[c] = e;
      sum += e;
    }
    const double lse = std::log(sum);
    // -sum_c q_c * log p_c with log p_c = (x_c - m) - lse and sum_c q_c = 1:
    //   = lse - (1 - eps) * (x_y - m) - (eps / C) * sum_c (x_c - m)
    // Differences in double: x - m can overflow float32 for logits near its range limit.
    const double md = m;
    double shifted_sum = 0;
    if (eps != 0.0)
      for (int64_t c = 0; c < s.cols; ++c) shifted_sum += static_cast<double>(xr[c]) - md;
    row_loss[n] = lse - (1.0 - eps) * (static_cast<double>(xr[target]) - md) - off_target * shifted_sum;
    if (gr) {
      const T scale = static_cast<T>(std::exp(-lse)) * inv_rows;  // 1 / (N * sum exp)
      const T q_off = static_cast<T>(off_target) * inv_rows;
      for (int64_t c = 0; c < s.cols; ++c) gr[c] = gr[c] * scale - q_off;
      gr[target] -= static_cast<T>(on_target - off_target) * inv_rows;
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return {total / static_cast<double>(s.rows), -1};
}

#define FASTNN_INSTANTIATE(T)                                                        \
  template void softmax_forward<T>(const T*, T*, const RowsShape&, const Exec&);                 \
  template void log_softmax_forward<T>(const T*, T*, const RowsShape&, const Exec&);             \
  template void softmax_backward<T>(const T*, const T*, T*, const RowsShape&, const Exec&);      \
  template void log_softmax_backward<T>(const T*, const T*, T*, const RowsShape&, const Exec&);  \
  template LossResult softmax_cross_entropy<T, int32_t>(const T*, const int32_t*, T, T*, \
                                                    const RowsShape&, const Exec&);               \
  template LossResult softmax_cross_entropy<T, int64_t>(const T*, const int64_t*, T, T*, \
                                                    const RowsShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
