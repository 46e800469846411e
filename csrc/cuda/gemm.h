// General matrix product on the GPU, row-major, the contract of cpu/gemm.h with its epilogue
// (common/shapes/gemm.h: a bias per column and per row, then ReLU):
//   C = epilogue(alpha * op(A) @ op(B) + beta * C)
//   op(A): (M, K), stored as A (M, K) with lda >= K, or A (K, M) with lda >= M when trans_a
//   op(B): (K, N), stored as B (K, N) with ldb >= N, or B (N, K) with ldb >= K when trans_b
//   C: (M, N) with ldc >= N
// beta == 0 writes C without reading it; beta == 1 accumulates (parameter gradients).
//
// Two kernels (gemm.cu, gemm_tf32.cu), both tiled over shared memory:
// - exact float32/float64 ("highest", the default): CUDA-core FMAs, each thread owning a
//   register block of C, global loads for the next K-slice issued before the current one is
//   multiplied (double-buffered shared memory). Products are rounded as in fp32 FMA chains.
// - TF32 tensor cores ("high", float32 only, compute capability >= 8.0): mma.sync m16n8k8 over a
//   3-stage cp.async pipeline. A and B are rounded to TF32 (10-bit mantissa) before each
//   product, accumulation stays float32: relative error ~1e-3, like cuBLAS/PyTorch TF32. Used
//   when A and B are 16-byte aligned with leading dimensions that are multiples of 4 (what
//   cp.async needs); other products fall back to the exact kernel.
// Tile shape and split-K depend on the shape and the GPU's multiprocessor count only: for a
// given GPU, results are bitwise repeatable. Split-K partial products go to scratch memory and
// are summed in split order by a second kernel (no atomics).
#pragma once

#include "common/shapes/gemm.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

enum class MatmulPrecision { highest, high };

// Process-wide, like torch.set_float32_matmul_precision; applies to every GEMM-shaped op.
void set_matmul_precision(MatmulPrecision precision);
MatmulPrecision matmul_precision();

template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c,
          const GemmEpilogue<T>& epilogue, const Exec& exec);

}  // namespace fastnn::cuda
