// Pieces shared by the GEMM kernels (gemm.cu: exact CUDA-core kernel, plan, split-K reduction;
// gemm_tf32.cu: tensor-core kernel): the launch parameters, the block -> tile mapping and the
// epilogue that applies alpha, beta, the biases and the ReLU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/launch.h"

namespace fastnn::cuda::detail {

template <class T>
struct GemmParams {
  const T* a;
  const T* b;
  T* c;
  const T* bias_per_col;  // (N,) added to every row, or null
  const T* bias_per_row;  // (M,) added to every column, or null
  bool relu;              // max(v, 0) last; NaN stays NaN, as on the CPU
  T* partial;        // split-K: (splits, M, N) scratch, written instead of c; else null
  int64_t M, N, K, lda, ldb, ldc;
  T alpha, beta;
  int tiles_m, tiles_n;
  int64_t k_per_split;  // a multiple of the kernel's BK; blockIdx.z picks the K range
  bool vec_a, vec_b;    // A / B allow 16-byte loads (aligned base, leading dim a multiple)
};

// Blocks walk C's tiles in groups of 8 tile rows, column by column inside a group, so blocks
// running together share the same few panels of A and B in L2.
__device__ inline void tile_of_block(int tiles_m, int tiles_n, int* tile_m, int* tile_n) {
  constexpr int kGroup = 8;
  const int pid = blockIdx.x;
  const int group = pid / (kGroup * tiles_n);
  const int first_m = group * kGroup;
  const int group_rows = min(tiles_m - first_m, kGroup);
  const int in_group = pid % (kGroup * tiles_n);
  *tile_m = first_m + in_group % group_rows;
  *tile_n = in_group / group_rows;
}

// The K range of this block's split: [k_begin, k_end).
template <class T>
__device__ inline void split_range(const GemmParams<T>& p, int64_t* k_begin, int64_t* k_end) {
  *k_begin = static_cast<int64_t>(blockIdx.z) * p.k_per_split;
  *k_end = min(p.K, *k_begin + p.k_per_split);
}

// The epilogue of cpu/gemm.h for one element of C, whose scaled sum is v: + beta * C, + the
// biases, then the ReLU (v < 0 is false for NaN, so NaN stays NaN).
template <class T>
__host__ __device__ inline void gemm_finish(const GemmParams<T>& p, int64_t m, int64_t n, T v) {
  T* c = p.c + m * p.ldc + n;
  if (p.beta != T(0)) v += p.beta * *c;
  if (p.bias_per_col) v += p.bias_per_col[n];
  if (p.bias_per_row) v += p.bias_per_row[m];
  if (p.relu && v < T(0)) v = T(0);
  *c = v;
}

// Writes one finished element of C (gemm_finish of alpha * acc), or the split's partial
// product alpha * acc, which gemm_reduce_splits finishes.
template <class T>
__device__ inline void gemm_store(const GemmParams<T>& p, int64_t m, int64_t n, T acc) {
  if (m >= p.M || n >= p.N) return;
  if (p.partial) {
    p.partial[(static_cast<int64_t>(blockIdx.z) * p.M + m) * p.N + n] = p.alpha * acc;
    return;
  }
  gemm_finish(p, m, n, p.alpha * acc);
}

// Launches the tensor-core kernel for p when it applies (float32, "high" precision, a GPU of
// compute capability >= 8.0, cp.async-compatible A and B); returns false to ask for the exact
// kernel instead. Defined in gemm_tf32.cu.
bool gemm_tf32(const GemmParams<float>& p, bool trans_a, bool trans_b, const Exec& exec);

// Chooses the split-K factor and fills p.k_per_split / p.partial for a grid of `tiles` blocks
// of `bk`-deep K slices; the reduction launch follows the GEMM when splits > 1. Defined in
// gemm.cu and shared by both kernels so they split alike.
template <class T>
int plan_split_k(GemmParams<T>& p, int64_t tiles, int bk, const Exec& exec);
template <class T>
void reduce_splits(const GemmParams<T>& p, int splits, const Exec& exec);

}  // namespace fastnn::cuda::detail
