// AVX-512 GEMM micro-kernels (zmm), built from gemm_simd.h with -mavx512f ... flags.
//
// float: a 12 x 32 tile (24 accumulators; per k step 2 B loads and 12 broadcasts feed 24
// FMAs), an 8-row variant for ragged last row panels; products with N <= 16 use a 16 x 16 tile
// so a 10-class output wastes 6 of 16 lanes instead of 22 of 32 (16 rows divide the usual
// batch sizes). double: the same shapes at 8 lanes.
// Blocks: a kc x nc block of packed B stays in L2 while each MR x kc micro-panel of A, in L1,
// sweeps it (cpu/gemm.cpp); kc = 384 keeps that A panel at 18 KiB.
#include "cpu/gemm_simd.h"

namespace fastnn::cpu {

template <class Vec>
GemmKernelInfo<typename Vec::T> avx512_info(int64_t nc, const char* name) {
  using K12 = SimdMicroKernel<Vec, 12, 2>;
  using K8 = SimdMicroKernel<Vec, 8, 2>;
  using N16 = SimdMicroKernel<Vec, 16, 1>;
  using N8 = SimdMicroKernel<Vec, 8, 1>;
  return {{12, K12::NR, K12::run, 8, K8::run},
          {16, N16::NR, N16::run, 8, N8::run},
          3072,
          384,
          nc,
          pack_rows_simd<Vec>,
          pack_transposed_simd<typename Vec::T>,
          name};
}

const GemmKernelInfo<float>& gemm_kernel_info_avx512_float() {
  static const GemmKernelInfo<float> info = avx512_info<Zmm16f>(512, "avx512 12x32");
  return info;
}

const GemmKernelInfo<double>& gemm_kernel_info_avx512_double() {
  static const GemmKernelInfo<double> info = avx512_info<Zmm8d>(256, "avx512 12x16");
  return info;
}

}  // namespace fastnn::cpu
