// AVX-512 GEMM micro-kernels (zmm), built from gemm_simd.h with -mavx512f ... flags.
//
// float: a 12 x 32 tile (24 accumulators; per k step 2 B loads and 12 broadcasts feed 24
// FMAs), 4- and 8-row variants for ragged last row panels; products with N <= 16 use a 16 x 16 tile
// so a 10-class output wastes 6 of 16 lanes instead of 22 of 32 (16 rows divide the usual
// batch sizes); convolutions over 28-, 14- and 7-pixel rows use a 14 x 32 tile (28
// accumulators, A broadcast from memory by the FMAs) and its 7-row variant, one tile per row
// segment. double: the same shapes at 8 lanes.
// Blocks: a kc x nc block of packed B stays in L2 while each MR x kc micro-panel of A, in L1,
// sweeps it (cpu/gemm.cpp); kc = 384 floats (192 doubles) keeps that A panel at 18 KiB and the
// B block (kc x nc) at 768 KiB, within a 1 MiB (Zen 4) or 2 MiB (Sapphire Rapids) L2.
#include "cpu/gemm_simd.h"

namespace fastnn::cpu {

const GemmKernelInfo<float>& gemm_kernel_info_avx512_float() {
  static const GemmKernelInfo<float> info =
      simd_kernel_info<Zmm16f, 12, 2, 4, 8, 16, 4, 8, 14, 4, 7>(3072, 384, 512, "avx512 12x32");
  return info;
}

const GemmKernelInfo<double>& gemm_kernel_info_avx512_double() {
  static const GemmKernelInfo<double> info =
      simd_kernel_info<Zmm8d, 12, 2, 4, 8, 16, 4, 8, 14, 4, 7>(3072, 192, 256, "avx512 12x16");
  return info;
}

}  // namespace fastnn::cpu
