// The per-row loops of cpu/batchnorm.cpp (see batchnorm.h for the math): one row is the S
// contiguous values x[n, c, :] of one channel. Written once as portable `omp simd` loops and
// compiled three times: in batchnorm.cpp (baseline ISA) and in batchnorm_avx2.cpp /
// batchnorm_avx512.cpp (their -m flags), where the compiler vectorises the double-precision
// sums 4 and 8 lanes wide instead of SSE2's 2. The loops live in an anonymous namespace so that
// each translation unit keeps its own copy (no ODR merging of code built for different ISAs).
//
// The ReLU mask of the fused backward is recomputed from x by `normalized`, the very function
// the forward wrote y with, in the same translation unit (the ISA is chosen once per process),
// so `normalized(x) > 0` holds exactly where the stored relu output is positive.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace fastnn::cpu {

// One ISA's row loops for T (float: the ISA translation units export a table each).
template <class T>
struct BatchNormRows {
  // sum += sum (x - shift), sum_sq += sum (x - shift)^2, in double.
  void (*shifted_sums)(const T* x, int64_t n, double shift, double* sum, double* sum_sq);
  // y = (x - mean) * scale + shift, then max(., 0) when relu (NaN stays NaN).
  void (*normalize)(const T* x, T* y, int64_t n, T mean, T scale, T shift, bool relu);
  // With g = dy, or dy where normalized(x) > 0 else 0 when relu: sum_dy += sum g,
  // sum_dy_xc += sum g * (x - mean_double), in double.
  void (*grad_sums)(const T* dy, const T* x, int64_t n, double mean_double, bool relu, T mean,
                    T scale, T shift, double* sum_dy, double* sum_dy_xc);
  // dx = a * g + b * (x - mean) + k, g as in grad_sums.
  void (*input_grad)(const T* dy, const T* x, T* dx, int64_t n, T a, T b, T k, bool relu, T mean,
                     T scale, T shift);
};

// The AVX2 / AVX-512 tables (batchnorm_avx2.cpp, batchnorm_avx512.cpp): call one only when
// active_simd_level() allows its ISA.
const BatchNormRows<float>& batch_norm_rows_avx2();
const BatchNormRows<float>& batch_norm_rows_avx512();

// Inlined into the portable kernels' loops over n: BatchNorm1d's rows are single values, and a
// call per value made its backward 1.4x slower.
#if defined(__GNUC__)
#define FASTNN_BN_ROW_INLINE [[gnu::always_inline]] inline
#else
#define FASTNN_BN_ROW_INLINE inline
#endif

namespace {

// The pre-activation value, one expression for the forward and the fused backward's mask.
template <class T>
inline T normalized(T x, T mean, T scale, T shift) {
  return (x - mean) * scale + shift;
}

// g where v > 0, else +0 (ops.relu_backward's values, NaN v included), as a bitwise AND: the
// plain `v > 0 ? g : 0` feeding a double sum stayed a scalar branch per element under the
// default -ftrapping-math (10x slower on random signs).
template <class T>
inline T keep_where_positive(T v, T g) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Bits bits;
  std::memcpy(&bits, &g, sizeof(T));
  bits &= v > T(0) ? ~Bits(0) : Bits(0);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// Rows shorter than this sum in a plain loop: an `omp simd` reduction zeroes and then adds up
// a private array of accumulators per lane at every call, which for BatchNorm1d's one-value
// rows made the backward 1.5x slower than the loop it replaced.
constexpr int64_t kSimdSumRow = 4;

// sum += sum term(i)[0], sum2 += sum term(i)[1] over i < n, in double.
template <class Term>
FASTNN_BN_ROW_INLINE void add_row_sums(int64_t n, Term term, double* sum, double* sum2) {
  double s = 0, q = 0;
  if (n < kSimdSumRow) {
    for (int64_t i = 0; i < n; ++i) {
      const auto t = term(i);
      s += t.first;
      q += t.second;
    }
  } else {
#pragma omp simd reduction(+ : s, q)
    for (int64_t i = 0; i < n; ++i) {
      const auto t = term(i);
      s += t.first;
      q += t.second;
    }
  }
  *sum += s;
  *sum2 += q;
}

struct TermPair {
  double first, second;
};

template <class T>
FASTNN_BN_ROW_INLINE void shifted_sums_row(const T* x, int64_t n, double shift, double* sum, double* sum_sq) {
  add_row_sums(n, [=](int64_t i) {
    const double d = static_cast<double>(x[i]) - shift;
    return TermPair{d, d * d};
  }, sum, sum_sq);
}

template <class T>
FASTNN_BN_ROW_INLINE void normalize_row(const T* x, T* y, int64_t n, T mean, T scale, T shift, bool relu) {
  if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T v = normalized(x[i], mean, scale, shift);
      y[i] = v < T(0) ? T(0) : v;  // NaN stays NaN, as ops.relu
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = normalized(x[i], mean, scale, shift);
  }
}

template <class T>
FASTNN_BN_ROW_INLINE void grad_sums_row(const T* dy, const T* x, int64_t n, double mean_double, bool relu, T mean,
                   T scale, T shift, double* sum_dy, double* sum_dy_xc) {
  if (relu) {
    add_row_sums(n, [=](int64_t i) {
      const double g = static_cast<double>(keep_where_positive(normalized(x[i], mean, scale, shift), dy[i]));
      return TermPair{g, g * (static_cast<double>(x[i]) - mean_double)};
    }, sum_dy, sum_dy_xc);
  } else {
    add_row_sums(n, [=](int64_t i) {
      const double g = static_cast<double>(dy[i]);
      return TermPair{g, g * (static_cast<double>(x[i]) - mean_double)};
    }, sum_dy, sum_dy_xc);
  }
}

template <class T>
FASTNN_BN_ROW_INLINE void input_grad_row(const T* dy, const T* x, T* dx, int64_t n, T a, T b, T k, bool relu, T mean,
                    T scale, T shift) {
  if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T g = keep_where_positive(normalized(x[i], mean, scale, shift), dy[i]);
      dx[i] = a * g + b * (x[i] - mean) + k;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = a * dy[i] + b * (x[i] - mean) + k;
  }
}

template <class T>
BatchNormRows<T> this_isa_rows() {
  return {shifted_sums_row<T>, normalize_row<T>, grad_sums_row<T>, input_grad_row<T>};
}

}  // namespace
}  // namespace fastnn::cpu
