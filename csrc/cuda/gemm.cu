// Exact (CUDA-core) GEMM, the plan that picks a tile shape and split-K, and the dispatch between
// it and the TF32 kernel; see gemm.h for the contract, gemm_exact.cuh for the kernel (threads
// load A and B so that neighbouring threads read neighbouring addresses whatever the transposes;
// a slice that crosses the matrix edge is zero-filled) and gemm_tiles.cuh for the tiled main
// loop (shared-memory double buffering, register blocking).
#include "cuda/gemm.h"

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "cuda/gemm_exact.cuh"

namespace fastnn::cuda {

namespace {
std::atomic<int> g_precision{static_cast<int>(MatmulPrecision::highest)};
}  // namespace

void set_matmul_precision(MatmulPrecision precision) {
  g_precision.store(static_cast<int>(precision), std::memory_order_relaxed);
}

MatmulPrecision matmul_precision() {
  return static_cast<MatmulPrecision>(g_precision.load(std::memory_order_relaxed));
}

namespace detail {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T, Tile TILE, bool TA, bool TB>
void launch_exact(GemmParams<T> p, const Exec& exec) {
  using C = ExactConfig<T, TILE>;
  const int64_t tiles = ceil_div(p.M, C::BM) * ceil_div(p.N, C::BN);
  p.tiles_m = static_cast<int>(ceil_div(p.M, C::BM));
  p.tiles_n = static_cast<int>(ceil_div(p.N, C::BN));
  const int splits = plan_split_k(p, tiles, C::BK, exec);
  const dim3 grid(static_cast<unsigned>(tiles), 1, static_cast<unsigned>(splits));
  constexpr int threads = (C::BM / C::TM) * (C::BN / C::TN);
  FASTNN_LAUNCH(grid, threads, 0, exec.stream,
                gemm_exact_kernel<T, C::BM, C::BN, C::BK, C::TM, C::TN, TA, TB>)(p);
  check_launch("gemm_exact");
  if (splits > 1) reduce_splits(p, splits, exec);
}

template <class T, Tile TILE>
void launch_exact(const GemmParams<T>& p, bool ta, bool tb, const Exec& exec) {
  if (ta) {
    if (tb) launch_exact<T, TILE, true, true>(p, exec);
    else launch_exact<T, TILE, true, false>(p, exec);
  } else {
    if (tb) launch_exact<T, TILE, false, true>(p, exec);
    else launch_exact<T, TILE, false, false>(p, exec);
  }
}

bool aligned16(const void* ptr, int64_t ld, size_t elem) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && (ld * static_cast<int64_t>(elem)) % 16 == 0;
}

}  // namespace

template <class T>
int plan_split_k(GemmParams<T>& p, int64_t tiles, int bk, const Exec& exec) {
  // Too few tiles to occupy every multiprocessor twice, and K deep enough to share out: split K
  // so that each split still runs >= 4 slices. Scratch is bounded to 64 MiB.
  const int64_t sms = multiprocessor_count();
  const int64_t k_slices = ceil_div(p.K, bk);
  int64_t splits = 1;
  if (tiles < 2 * sms && k_slices >= 8) {
    splits = std::min<int64_t>({ceil_div(2 * sms, tiles), k_slices / 4, 32});
    const int64_t per_split_bytes = p.M * p.N * static_cast<int64_t>(sizeof(T));
    splits = std::max<int64_t>(1, std::min<int64_t>(splits, (int64_t(64) << 20) / std::max<int64_t>(per_split_bytes, 1)));
  }
  p.k_per_split = std::max<int64_t>(1, ceil_div(k_slices, splits)) * bk;
  splits = std::max<int64_t>(1, ceil_div(p.K, p.k_per_split));
  p.partial = splits > 1 ? static_cast<T*>(exec.scratch(splits * p.M * p.N * sizeof(T), "gemm split-K")) : nullptr;
  return static_cast<int>(splits);
}

template <class T>
void reduce_splits(const GemmParams<T>& p, int splits, const Exec& exec) {
  constexpr int threads = 256;
  FASTNN_LAUNCH(blocks_for(p.M * p.N, threads), threads, 0, exec.stream, gemm_reduce_splits_kernel<T>)(
      p, splits);
  check_launch("gemm_reduce_splits");
}

template int plan_split_k<float>(GemmParams<float>&, int64_t, int, const Exec&);
template int plan_split_k<double>(GemmParams<double>&, int64_t, int, const Exec&);
template void reduce_splits<float>(const GemmParams<float>&, int, const Exec&);
template void reduce_splits<double>(const GemmParams<double>&, int, const Exec&);

}  // namespace detail

template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c,
          const GemmEpilogue<T>& epilogue, const Exec& exec) {
  using namespace detail;
  if (s.M == 0 || s.N == 0) return;
  GemmParams<T> p{};
  p.a = a, p.b = b, p.c = c, p.partial = nullptr;
  p.bias_per_col = epilogue.bias_per_col, p.bias_per_row = epilogue.bias_per_row;
  p.relu = epilogue.relu;
  p.M = s.M, p.N = s.N, p.K = s.K, p.lda = s.lda, p.ldb = s.ldb, p.ldc = s.ldc;
  p.alpha = alpha, p.beta = beta;
  p.vec_a = aligned16(a, s.lda, sizeof(T));
  p.vec_b = aligned16(b, s.ldb, sizeof(T));
  if constexpr (std::is_same_v<T, float>) {
    if (matmul_precision() == MatmulPrecision::high && gemm_tf32(p, s.trans_a, s.trans_b, exec))
      return;
  }
  // float64 (gradient checks, small products) gets one tile shape: fewer kernels to compile.
  if constexpr (std::is_same_v<T, double>) {
    launch_exact<T, Tile::medium>(p, s.trans_a, s.trans_b, exec);
  } else {
    // The largest tile that still fills the GPU with blocks: large tiles reuse each loaded
    // element more, small tiles keep every multiprocessor busy on small products.
    const int64_t sms = multiprocessor_count();
    const auto tiles = [&](int bm, int bn) { return ceil_div(s.M, bm) * ceil_div(s.N, bn); };
    if (tiles(ExactConfig<T, Tile::large>::BM, ExactConfig<T, Tile::large>::BN) >= sms)
      launch_exact<T, Tile::large>(p, s.trans_a, s.trans_b, exec);
    else if (tiles(ExactConfig<T, Tile::medium>::BM, ExactConfig<T, Tile::medium>::BN) >= sms)
      launch_exact<T, Tile::medium>(p, s.trans_a, s.trans_b, exec);
    else
      launch_exact<T, Tile::small>(p, s.trans_a, s.trans_b, exec);
  }
}

template void gemm<float>(const GemmShape&, float, const float*, const float*, float, float*,
                          const GemmEpilogue<float>&, const Exec&);
template void gemm<double>(const GemmShape&, double, const double*, const double*, double, double*,
                           const GemmEpilogue<double>&, const Exec&);

}  // namespace fastnn::cuda
