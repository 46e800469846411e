// AVX2 + FMA GEMM micro-kernels (ymm), built from gemm_simd.h with -mavx2 -mfma.
//
// 16 ymm registers: a 6 x 2-vector tile holds 12 accumulators, 2 B vectors and 1 broadcast.
// float: 6 x 16 (2- and 4-row variants for ragged edges), and 12 x 8 for products with N <= 8;
// double: 6 x 8 and 12 x 4. Blocks as in gemm_avx512.cpp, kc scaled to the smaller tile.
#include "cpu/gemm_simd.h"

namespace fastnn::cpu {

const GemmKernelInfo<float>& gemm_kernel_info_avx2_float() {
  static const GemmKernelInfo<float> info =
      simd_kernel_info<Ymm8f, 6, 2, 2, 4, 12, 4, 8, 6, 2, 4>(3072, 256, 512, "avx2 6x16");
  return info;
}

const GemmKernelInfo<double>& gemm_kernel_info_avx2_double() {
  static const GemmKernelInfo<double> info =
      simd_kernel_info<Ymm4d, 6, 2, 2, 4, 12, 4, 8, 6, 2, 4>(3072, 128, 256, "avx2 6x8");
  return info;
}

}  // namespace fastnn::cpu
