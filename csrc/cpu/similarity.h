// Pairwise similarity of two sets of row vectors through the GEMM, its gradient, and top-k per
// row (metrics, shapes and the ranking rule: common/shapes/similarity.h).
//   a: (N, D), b: (M, D), out / grad: (N, M), da: (N, D), db: (M, D)
//   forward: one GEMM out = A' @ B'^T with the metric in the operands and the epilogue:
//     cosine      A' = a_hat, B' = b_hat (rows scaled by 1 / max(|x|, eps) in one pass)
//     dot         A' = a, B' = b
//     sqeuclidean A' = -2 a (exact), B' = b, epilogue + |a_i|^2 per row + |b_j|^2 per column, ReLU
//   backward (G = dL/dout; these ops have no parameters, so both gradients are written):
//     dot         da = G b,  db = G^T a
//     cosine      da_hat = G b_hat, db_hat = G^T a_hat, then through the normalisation per row
//     sqeuclidean H = G where the unclamped distance > 0 (else 0, the clamp's gradient);
//                 da_i = 2 (sum_j H_ij) a_i - 2 (H b)_i,  db_j = 2 (sum_i H_ij) b_j - 2 (H^T a)_j
// topk: scores (rows, cols) -> values, indices (rows, k), best first; threads over rows.
// similarity_topk: topk(pairwise_similarity(query, gallery)) without the (N, M) matrix: each
// thread takes blocks of query rows, multiplies them with column tiles of the gallery (packed
// once for the GEMM) into an L2-sized tile, and feeds the tile to its rows' running top-k. For
// k above kInsertionMaxK the rows are taken whole and partially sorted instead.
// Results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "common/shapes/similarity.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
void pairwise_similarity(const T* a, const T* b, T* out, const SimilarityShape& s, const Exec&);

template <class T>
void pairwise_similarity_backward(const T* grad, const T* a, const T* b, T* da, T* db,
                                  const SimilarityShape& s, const Exec&);

template <class T>
void topk(const T* scores, T* values, int64_t* indices, const TopKShape& s, const Exec&);

// query: (N, D), gallery: (M, D) as `s` (a = query, b = gallery); `t` has rows N, cols M.
template <class T>
void similarity_topk(const T* query, const T* gallery, T* values, int64_t* indices,
                     const SimilarityShape& s, const TopKShape& t, const Exec&);

}  // namespace fastnn::cpu
