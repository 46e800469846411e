// General matrix product, row-major:  C = alpha * op(A) @ op(B) + beta * C
//   op(A): (M, K), stored as A (M, K) with lda >= K, or A (K, M) with lda >= M when trans_a
//   op(B): (K, N), stored as B (K, N) with ldb >= N, or B (N, K) with ldb >= K when trans_b
//   C: (M, N) with ldc >= N
// beta == 0 writes C without reading it (NaN in C is ignored, as in BLAS); beta == 1 lets
// backward kernels accumulate parameter gradients into .grad.
#pragma once

#include <cstdint>

#include "common/shapes/gemm.h"

namespace fastnn::cpu {

template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c);

// The same product on at most `max_threads` threads. Callers that already parallelise an outer
// loop (convolution over images) pass 1, so OpenMP regions never nest.
template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c, int max_threads);

}  // namespace fastnn::cpu
