// Row L2 normalisation forward and backward; see l2_normalize.h for the math. Rows are
// independent: threads split rows, each row summed in order, so results do not depend on the
// thread count.
#include "cpu/l2_normalize.h"

#include <cmath>

#include "common/threading.h"

namespace fastnn::cpu {
namespace {

template <class F>
void for_each_row(const RowsShape& s, F f) {
  const int nt = threads_for(s.rows * s.cols, 16384);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t n = 0; n < s.rows; ++n) f(n);
}

template <class T>
double row_norm(const T* x, int64_t cols) {
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += static_cast<double>(x[c]) * x[c];
  return std::sqrt(sum);
}

// One row's gradient, with y = src * to_y: src is x (to_y = 1 / max(norm, eps)) or y itself
// (to_y = 1). dy and dx may be the same row when not accumulating: dy is read before dx is written.
template <class T>
void backward_row(const T* dy, const T* src, double to_y, double norm, double eps, T* dx,
                  bool accumulate, int64_t cols) {
  const bool linear = !(norm > eps);
  double dot = 0;
  if (!linear)
    for (int64_t c = 0; c < cols; ++c) dot += static_cast<double>(dy[c]) * (src[c] * to_y);
  const double inv = 1.0 / (linear ? eps : norm);
  for (int64_t c = 0; c < cols; ++c) {
    const double g = (static_cast<double>(dy[c]) - src[c] * to_y * dot) * inv;
    dx[c] = static_cast<T>(accumulate ? dx[c] + g : g);
  }
}

}  // namespace

template <class T>
void l2_normalize_rows(const T* x, T* y, double* norms, double eps, const RowsShape& s, const Exec&) {
  for_each_row(s, [&](int64_t n) {
    const T* xr = x + n * s.cols;
    T* yr = y + n * s.cols;
    const double norm = row_norm(xr, s.cols);
    if (norms) norms[n] = norm;
    // A division, not a product with 1 / norm: a row of one element comes out exactly +-1, so
    // arcface's sin = sqrt(1 - cos^2) is exactly 0 there, as in the reference.
    const double denominator = norm > eps ? norm : eps;
    for (int64_t c = 0; c < s.cols; ++c) yr[c] = static_cast<T>(xr[c] / denominator);
  });
}

template <class T>
void l2_normalize_rows_backward(const T* dy, const T* y, const double* norms, T* dx, double eps,
                                bool accumulate, const RowsShape& s, const Exec&) {
  for_each_row(s, [&](int64_t n) {
    const int64_t at = n * s.cols;
    backward_row(dy + at, y + at, 1.0, norms[n], eps, dx + at, accumulate, s.cols);
  });
}

template <class T>
void l2_normalize_forward(const T* x, T* y, double eps, const RowsShape& s, const Exec& exec) {
  l2_normalize_rows(x, y, static_cast<double*>(nullptr), eps, s, exec);
}

template <class T>
void l2_normalize_backward(const T* dy, const T* x, T* dx, double eps, const RowsShape& s, const Exec&) {
  for_each_row(s, [&](int64_t n) {
    const int64_t at = n * s.cols;
    const double norm = row_norm(x + at, s.cols);
    backward_row(dy + at, x + at, 1.0 / (norm > eps ? norm : eps), norm, eps, dx + at, false, s.cols);
  });
}

#define FASTNN_INSTANTIATE(T)                                                                    \
  template void l2_normalize_forward<T>(const T*, T*, double, const RowsShape&, const Exec&);    \
  template void l2_normalize_backward<T>(const T*, const T*, T*, double, const RowsShape&,       \
                                         const Exec&);                                           \
  template void l2_normalize_rows<T>(const T*, T*, double*, double, const RowsShape&, const Exec&); \
  template void l2_normalize_rows_backward<T>(const T*, const T*, const double*, T*, double, bool, \
                                              const RowsShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
