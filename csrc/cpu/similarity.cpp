// Pairwise similarity, its backward, top-k and blocked similarity top-k; see similarity.h.
#include "cpu/similarity.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/threading.h"
#include "cpu/gemm.h"

namespace fastnn::cpu {
namespace {

// Selection keeps a sorted buffer and inserts into it up to this k; above it a row is partially
// sorted (O(cols log k) rather than O(cols k) for a long buffer).
constexpr int64_t kInsertionMaxK = 32;
// similarity_topk's tiles: query rows per block, gallery columns per tile (a 64 x 1024 float32
// tile is 256 KiB: it stays in a 512 KiB L2 between the GEMM that writes it and the selection
// that reads it).
constexpr int64_t kQueryRows = 64;
constexpr int64_t kGalleryColumns = 1024;

// The GEMM operands of a metric (see similarity.h): A' and B' (the inputs themselves, or scaled
// copies) and the epilogue; inv_norm_* keeps 1 / max(|x|, eps) per row for cosine's backward.
template <class T>
struct Operands {
  const T* a = nullptr;
  const T* b = nullptr;
  std::vector<T> a_copy, b_copy, sq_norm_a, sq_norm_b, inv_norm_a, inv_norm_b;
  GemmEpilogue<T> epilogue;
};

// |x_r|^2 per row, summed in double.
template <class T>
void row_sq_norms(const T* x, int64_t rows, int64_t dim, std::vector<T>& out) {
  out.resize(static_cast<size_t>(rows));
#pragma omp parallel for num_threads(threads_for(rows * dim)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t d = 0; d < dim; ++d) sum += static_cast<double>(x[r * dim + d]) * x[r * dim + d];
    out[r] = static_cast<T>(sum);
  }
}

// copy[r] = x[r] * scale[r].
template <class T>
void scale_rows(const T* x, int64_t rows, int64_t dim, const std::vector<T>& scale, std::vector<T>& copy) {
  copy.resize(static_cast<size_t>(rows * dim));
#pragma omp parallel for num_threads(threads_for(rows * dim)) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < dim; ++d) copy[r * dim + d] = x[r * dim + d] * scale[r];
}

// 1 / max(|x|, eps), and the value it takes where the norm is clamped (the same expression, so
// the backward can tell the two cases apart exactly).
template <class T>
T clamped_inverse_norm() {
  return T(1) / static_cast<T>(kCosineEps);
}

template <class T>
void inverse_norms(const T* x, int64_t rows, int64_t dim, std::vector<T>& inv) {
  row_sq_norms(x, rows, dim, inv);
  for (T& v : inv) {
    const T norm = static_cast<T>(std::sqrt(static_cast<double>(v)));
    v = norm > static_cast<T>(kCosineEps) ? T(1) / norm : clamped_inverse_norm<T>();
  }
}

template <class T>
void prepare(const T* a, const T* b, const SimilarityShape& s, Operands<T>& op) {
  const int64_t N = s.rows_a, M = s.rows_b, D = s.dim;
  op.a = a, op.b = b;
  if (s.metric == Metric::cosine) {
    inverse_norms(a, N, D, op.inv_norm_a);
    inverse_norms(b, M, D, op.inv_norm_b);
    scale_rows(a, N, D, op.inv_norm_a, op.a_copy);
    scale_rows(b, M, D, op.inv_norm_b, op.b_copy);
    op.a = op.a_copy.data(), op.b = op.b_copy.data();
  } else if (s.metric == Metric::sqeuclidean) {
    row_sq_norms(a, N, D, op.sq_norm_a);
    row_sq_norms(b, M, D, op.sq_norm_b);
    scale_rows(a, N, D, std::vector<T>(static_cast<size_t>(N), T(-2)), op.a_copy);
    op.a = op.a_copy.data();
    op.epilogue.bias_per_row = op.sq_norm_a.data();
    op.epilogue.bias_per_col = op.sq_norm_b.data();
    op.epilogue.relu = true;
  }
}

// ---- selection ----------------------------------------------------------------------------

// The k best of a row offered in increasing column order (possibly in several pieces), kept
// sorted best first. A value equal to the current k-th never displaces it (it comes later, so
// ranks after it), which lets a whole run of 16 values be skipped with one vectorised test.
template <class T>
class RowSelector {
 public:
  RowSelector(int64_t k, bool largest) : k_(k), largest_(largest), values_(k), indices_(k) {}

  void reset() { filled_ = 0; }

  void offer(const T* x, int64_t count, int64_t col0) {
    int64_t j = 0;
    for (; filled_ < k_ && j < count; ++j) insert(x[j], col0 + j);
    constexpr int64_t kRun = 16;
    for (; j + kRun <= count; j += kRun) {
      const T worst = values_[k_ - 1];
      bool any = false;
      // "Not worse-or-equal", so NaN (ranked best when largest) takes the exact path too.
      if (largest_) {
        for (int64_t t = 0; t < kRun; ++t) any |= !(x[j + t] <= worst);
      } else {
        for (int64_t t = 0; t < kRun; ++t) any |= !(x[j + t] >= worst);
      }
      if (any)
        for (int64_t t = 0; t < kRun; ++t) consider(x[j + t], col0 + j + t);
    }
    for (; j < count; ++j) consider(x[j], col0 + j);
  }

  void write(T* values, int64_t* indices) const {
    std::copy(values_.begin(), values_.end(), values);
    std::copy(indices_.begin(), indices_.end(), indices);
  }

 private:
  void consider(T v, int64_t index) {
    if (ranks_before(v, index, values_[k_ - 1], indices_[k_ - 1], largest_)) {
      --filled_;
      insert(v, index);
    }
  }
  void insert(T v, int64_t index) {
    int64_t p = filled_++;
    for (; p > 0 && ranks_before(v, index, values_[p - 1], indices_[p - 1], largest_); --p) {
      values_[p] = values_[p - 1];
      indices_[p] = indices_[p - 1];
    }
    values_[p] = v;
    indices_[p] = index;
  }

  int64_t k_, filled_ = 0;
  bool largest_;
  std::vector<T> values_;
  std::vector<int64_t> indices_;
};

// The k best of one whole row by partial sort (for large k); `order` is scratch.
template <class T>
void select_sorted(const T* x, int64_t cols, int64_t k, bool largest, T* values, int64_t* indices,
                   std::vector<int64_t>& order) {
  order.resize(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t i, int64_t j) {
    return ranks_before(x[i], i, x[j], j, largest);
  });
  for (int64_t r = 0; r < k; ++r) {
    indices[r] = order[r];
    values[r] = x[order[r]];
  }
}

}  // namespace

template <class T>
void pairwise_similarity(const T* a, const T* b, T* out, const SimilarityShape& s, const Exec&) {
  Operands<T> op;
  prepare(a, b, s, op);
  gemm(GemmShape::dense(s.rows_a, s.rows_b, s.dim, false, true), T(1), op.a, op.b, T(0), out,
       op.epilogue);
}

template <class T>
void pairwise_similarity_backward(const T* grad, const T* a, const T* b, T* da, T* db,
                                  const SimilarityShape& s, const Exec&) {
  const int64_t N = s.rows_a, M = s.rows_b, D = s.dim;
  Operands<T> op;
  prepare(a, b, s, op);
  const GemmShape g_b = GemmShape::dense(N, D, M, false, false);   // (N, M) @ (M, D)
  const GemmShape gt_a = GemmShape::dense(M, D, N, true, false);   // (N, M)^T @ (N, D)
  if (s.metric == Metric::dot) {
    gemm(g_b, T(1), grad, b, T(0), da);
    gemm(gt_a, T(1), grad, a, T(0), db);
    return;
  }
  if (s.metric == Metric::cosine) {
    gemm(g_b, T(1), grad, op.b, T(0), da);    // d a_hat
    gemm(gt_a, T(1), grad, op.a, T(0), db);   // d b_hat
    auto through_normalize = [D](T* dx, const T* x_hat, const std::vector<T>& inv_norm, int64_t rows) {
      const T clamp_inv = clamped_inverse_norm<T>();
#pragma omp parallel for num_threads(threads_for(rows * D)) schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        T* g = dx + r * D;
        const T* xh = x_hat + r * D;
        T dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += xh[d] * g[d];
        const bool clamped = inv_norm[r] == clamp_inv;
        for (int64_t d = 0; d < D; ++d) g[d] = normalize_backward(g[d], xh[d], dot, inv_norm[r], clamped);
      }
    };
    through_normalize(da, op.a, op.inv_norm_a, N);
    through_normalize(db, op.b, op.inv_norm_b, M);
    return;
  }
  // sqeuclidean: the unclamped distances (the forward's operands, without the ReLU) pick where
  // the gradient passes.
  std::vector<T> masked(static_cast<size_t>(N * M));
  GemmEpilogue<T> unclamped = op.epilogue;
  unclamped.relu = false;
  gemm(GemmShape::dense(N, M, D, false, true), T(1), op.a, op.b, T(0), masked.data(), unclamped);
  std::vector<T> row_sum(static_cast<size_t>(N)), col_sum(static_cast<size_t>(M), T(0));
  const int nt = threads_for(N * M);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    T sum = 0;
    for (int64_t j = 0; j < M; ++j) {
      T& h = masked[i * M + j];
      h = h > T(0) ? grad[i * M + j] : T(0);
      sum += h;
    }
    row_sum[i] = sum;
  }
  // Column sums by column blocks, each summed over the rows in order.
  constexpr int64_t kCols = 256;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t j0 = 0; j0 < M; j0 += kCols) {
    const int64_t j1 = std::min(M, j0 + kCols);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = j0; j < j1; ++j) col_sum[j] += masked[i * M + j];
  }
  gemm(g_b, T(-2), masked.data(), b, T(0), da);
  gemm(gt_a, T(-2), masked.data(), a, T(0), db);
  auto add_scaled_rows = [D](T* dx, const T* x, const std::vector<T>& sums, int64_t rows) {
#pragma omp parallel for num_threads(threads_for(rows * D)) schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t d = 0; d < D; ++d) dx[r * D + d] += T(2) * sums[r] * x[r * D + d];
  };
  add_scaled_rows(da, a, row_sum, N);
  add_scaled_rows(db, b, col_sum, M);
}

template <class T>
void topk(const T* scores, T* values, int64_t* indices, const TopKShape& s, const Exec&) {
  const int nt = threads_for(s.rows * s.cols, int64_t{1} << 15);
#pragma omp parallel num_threads(nt)
  {
    RowSelector<T> selector(std::min(s.k, kInsertionMaxK), s.largest);
    std::vector<int64_t> order;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < s.rows; ++r) {
      const T* row = scores + r * s.cols;
      if (s.k > kInsertionMaxK) {
        select_sorted(row, s.cols, s.k, s.largest, values + r * s.k, indices + r * s.k, order);
      } else {
        selector.reset();
        selector.offer(row, s.cols, 0);
        selector.write(values + r * s.k, indices + r * s.k);
      }
    }
  }
}

template <class T>
void similarity_topk(const T* query, const T* gallery, T* values, int64_t* indices,
                     const SimilarityShape& s, const TopKShape& t, const Exec&) {
  const int64_t N = s.rows_a, M = s.rows_b, D = s.dim;
  if (N == 0) return;
  Operands<T> op;
  prepare(query, gallery, s, op);
  // Large k needs whole rows: one tile as wide as the gallery, fewer rows per block.
  const bool insertion = t.k <= kInsertionMaxK;
  const int64_t tile_cols = insertion ? std::min(M, kGalleryColumns) : M;
  const int64_t block_rows =
      insertion ? kQueryRows : std::clamp<int64_t>((int64_t{1} << 20) / M, 1, kQueryRows);
  // The gallery's column tiles packed once for the GEMM (together the size of the gallery).
  const int64_t n_tiles = (M + tile_cols - 1) / tile_cols;
  std::vector<int64_t> packed_offset(static_cast<size_t>(n_tiles) + 1, 0);
  for (int64_t q = 0; q < n_tiles; ++q) {
    const int64_t width = std::min(tile_cols, M - q * tile_cols);
    packed_offset[q + 1] = packed_offset[q] + gemm_packed_b_size<T>(D, width);
  }
  std::vector<T> packed(static_cast<size_t>(packed_offset[n_tiles]));
#pragma omp parallel for num_threads(threads_for(M * D)) schedule(static)
  for (int64_t q = 0; q < n_tiles; ++q) {
    const int64_t j0 = q * tile_cols, width = std::min(tile_cols, M - j0);
    gemm_pack_b(D, width, op.b + j0 * D, true, D, packed.data() + packed_offset[q]);
  }
  const int64_t n_blocks = (N + block_rows - 1) / block_rows;
  const int nt = static_cast<int>(std::min<int64_t>(threads_for(N * M * D, int64_t{1} << 20), n_blocks));
#pragma omp parallel num_threads(nt)
  {
    std::vector<T> tile(static_cast<size_t>(block_rows * tile_cols));
    std::vector<RowSelector<T>> selectors(static_cast<size_t>(block_rows), RowSelector<T>(std::min(t.k, kInsertionMaxK), t.largest));
    std::vector<int64_t> order;
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t i0 = blk * block_rows, rows = std::min(block_rows, N - i0);
      for (int64_t r = 0; r < rows; ++r) selectors[r].reset();
      for (int64_t q = 0; q < n_tiles; ++q) {
        const int64_t j0 = q * tile_cols, width = std::min(tile_cols, M - j0);
        GemmShape g = GemmShape::dense(rows, width, D, false, true);
        g.ldc = tile_cols;
        GemmEpilogue<T> epilogue = op.epilogue;
        if (epilogue.bias_per_row) epilogue.bias_per_row += i0;
        if (epilogue.bias_per_col) epilogue.bias_per_col += j0;
        gemm_with_packed_b(g, op.a + i0 * D, packed.data() + packed_offset[q], T(0), tile.data(), epilogue,
                           GemmThreads::caller);
        for (int64_t r = 0; r < rows; ++r) {
          const T* row = tile.data() + r * tile_cols;
          if (insertion)
            selectors[r].offer(row, width, j0);
          else
            select_sorted(row, M, t.k, t.largest, values + (i0 + r) * t.k, indices + (i0 + r) * t.k, order);
        }
      }
      if (insertion)
        for (int64_t r = 0; r < rows; ++r) selectors[r].write(values + (i0 + r) * t.k, indices + (i0 + r) * t.k);
    }
  }
}

#define FASTNN_SIMILARITY_INSTANTIATE(T)                                                                    \
  template void pairwise_similarity<T>(const T*, const T*, T*, const SimilarityShape&, const Exec&);        \
  template void pairwise_similarity_backward<T>(const T*, const T*, const T*, T*, T*,                       \
                                                const SimilarityShape&, const Exec&);                       \
  template void topk<T>(const T*, T*, int64_t*, const TopKShape&, const Exec&);                             \
  template void similarity_topk<T>(const T*, const T*, T*, int64_t*, const SimilarityShape&, const TopKShape&, \
                                   const Exec&);
FASTNN_SIMILARITY_INSTANTIATE(float)
FASTNN_SIMILARITY_INSTANTIATE(double)
#undef FASTNN_SIMILARITY_INSTANTIATE

}  // namespace fastnn::cpu
