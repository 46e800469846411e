// Portable GEMM micro-kernel (any compiler, any ISA) and the run-time choice of micro-kernel.
//
// The MR x NR accumulator tile is a plain array the compiler keeps in vector registers; the
// inner j loop over NR contiguous elements of the packed B panel vectorises at -O3 on the
// baseline ISA. The SIMD variants (gemm_avx2.cpp, gemm_avx512.cpp) follow the same contract.
#include <algorithm>

#include "common/cpu_features.h"
#include "cpu/gemm_kernel.h"

namespace fastnn::cpu {
namespace {

template <class T, int MR, int NR>
void micro_kernel_generic(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta,
                          int m_valid, int n_valid) {
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const T* ap = a + p * MR;
    const T* bp = b + p * NR;
    for (int i = 0; i < MR; ++i) {
      const T ai = ap[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < m_valid; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < n_valid; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < n_valid; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

}  // namespace

template <>
const GemmKernelInfo<float>& gemm_kernel_info<float>() {
  static const GemmKernelInfo<float> generic{4, 16, 128, 256, 4096,
                                             micro_kernel_generic<float, 4, 16>, "generic 4x16"};
  return generic;
}

template <>
const GemmKernelInfo<double>& gemm_kernel_info<double>() {
  static const GemmKernelInfo<double> generic{4, 8, 128, 256, 4096,
                                              micro_kernel_generic<double, 4, 8>, "generic 4x8"};
  return generic;
}

}  // namespace fastnn::cpu
