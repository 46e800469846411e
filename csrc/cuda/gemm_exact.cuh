// The exact (CUDA-core) GEMM kernel and the split-K reduction that gemm.cu launches (and the
// convolution's weight gradient reuses), with the tile shapes it is instantiated for. Kept apart
// from the launchers (which use <<<>>>) so that tests/cuda_host can compile these very kernels as
// host code and run whole launches.
#pragma once

#include <cstdint>

#include "cuda/device.cuh"
#include "cuda/gemm_kernel.cuh"
#include "cuda/gemm_tiles.cuh"

namespace fastnn::cuda::detail {

// Two float blocks per multiprocessor cap registers at 128 per thread (64 accumulators plus
// fragments and prefetch); double accumulators need the whole register file of one block.
template <class T, int BM, int BN, int BK, int TM, int TN, bool TA, bool TB>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), sizeof(T) == 4 ? 2 : 1)
gemm_exact_kernel(GemmParams<T> p) {
  constexpr int THREADS = (BM / TM) * (BN / TN);
  int tile_m, tile_n;
  tile_of_block(p.tiles_m, p.tiles_n, &tile_m, &tile_n);
  const int64_t m0 = static_cast<int64_t>(tile_m) * BM, n0 = static_cast<int64_t>(tile_n) * BN;
  int64_t k_begin, k_end;
  split_range(p, &k_begin, &k_end);
  // A is stored (M, K) unless TA, (K, M) if TA; B is stored (K, N) unless TB, (N, K) if TB.
  DenseOperand<T, BM, BK, THREADS, TA> a(p.a, p.lda, m0, p.M, k_begin, k_end, p.vec_a);
  DenseOperand<T, BN, BK, THREADS, !TB> b(p.b, p.ldb, n0, p.N, k_begin, k_end, p.vec_b);
  T acc[TM][TN];
  tiled_mainloop<T, BM, BN, BK, TM, TN>(a, b, (k_end - k_begin + BK - 1) / BK, acc);
  using TT = ThreadTile<BM, BN, TM, TN>;
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) gemm_store(p, m0 + TT::row(i), n0 + TT::col(j), acc[i][j]);
}

// C = the epilogue of (sum over splits of partial, in split order).
template <class T>
__global__ void gemm_reduce_splits_kernel(GemmParams<T> p, int splits) {
  const int64_t total = p.M * p.N;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < total; i += gs.stride) {
    T v = T(0);
    for (int z = 0; z < splits; ++z) v += p.partial[z * total + i];
    gemm_finish(p, i / p.N, i % p.N, v);
  }
}

// The three exact tile shapes: large products get 128 x 128 tiles (8 x 8 per thread), smaller
// ones smaller tiles so that the grid still covers every multiprocessor.
enum class Tile { large, medium, small };

template <class T, Tile TILE>
struct ExactConfig;
template <class T>
struct ExactConfig<T, Tile::large> {
  static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
};
template <class T>
struct ExactConfig<T, Tile::medium> {
  static constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
};
template <class T>
struct ExactConfig<T, Tile::small> {
  static constexpr int BM = 32, BN = 32, BK = 16, TM = 4, TN = 4;
};

}  // namespace fastnn::cuda::detail
