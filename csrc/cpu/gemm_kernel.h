// Register-blocked micro-kernels for cpu/gemm.cpp and how to choose one.
//
// A micro-kernel multiplies one packed MR x kc panel of op(A) by one packed kc x NR panel of
// op(B) and writes the MR x NR tile of C:
//   c[i, j] = alpha * sum_p a_panel[p * MR + i] * b_panel[p * NR + j] + beta * c[i, j]
// for i < m_valid, j < n_valid (tails are zero-padded in the panels, clipped on store).
// beta == 0 means "do not read C".
#pragma once

#include <cstdint>

namespace fastnn::cpu {

template <class T>
using GemmMicroKernel = void (*)(int64_t kc, const T* a_panel, const T* b_panel, T* c,
                                 int64_t ldc, T alpha, T beta, int m_valid, int n_valid);

template <class T>
struct GemmKernelInfo {
  int mr, nr;               // register tile
  int64_t mc, kc, nc;       // cache blocks (mc % mr == 0, nc % nr == 0)
  GemmMicroKernel<T> kernel;
  const char* name;
};

// The micro-kernel for the SIMD level in use (common/cpu_features.h).
template <class T>
const GemmKernelInfo<T>& gemm_kernel_info();

}  // namespace fastnn::cpu
