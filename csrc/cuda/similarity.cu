// Similarity family on the GPU; see similarity.h.
#include "cuda/similarity.h"

#include <algorithm>

#include "cuda/device.cuh"
#include "cuda/gemm.h"
#include "cuda/warp_rows.cuh"

namespace fastnn::cuda {
namespace {

constexpr int kRowThreads = kRowBlockThreads;
constexpr int kTopkThreads = 256;

// One warp per row: norm_out[r] = 1 / max(|x_r|, eps) (cosine) or |x_r|^2 (sqeuclidean), summed in
// double; copy (nullable) = x_r * that inverse norm (cosine) or -2 x_r (sqeuclidean).
template <class T>
__global__ void row_norms_kernel(const T* x, int64_t rows, int64_t dim, Metric metric, T* norm_out, T* copy) {
  const int64_t row = warp_row(rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const T* xr = x + row * dim;
  double sum = 0;
  for (int64_t d = lane; d < dim; d += kWarpSize) sum += static_cast<double>(xr[d]) * xr[d];
  sum = warp_sum(sum);
  T factor;
  if (metric == Metric::cosine) {
    const T norm = static_cast<T>(::sqrt(sum));
    factor = norm > static_cast<T>(kCosineEps) ? T(1) / norm : T(1) / static_cast<T>(kCosineEps);
    if (lane == 0) norm_out[row] = factor;
  } else {
    factor = T(-2);
    if (lane == 0) norm_out[row] = static_cast<T>(sum);
  }
  if (copy)
    for (int64_t d = lane; d < dim; d += kWarpSize) copy[row * dim + d] = xr[d] * factor;
}

// One warp per row of dx (in: d x_hat, out: dx), through x_hat = x / max(|x|, eps).
template <class T>
__global__ void normalize_backward_kernel(T* dx, const T* x_hat, const T* inv_norm, int64_t rows, int64_t dim) {
  const int64_t row = warp_row(rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  T* g = dx + row * dim;
  const T* xh = x_hat + row * dim;
  T dot = 0;
  for (int64_t d = lane; d < dim; d += kWarpSize) dot += xh[d] * g[d];
  dot = warp_sum(dot);
  const bool clamped = inv_norm[row] == T(1) / static_cast<T>(kCosineEps);
  for (int64_t d = lane; d < dim; d += kWarpSize) g[d] = normalize_backward(g[d], xh[d], dot, inv_norm[row], clamped);
}

// h = grad where the unclamped distance in h is > 0, else 0 (in place).
template <class T>
__global__ void clamp_mask_kernel(T* h, const T* grad, int64_t n) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) h[i] = h[i] > T(0) ? grad[i] : T(0);
}

// One warp per row: sums[r] = sum_j h[r, j].
template <class T>
__global__ void row_sums_kernel(const T* h, int64_t rows, int64_t cols, T* sums) {
  const int64_t row = warp_row(rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  T sum = 0;
  for (int64_t j = lane; j < cols; j += kWarpSize) sum += h[row * cols + j];
  sum = warp_sum(sum);
  if (lane == 0) sums[row] = sum;
}

// One thread per column: sums[j] = sum_i h[i, j], over the rows in order.
template <class T>
__global__ void col_sums_kernel(const T* h, int64_t rows, int64_t cols, T* sums) {
  const GridStride gs = grid_stride();
  for (int64_t j = gs.first; j < cols; j += gs.stride) {
    T sum = 0;
    for (int64_t i = 0; i < rows; ++i) sum += h[i * cols + j];
    sums[j] = sum;
  }
}

// dx[r] += 2 * sums[r] * x[r].
template <class T>
__global__ void add_scaled_rows_kernel(T* dx, const T* x, const T* sums, int64_t rows, int64_t dim) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < rows * dim; i += gs.stride) dx[i] += T(2) * sums[i / dim] * x[i];
}

// The better of two (value, column) candidates; column -1 is "none".
template <class T>
__device__ inline void keep_better(T& v, int64_t& i, T other_v, int64_t other_i, bool largest) {
  if (other_i >= 0 && (i < 0 || ranks_before(other_v, other_i, v, i, largest))) v = other_v, i = other_i;
}

// One block per row of scores (row stride ld); see similarity.h.
template <class T>
__global__ void topk_rows_kernel(const T* scores, int64_t ld, int64_t cols, int64_t k, bool largest, T* values,
                                 int64_t* indices) {
  __shared__ T warp_value[kWarpSize];
  __shared__ int64_t warp_index[kWarpSize];
  __shared__ T prev_value;
  __shared__ int64_t prev_index;
  const int64_t row = blockIdx.x;
  const T* x = scores + row * ld;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  for (int64_t r = 0; r < k; ++r) {
    // prev_* is written by thread 0 below and read after the barrier that ends each round.
    const T pv = r > 0 ? prev_value : T(0);
    const int64_t pi = r > 0 ? prev_index : -1;
    T v = T(0);
    int64_t i = -1;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const T xj = x[j];
      if (pi >= 0 && !ranks_before(pv, pi, xj, j, largest)) continue;  // taken already
      keep_better(v, i, xj, j, largest);
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      const T ov = __shfl_xor_sync(kFullMask, v, offset);
      const int64_t oi = __shfl_xor_sync(kFullMask, i, offset);
      keep_better(v, i, ov, oi, largest);
    }
    __syncthreads();  // the previous round's reads of warp_* and prev_* are done
    if (lane == 0) warp_value[warp] = v, warp_index[warp] = i;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < warps; ++w) keep_better(v, i, warp_value[w], warp_index[w], largest);
      values[row * k + r] = v;
      indices[row * k + r] = i;
      prev_value = v, prev_index = i;
    }
    __syncthreads();
  }
}

template <class T>
void launch_topk_rows(const T* scores, int64_t rows, int64_t ld, int64_t cols, int64_t k, bool largest, T* values,
                      int64_t* indices, const Exec& exec) {
  if (rows == 0) return;
  FASTNN_LAUNCH(static_cast<unsigned int>(rows), kTopkThreads, 0, exec.stream, topk_rows_kernel<T>)(
      scores, ld, cols, k, largest, values, indices);
  check_launch("topk_rows");
}

// The GEMM operands of a metric (cpu/similarity.h), in scratch memory.
template <class T>
struct Operands {
  const T* a = nullptr;
  const T* b = nullptr;
  T* norm_a = nullptr;  // cosine: inverse norms; sqeuclidean: squared norms
  T* norm_b = nullptr;
  GemmEpilogue<T> epilogue;
};

template <class T>
Operands<T> prepare(const T* a, const T* b, const SimilarityShape& s, const Exec& exec) {
  const int64_t N = s.rows_a, M = s.rows_b, D = s.dim;
  Operands<T> op;
  op.a = a, op.b = b;
  if (s.metric == Metric::dot) return op;
  const bool cosine = s.metric == Metric::cosine;
  op.norm_a = static_cast<T*>(exec.scratch(static_cast<size_t>(N + M) * sizeof(T), "similarity norms"));
  op.norm_b = op.norm_a + N;
  T* a_copy = static_cast<T*>(exec.scratch(static_cast<size_t>(N * D) * sizeof(T), "similarity operands"));
  T* b_copy = cosine ? static_cast<T*>(exec.scratch(static_cast<size_t>(M * D) * sizeof(T), "similarity operands"))
                     : nullptr;
  if (N > 0) {
    FASTNN_LAUNCH(row_blocks(N), kRowThreads, 0, exec.stream, row_norms_kernel<T>)(a, N, D, s.metric, op.norm_a,
                                                                                         a_copy);
    check_launch("row_norms");
  }
  FASTNN_LAUNCH(row_blocks(M), kRowThreads, 0, exec.stream, row_norms_kernel<T>)(b, M, D, s.metric, op.norm_b,
                                                                                       b_copy);
  check_launch("row_norms");
  op.a = a_copy;
  if (cosine) {
    op.b = b_copy;
  } else {
    op.epilogue.bias_per_row = op.norm_a;
    op.epilogue.bias_per_col = op.norm_b;
    op.epilogue.relu = true;
  }
  return op;
}

}  // namespace

template <class T>
void pairwise_similarity(const T* a, const T* b, T* out, const SimilarityShape& s, const Exec& exec) {
  if (s.rows_a == 0 || s.rows_b == 0) return;
  const Operands<T> op = prepare(a, b, s, exec);
  gemm(GemmShape::dense(s.rows_a, s.rows_b, s.dim, false, true), T(1), op.a, op.b, T(0), out, op.epilogue, exec);
}

template <class T>
void pairwise_similarity_backward(const T* grad, const T* a, const T* b, T* da, T* db,
                                  const SimilarityShape& s, const Exec& exec) {
  const int64_t N = s.rows_a, M = s.rows_b, D = s.dim;
  const GemmShape g_b = GemmShape::dense(N, D, M, false, false);  // (N, M) @ (M, D)
  const GemmShape gt_a = GemmShape::dense(M, D, N, true, false);  // (N, M)^T @ (N, D)
  // With N or M = 0 the GEMMs' K is 0: they write zeros, the gradient of an empty sum.
  if (s.metric == Metric::dot || N == 0 || M == 0) {
    gemm(g_b, T(1), grad, b, T(0), da, {}, exec);
    gemm(gt_a, T(1), grad, a, T(0), db, {}, exec);
    return;
  }
  const Operands<T> op = prepare(a, b, s, exec);
  if (s.metric == Metric::cosine) {
    gemm(g_b, T(1), grad, op.b, T(0), da, {}, exec);   // d a_hat
    gemm(gt_a, T(1), grad, op.a, T(0), db, {}, exec);  // d b_hat
    FASTNN_LAUNCH(row_blocks(N), kRowThreads, 0, exec.stream, normalize_backward_kernel<T>)(da, op.a, op.norm_a,
                                                                                                  N, D);
    check_launch("normalize_backward");
    FASTNN_LAUNCH(row_blocks(M), kRowThreads, 0, exec.stream, normalize_backward_kernel<T>)(db, op.b, op.norm_b,
                                                                                                  M, D);
    check_launch("normalize_backward");
    return;
  }
  // sqeuclidean: see cpu/similarity.h.
  T* h = static_cast<T*>(exec.scratch(static_cast<size_t>(N * M) * sizeof(T), "similarity backward"));
  T* sums = static_cast<T*>(exec.scratch(static_cast<size_t>(N + M) * sizeof(T), "similarity backward"));
  GemmEpilogue<T> unclamped = op.epilogue;
  unclamped.relu = false;
  gemm(GemmShape::dense(N, M, D, false, true), T(1), op.a, op.b, T(0), h, unclamped, exec);
  FASTNN_LAUNCH(blocks_for(N * M, kRowThreads), kRowThreads, 0, exec.stream, clamp_mask_kernel<T>)(h, grad, N * M);
  check_launch("clamp_mask");
  FASTNN_LAUNCH(row_blocks(N), kRowThreads, 0, exec.stream, row_sums_kernel<T>)(h, N, M, sums);
  check_launch("row_sums");
  FASTNN_LAUNCH(blocks_for(M, kRowThreads), kRowThreads, 0, exec.stream, col_sums_kernel<T>)(h, N, M, sums + N);
  check_launch("col_sums");
  gemm(g_b, T(-2), h, b, T(0), da, {}, exec);
  gemm(gt_a, T(-2), h, a, T(0), db, {}, exec);
  FASTNN_LAUNCH(blocks_for(N * D, kRowThreads), kRowThreads, 0, exec.stream, add_scaled_rows_kernel<T>)(da, a, sums, N, D);
  check_launch("add_scaled_rows");
  FASTNN_LAUNCH(blocks_for(M * D, kRowThreads), kRowThreads, 0, exec.stream, add_scaled_rows_kernel<T>)(db, b, sums + N,
                                                                                                         M, D);
  check_launch("add_scaled_rows");
}

template <class T>
void topk(const T* scores, T* values, int64_t* indices, const TopKShape& s, const Exec& exec) {
  launch_topk_rows(scores, s.rows, s.cols, s.cols, s.k, s.largest, values, indices, exec);
}

template <class T>
void similarity_topk_chunked(const T* query, const T* gallery, T* values, int64_t* indices,
                             const SimilarityShape& s, const TopKShape& t, int64_t chunk_bytes,
                             const Exec& exec) {
  const int64_t N = s.rows_a, M = s.rows_b, D = s.dim;
  if (N == 0) return;
  const Operands<T> op = prepare(query, gallery, s, exec);
  const int64_t chunk_rows = std::clamp<int64_t>(chunk_bytes / (M * static_cast<int64_t>(sizeof(T))), 1, N);
  // One scratch block for every chunk: work on one stream runs in order, so a chunk's GEMM
  // starts after the previous chunk's selection has read the block.
  T* block = static_cast<T*>(exec.scratch(static_cast<size_t>(chunk_rows * M) * sizeof(T), "similarity_topk"));
  for (int64_t i0 = 0; i0 < N; i0 += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, N - i0);
    GemmEpilogue<T> epilogue = op.epilogue;
    if (epilogue.bias_per_row) epilogue.bias_per_row += i0;
    gemm(GemmShape::dense(rows, M, D, false, true), T(1), op.a + i0 * D, op.b, T(0), block, epilogue, exec);
    launch_topk_rows(static_cast<const T*>(block), rows, M, M, t.k, t.largest, values + i0 * t.k,
                     indices + i0 * t.k, exec);
  }
}

template <class T>
void similarity_topk(const T* query, const T* gallery, T* values, int64_t* indices,
                     const SimilarityShape& s, const TopKShape& t, const Exec& exec) {
  similarity_topk_chunked(query, gallery, values, indices, s, t, kSimilarityChunkBytes, exec);
}

#define FASTNN_SIMILARITY_INSTANTIATE(T)                                                                       \
  template void pairwise_similarity<T>(const T*, const T*, T*, const SimilarityShape&, const Exec&);           \
  template void pairwise_similarity_backward<T>(const T*, const T*, const T*, T*, T*, const SimilarityShape&,  \
                                                const Exec&);                                                  \
  template void topk<T>(const T*, T*, int64_t*, const TopKShape&, const Exec&);                                \
  template void similarity_topk<T>(const T*, const T*, T*, int64_t*, const SimilarityShape&, const TopKShape&, \
                                   const Exec&);                                                               \
  template void similarity_topk_chunked<T>(const T*, const T*, T*, int64_t*, const SimilarityShape&,           \
                                           const TopKShape&, int64_t, const Exec&);
FASTNN_SIMILARITY_INSTANTIATE(float)
FASTNN_SIMILARITY_INSTANTIATE(double)
#undef FASTNN_SIMILARITY_INSTANTIATE

}  // namespace fastnn::cuda
