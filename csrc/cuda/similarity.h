// Pairwise similarity, its backward, top-k and similarity top-k on the GPU: the contract and the
// math of cpu/similarity.h (metrics, shapes, ranking rule: common/shapes/similarity.h).
//   a: (N, D), b: (M, D), out / grad: (N, M), da: (N, D), db: (M, D)
// The products are cuda::gemm calls; around them, one warp per row computes the row norms (and
// the normalised or -2-scaled operand copies, in scratch), and the backward's row passes.
// topk: one block of 256 threads per row, k rounds; round r finds, by a block reduction, the
// best element ranked after the one round r - 1 found (the ranking is a strict total order, so
// this is exact, ties included). O(k * cols) per row: a simple selection that suits small k.
// similarity_topk: chunks of query rows whose (rows, M) block of similarities fits a scratch
// budget (kSimilarityChunkBytes), each a GEMM then the top-k kernel; the (N, M) matrix never
// exists at once.
#pragma once

#include <cstdint>

#include "common/shapes/similarity.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

constexpr int64_t kSimilarityChunkBytes = int64_t{64} << 20;

template <class T>
void pairwise_similarity(const T* a, const T* b, T* out, const SimilarityShape& s, const Exec& exec);

template <class T>
void pairwise_similarity_backward(const T* grad, const T* a, const T* b, T* da, T* db,
                                  const SimilarityShape& s, const Exec& exec);

template <class T>
void topk(const T* scores, T* values, int64_t* indices, const TopKShape& s, const Exec& exec);

template <class T>
void similarity_topk(const T* query, const T* gallery, T* values, int64_t* indices,
                     const SimilarityShape& s, const TopKShape& t, const Exec& exec);

// similarity_topk with a given scratch budget for one chunk of similarities (at least one row
// per chunk whatever the budget); tests/cuda_host runs several chunks through it.
template <class T>
void similarity_topk_chunked(const T* query, const T* gallery, T* values, int64_t* indices,
                             const SimilarityShape& s, const TopKShape& t, int64_t chunk_bytes,
                             const Exec& exec);

}  // namespace fastnn::cuda
