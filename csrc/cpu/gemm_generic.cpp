// Portable GEMM micro-kernel (any compiler, any ISA) and the run-time choice of kernels.
//
// The MR x NR accumulator tile is a plain array the compiler keeps in vector registers; the
// inner j loop over NR contiguous elements of the packed B panel vectorises at -O3 on the
// baseline ISA. The SIMD variants (gemm_avx2.cpp, gemm_avx512.cpp, both built from
// gemm_simd.h) follow the same contract (gemm_kernel.h) with intrinsics.
#include <algorithm>

#include "common/cpu_features.h"
#include "cpu/gemm_kernel.h"
#include "cpu/gemm_pack.h"

namespace fastnn::cpu {
namespace {

template <class T, int MR, int NR>
void micro_kernel_generic(int64_t kc, const T* a, int64_t a_row_stride, int64_t a_col_stride,
                          const int64_t* a_k_offsets, const T* b, int64_t b_row_stride,
                          const GemmTileOutput<T>& out) {
  T acc[MR][NR] = {};
  const int cols = out.n_valid;  // B is read only this far (in place it may end there)
  for (int64_t p = 0; p < kc; ++p) {
    const T* ap = a_k_offsets ? a + a_k_offsets[p] : a + p * a_col_stride;
    const T* bp = b + p * b_row_stride;
    for (int i = 0; i < MR; ++i) {
      const T ai = ap[i * a_row_stride];
      for (int j = 0; j < cols; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < out.m_valid; ++i) {
    T* ci = out.c + i * out.ldc;
    const T row_bias = out.bias_row ? out.bias_row[i] : T(0);
    for (int j = 0; j < out.n_valid; ++j) {
      T v = out.alpha * acc[i][j];
      if (out.beta != T(0)) v += out.beta * ci[j];
      if (out.bias_col) v += out.bias_col[j];
      v += row_bias;
      if (out.relu) v = std::max(v, T(0));  // (v < 0 ? 0 : v): NaN stays NaN
      ci[j] = v;
    }
  }
}

// An MR x NR tile with S1- and S2-row variants for ragged last rows.
template <class T, int MR, int NR, int S1, int S2>
GemmMicroTile<T> generic_tile() {
  return {MR,
          NR,
          micro_kernel_generic<T, MR, NR>,
          {{S1, micro_kernel_generic<T, S1, NR>}, {S2, micro_kernel_generic<T, S2, NR>}}};
}

template <class T>
GemmKernelInfo<T> generic_info(const char* name) {
  constexpr int nr = 64 / static_cast<int>(sizeof(T));  // one cache line of B per k
  return {generic_tile<T, 4, nr, 1, 2>(),
          generic_tile<T, 8, nr / 2, 2, 4>(),
          generic_tile<T, 4, nr, 1, 2>(),
          128,
          256,
          2048,
          pack_rows_scalar<T>,
          pack_transposed_scalar<T>,
          transpose_scalar<T>,
          name};
}

}  // namespace

template <>
const GemmKernelInfo<float>& gemm_kernel_info<float>() {
  static const GemmKernelInfo<float> generic = generic_info<float>("generic 4x16");
#if defined(FASTNN_X86)
  static const GemmKernelInfo<float>& chosen =
      table_for_active_level(generic, gemm_kernel_info_avx2_float, gemm_kernel_info_avx512_float);
#else
  static const GemmKernelInfo<float>& chosen =
      table_for_active_level<GemmKernelInfo<float>>(generic, nullptr, nullptr);
#endif
  return chosen;
}

template <>
const GemmKernelInfo<double>& gemm_kernel_info<double>() {
  static const GemmKernelInfo<double> generic = generic_info<double>("generic 4x8");
#if defined(FASTNN_X86)
  static const GemmKernelInfo<double>& chosen =
      table_for_active_level(generic, gemm_kernel_info_avx2_double, gemm_kernel_info_avx512_double);
#else
  static const GemmKernelInfo<double>& chosen =
      table_for_active_level<GemmKernelInfo<double>>(generic, nullptr, nullptr);
#endif
  return chosen;
}

}  // namespace fastnn::cpu
