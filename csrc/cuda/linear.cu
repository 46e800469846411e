// Linear forward/backward as GEMMs, and the column sums behind every per-feature bias gradient;
// see linear.h.
//
// Column sums of dy (rows, features): a block of 32 x 8 threads owns 32 adjacent columns (a
// warp reads 128 contiguous bytes of a row) and a band of rows; its 8 thread rows each sum a
// strided subset of the band in order, then thread row 0 adds the 8 partial sums in order. With
// more than one band (tall dy), band sums go to scratch and a second kernel adds them band by
// band. The number of bands depends on the shape and the GPU only, so the sums are repeatable.
#include "cuda/linear.h"

#include <algorithm>

#include "cuda/band_sums.h"
#include "cuda/device.cuh"
#include "cuda/gemm.h"

namespace fastnn::cuda {

template <class T>
void linear_forward(const T* x, const T* weight, const T* bias, T* y, const LinearShape& s,
                    bool relu, const Exec& exec) {
  GemmEpilogue<T> epilogue;
  epilogue.bias_per_col = bias;
  epilogue.relu = relu;
  gemm(GemmShape::dense(s.batch, s.out_features, s.in_features, false, true), T(1), x, weight,
       T(0), y, epilogue, exec);
}

template <class T>
void linear_backward_input(const T* dy, const T* weight, T* dx, const LinearShape& s,
                           const Exec& exec) {
  gemm(GemmShape::dense(s.batch, s.in_features, s.out_features, false, false), T(1), dy, weight,
       T(0), dx, GemmEpilogue<T>{}, exec);
}

template <class T>
void linear_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const LinearShape& s, const Exec& exec) {
  gemm(GemmShape::dense(s.out_features, s.in_features, s.batch, true, false), T(1), dy, x,
       accumulate ? T(1) : T(0), dweight, GemmEpilogue<T>{}, exec);
}

namespace {

constexpr int kColumns = 32, kRowThreads = 8;

// out[band * features + f] = sum of dy[r, f] over the band's rows (+ out_prior[f] when given).
template <class T>
__global__ void column_sums_kernel(const T* dy, int64_t rows, int64_t features, int64_t band_rows,
                                   const T* prior, T* out) {
  __shared__ T partial[kRowThreads][kColumns + 1];
  const int64_t f = static_cast<int64_t>(blockIdx.x) * kColumns + threadIdx.x;
  const int64_t band = blockIdx.y;
  const int64_t r0 = band * band_rows, r1 = min(rows, r0 + band_rows);
  T sum = T(0);
  if (f < features)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) sum += dy[r * features + f];
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && f < features) {
    T total = prior ? prior[f] : T(0);
#pragma unroll
    for (int i = 0; i < kRowThreads; ++i) total += partial[i][threadIdx.x];
    out[band * features + f] = total;
  }
}

}  // namespace

template <class T>
void bias_backward_rows(const T* dy, T* dbias, int64_t rows, int64_t features, bool accumulate,
                        const Exec& exec) {
  if (features == 0) return;
  const int64_t column_blocks = (features + kColumns - 1) / kColumns;
  const int64_t wanted_bands = reduction_bands(rows, column_blocks, 256);
  const int64_t band_rows = std::max<int64_t>(1, (rows + wanted_bands - 1) / wanted_bands);
  const int64_t bands = std::max<int64_t>(1, (rows + band_rows - 1) / band_rows);
  const T* prior = accumulate ? dbias : nullptr;
  const dim3 block(kColumns, kRowThreads);
  if (bands == 1) {
    FASTNN_LAUNCH(dim3(column_blocks, 1), block, 0, exec.stream, column_sums_kernel<T>)(
        dy, rows, features, band_rows, prior, dbias);
    check_launch("column_sums");
    return;
  }
  T* band_sums = static_cast<T*>(exec.scratch(bands * features * sizeof(T), "bias_backward_rows"));
  FASTNN_LAUNCH(dim3(column_blocks, bands), block, 0, exec.stream, column_sums_kernel<T>)(
      dy, rows, features, band_rows, nullptr, band_sums);
  check_launch("column_sums");
  add_band_sums(band_sums, bands, features, prior, dbias, exec);
}

#define FASTNN_INSTANTIATE(T)                                                                       \
  template void linear_forward<T>(const T*, const T*, const T*, T*, const LinearShape&, bool, const Exec&); \
  template void linear_backward_input<T>(const T*, const T*, T*, const LinearShape&, const Exec&);    \
  template void linear_backward_weight<T>(const T*, const T*, T*, bool, const LinearShape&,           \
                                          const Exec&);                                               \
  template void bias_backward_rows<T>(const T*, T*, int64_t, int64_t, bool, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cuda
