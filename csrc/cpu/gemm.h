// General matrix product, row-major:
//   C = epilogue(alpha * op(A) @ op(B) + beta * C)
//   op(A): (M, K), stored as A (M, K) with lda >= K, or A (K, M) with lda >= M when trans_a
//   op(B): (K, N), stored as B (K, N) with ldb >= N, or B (N, K) with ldb >= K when trans_b
//   C: (M, N) with ldc >= N
// beta == 0 writes C without reading it (NaN in C is ignored, as in BLAS); beta == 1 lets
// backward kernels accumulate parameter gradients into .grad.
//
// The epilogue is applied once per element, after the whole K sum, while the tile is still in
// registers (so a layer's bias and activation cost no extra pass over C):
//   c[i, j] = relu?( alpha * sum_k op(A)[i, k] op(B)[k, j] + beta * c[i, j]
//                    + bias_per_col[j] + bias_per_row[i] )
// Linear layers add a bias per output feature (per column of y = x @ W^T); convolution as
// W (C_out, K) @ cols (K, pixels) adds one per output channel (per row).
//
// Threads: GemmThreads::team splits C over fastnn's thread count (common/threading.h) in
// disjoint blocks; GemmThreads::caller runs on the calling thread only, for kernels that
// already split their own work across an OpenMP team (call it from inside the parallel
// region; it opens no region itself). Every C element is summed in the same order whatever
// the thread count, so results are bitwise reproducible.
#pragma once

#include <cstdint>

#include "common/shapes/gemm.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

using fastnn::GemmEpilogue;

enum class GemmThreads { team, caller };

template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c,
          const GemmEpilogue<T>& epilogue = {}, GemmThreads threads = GemmThreads::team);

// The signature of cuda::gemm, which the bindings call (bindings/gemm.cpp).
template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c,
          const GemmEpilogue<T>& epilogue, const Exec&) {
  gemm(s, alpha, a, b, beta, c, epilogue, GemmThreads::team);
}

// C = epilogue(A @ op(B) + beta * C) with an indirect A (M, K): A(i, k) = a[a_k_offsets[k] + i],
// column k a contiguous run starting anywhere. A convolution at stride 1 reads its taps
// straight from the padded image this way, with no im2col copy (cpu/conv2d.cpp). A is read in
// place, rows past M included up to a micro-tile (16 rows): the caller keeps them readable.
// op(B) (K, N) comes packed by gemm_pack_b (below), so that a convolution packs its weights once
// per call rather than once per image.
//
// With row segments, A's rows come in runs of `length` that lie `pitch` apart: row r of A (and
// of C) reads from a + (r / length) * pitch + r % length, as a convolution's output rows of
// W_out pixels read padded rows of W + 2*pad. M must be a multiple of length, and the product
// runs a tile of exactly gemm_row_tile(length) rows (which divides length), so no tile computes
// a pixel that is not there.
struct GemmRowSegments {
  int64_t length, pitch;
};
template <class T>
void gemm_indirect_a(int64_t M, int64_t N, int64_t K, const T* a, const int64_t* a_k_offsets,
                     const T* packed_b, T beta, T* c, int64_t ldc,
                     const GemmEpilogue<T>& epilogue = {}, GemmThreads threads = GemmThreads::team,
                     const GemmRowSegments* segments = nullptr);

// The rows of the tile that runs row segments of `length` (a divisor of it) in a product with N
// columns, or 0 where the SIMD level in use has no tile that fits them, or N is narrow enough
// for the narrow tile (whose packing of B the row tile could not read).
template <class T>
int gemm_row_tile(int64_t length, int64_t N);

// op(B) (K, N) packed once for several products that share it (a convolution's dy, used by
// each of its kh*kw taps; its weights, used by every image): gemm_pack_b writes
// gemm_packed_b_size(K, N) elements, and gemm_with_packed_b computes
// C = epilogue(op(A) @ op(B) + beta * C) for a shape with that K and N (s.ldb unused), skipping
// B's packing. Same results as gemm.
// With a_k_offsets, op(A) is row-major (not trans_a) and read in place with its columns picked
// by offsets: A(i, k) = a[i * s.lda + a_k_offsets[k]], s.lda > 1 (a convolution's pixels read
// from padded planes, skipping their borders). Rows past M, up to a micro-tile (16 rows), are
// read too: the caller keeps them readable.
template <class T>
int64_t gemm_packed_b_size(int64_t K, int64_t N);
template <class T>
void gemm_pack_b(int64_t K, int64_t N, const T* b, bool trans_b, int64_t ldb, T* packed);
template <class T>
void gemm_with_packed_b(const GemmShape& s, const T* a, const T* packed_b, T beta, T* c,
                        const GemmEpilogue<T>& epilogue = {},
                        GemmThreads threads = GemmThreads::team,
                        const int64_t* a_k_offsets = nullptr);

// out[c * ld_out + r] = src[r * ld + c] for r < rows, c < cols, on the calling thread, with the
// active SIMD level's register transposes.
template <class T>
void transpose(const T* src, int64_t ld, int64_t rows, int64_t cols, T* out, int64_t ld_out);

// The same product on the calling thread only (GemmThreads::caller).
template <class T>
void gemm_serial(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c,
                 const GemmEpilogue<T>& epilogue = {}) {
  gemm(s, alpha, a, b, beta, c, epilogue, GemmThreads::caller);
}

}  // namespace fastnn::cpu
