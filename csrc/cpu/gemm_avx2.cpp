// AVX2 + FMA GEMM micro-kernels (ymm), built from gemm_simd.h with -mavx2 -mfma.
//
// 16 ymm registers: a 6 x 2-vector tile holds 12 accumulators, 2 B vectors and 1 broadcast.
// float: 6 x 16 (4-row variant for ragged edges), and 12 x 8 for products with N <= 8;
// double: 6 x 8 and 12 x 4.
#include "cpu/gemm_simd.h"

namespace fastnn::cpu {

template <class Vec>
GemmKernelInfo<typename Vec::T> avx2_info(int64_t nc, const char* name) {
  using K6 = SimdMicroKernel<Vec, 6, 2>;
  using K4 = SimdMicroKernel<Vec, 4, 2>;
  using N12 = SimdMicroKernel<Vec, 12, 1>;
  using N6 = SimdMicroKernel<Vec, 6, 1>;
  return {{6, K6::NR, K6::run, 4, K4::run},
          {12, N12::NR, N12::run, 6, N6::run},
          3072,
          256,
          nc,
          pack_rows_simd<Vec>,
          pack_transposed_simd<typename Vec::T>,
          name};
}

const GemmKernelInfo<float>& gemm_kernel_info_avx2_float() {
  static const GemmKernelInfo<float> info = avx2_info<Ymm8f>(512, "avx2 6x16");
  return info;
}

const GemmKernelInfo<double>& gemm_kernel_info_avx2_double() {
  static const GemmKernelInfo<double> info = avx2_info<Ymm4d>(256, "avx2 6x8");
  return info;
}

}  // namespace fastnn::cpu
