// Linear forward/backward as GEMMs; see linear.h for the math.
#include "cpu/linear.h"

#include <algorithm>
#include <vector>

#include "common/threading.h"
#include "cpu/gemm.h"

namespace fastnn::cpu {

template <class T>
void linear_forward(const T* x, const T* weight, const T* bias, T* y, const LinearShape& s,
                    bool relu, const Exec&) {
  // y = x @ W^T, with the bias added per column (and the ReLU) by the GEMM's epilogue while
  // each tile of y is still in registers.
  GemmEpilogue<T> epilogue;
  epilogue.bias_per_col = bias;
  epilogue.relu = relu;
  gemm(GemmShape::dense(s.batch, s.out_features, s.in_features, false, true), T(1), x, weight,
       T(0), y, epilogue);
}

template <class T>
void linear_backward_input(const T* dy, const T* weight, T* dx, const LinearShape& s, const Exec&) {
  gemm(GemmShape::dense(s.batch, s.in_features, s.out_features, false, false), T(1), dy, weight,
       T(0), dx);
}

template <class T>
void linear_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const LinearShape& s, const Exec&) {
  gemm(GemmShape::dense(s.out_features, s.in_features, s.batch, true, false), T(1), dy, x,
       accumulate ? T(1) : T(0), dweight);
}

template <class T>
void bias_backward_rows(const T* dy, T* dbias, int64_t rows, int64_t features, bool accumulate, const Exec&) {
  // Column sums. Threads split the feature axis, each summing its columns over all rows in
  // order, so the result does not depend on the thread count.
  const int nt = threads_for(rows * features);
  const int64_t chunk = 64;  // columns per task: contiguous rows of dy stay vectorisable
  const int64_t n_chunks = (features + chunk - 1) / chunk;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t q = 0; q < n_chunks; ++q) {
    const int64_t f0 = q * chunk, f1 = std::min(features, f0 + chunk);
    T sum[chunk];
    for (int64_t f = f0; f < f1; ++f) sum[f - f0] = accumulate ? dbias[f] : T(0);
    for (int64_t n = 0; n < rows; ++n) {
      const T* row = dy + n * features;
      for (int64_t f = f0; f < f1; ++f) sum[f - f0] += row[f];
    }
    for (int64_t f = f0; f < f1; ++f) dbias[f] = sum[f - f0];
  }
}

#define FASTNN_INSTANTIATE(T)                                                                  \
  template void linear_forward<T>(const T*, const T*, const T*, T*, const LinearShape&, bool, const Exec&);      \
  template void linear_backward_input<T>(const T*, const T*, T*, const LinearShape&, const Exec&);         \
  template void linear_backward_weight<T>(const T*, const T*, T*, bool, const LinearShape&, const Exec&);  \
  template void bias_backward_rows<T>(const T*, T*, int64_t, int64_t, bool, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
