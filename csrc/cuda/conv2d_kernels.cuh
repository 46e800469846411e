// The implicit-GEMM convolution kernels launched by conv2d.cu (see conv2d.h for the products and
// conv2d_maps.cuh for the gathers): each block computes one tile of C = A @ B through the tiled
// main loop of gemm_tiles.cuh, its operands fetched by gather functors, and writes it through the
// maps' output addresses. Kept apart from the launchers (which use <<<>>>) so that
// tests/cuda_host can compile these very kernels as host code and run whole launches.
#pragma once

#include <cstdint>

#include "cuda/conv2d_maps.cuh"
#include "cuda/device.cuh"
#include "cuda/gemm_kernel.cuh"
#include "cuda/gemm_tiles.cuh"

namespace fastnn::cuda::conv_kernels {

using conv_maps::Columns;
using conv_maps::ConvDims;
using conv_maps::GradOutRows;
using conv_maps::GradOutTaps;
using conv_maps::WeightTransposed;
using detail::DenseOperand;
using detail::GatherOperand;
using detail::GemmParams;
using detail::ThreadTile;

// Tile shapes: channel counts are small (6..512), so 32 x 32 tiles (64 threads) when a group
// has at most 32 rows of C, else 64 x 64 (256 threads); BK = 16, 4 x 4 per thread.
template <int BM_>
struct ConvTile {
  static constexpr int BM = BM_, BN = BM_, BK = 16, TM = 4, TN = 4;
  static constexpr int THREADS = (BM / TM) * (BN / TN);
};

__device__ inline void tile_origin(int tiles_m, int tiles_n, int bm, int bn, int64_t* m0, int64_t* n0) {
  int tm, tn;
  detail::tile_of_block(tiles_m, tiles_n, &tm, &tn);
  *m0 = static_cast<int64_t>(tm) * bm, *n0 = static_cast<int64_t>(tn) * bn;
}

template <class T, class Tile>
__global__ void __launch_bounds__(Tile::THREADS)
conv2d_forward_kernel(const T* x, const T* weight, const T* bias, T* y, ConvDims d, int64_t g,
                      int tiles_m, int tiles_n, bool vec_weight, bool relu) {
  int64_t m0, n0;  // output channel within the group, output pixel over the batch
  tile_origin(tiles_m, tiles_n, Tile::BM, Tile::BN, &m0, &n0);
  DenseOperand<T, Tile::BM, Tile::BK, Tile::THREADS, false> a(weight + g * d.Og * d.Kg, d.Kg, m0, d.Og,
                                                              0, d.Kg, vec_weight);
  GatherOperand<T, Tile::BN, Tile::BK, Tile::THREADS, false, Columns<T, true>> b({x, d, g}, n0, d.N * d.P,
                                                                                 0, d.Kg);
  T acc[Tile::TM][Tile::TN];
  detail::tiled_mainloop<T, Tile::BM, Tile::BN, Tile::BK, Tile::TM, Tile::TN>(a, b, (d.Kg + Tile::BK - 1) / Tile::BK,
                                                                              acc);
  using TT = ThreadTile<Tile::BM, Tile::BN, Tile::TM, Tile::TN>;
#pragma unroll
  for (int i = 0; i < Tile::TM; ++i) {
    const int64_t o = m0 + TT::row(i);
    if (o >= d.Og) continue;
    const T b0 = bias ? bias[g * d.Og + o] : T(0);
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) {
      const int64_t pix = n0 + TT::col(j);
      if (pix >= d.N * d.P) continue;
      const T v = acc[i][j] + b0;
      // v < 0 is false for NaN: NaN stays NaN, as in the CPU epilogue.
      y[conv_maps::output_index(d, g, o, pix)] = relu && v < T(0) ? T(0) : v;
    }
  }
}

template <class T, class Tile>
__global__ void __launch_bounds__(Tile::THREADS)
conv2d_backward_input_kernel(const T* dy, const T* weight, T* dx, ConvDims d, int64_t g, int tiles_m,
                             int tiles_n) {
  int64_t m0, n0;  // input channel within the group, input pixel over the batch
  tile_origin(tiles_m, tiles_n, Tile::BM, Tile::BN, &m0, &n0);
  const int64_t K = d.Og * d.KK;
  GatherOperand<T, Tile::BM, Tile::BK, Tile::THREADS, true, WeightTransposed<T>> a({weight, d, g}, m0, d.Cg, 0, K);
  GatherOperand<T, Tile::BN, Tile::BK, Tile::THREADS, false, GradOutTaps<T>> b({dy, d, g}, n0, d.N * d.HW, 0, K);
  T acc[Tile::TM][Tile::TN];
  detail::tiled_mainloop<T, Tile::BM, Tile::BN, Tile::BK, Tile::TM, Tile::TN>(a, b, (K + Tile::BK - 1) / Tile::BK, acc);
  using TT = ThreadTile<Tile::BM, Tile::BN, Tile::TM, Tile::TN>;
#pragma unroll
  for (int i = 0; i < Tile::TM; ++i) {
    const int64_t c = m0 + TT::row(i);
    if (c >= d.Cg) continue;
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) {
      const int64_t pix = n0 + TT::col(j);
      if (pix >= d.N * d.HW) continue;
      dx[conv_maps::input_index(d, g, c, pix)] = acc[i][j];
    }
  }
}

// C = dweight[g] (Og, Kg), dense: the GEMM epilogue (split-K partials, beta = accumulate).
template <class T, class Tile>
__global__ void __launch_bounds__(Tile::THREADS)
conv2d_backward_weight_kernel(const T* dy, const T* x, GemmParams<T> p, ConvDims d, int64_t g) {
  int64_t m0, n0;  // output channel within the group, column-matrix row kk
  tile_origin(p.tiles_m, p.tiles_n, Tile::BM, Tile::BN, &m0, &n0);
  int64_t k_begin, k_end;  // output pixels over the batch
  detail::split_range(p, &k_begin, &k_end);
  GatherOperand<T, Tile::BM, Tile::BK, Tile::THREADS, true, GradOutRows<T>> a({dy, d, g}, m0, d.Og, k_begin, k_end);
  GatherOperand<T, Tile::BN, Tile::BK, Tile::THREADS, true, Columns<T, false>> b({x, d, g}, n0, d.Kg, k_begin,
                                                                                 k_end);
  T acc[Tile::TM][Tile::TN];
  detail::tiled_mainloop<T, Tile::BM, Tile::BN, Tile::BK, Tile::TM, Tile::TN>(
      a, b, (k_end - k_begin + Tile::BK - 1) / Tile::BK, acc);
  using TT = ThreadTile<Tile::BM, Tile::BN, Tile::TM, Tile::TN>;
#pragma unroll
  for (int i = 0; i < Tile::TM; ++i)
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) detail::gemm_store(p, m0 + TT::row(i), n0 + TT::col(j), acc[i][j]);
}

// One block per (output channel, band of images): the band's sum over images and pixels, in
// order within each thread, then the block's fixed tree.
template <class T>
__global__ void conv2d_bias_kernel(const T* dy, ConvDims d, int64_t band_images, const T* prior, T* out) {
  __shared__ T shared[kWarpSize];
  const int64_t o = blockIdx.x, band = blockIdx.y;
  const int64_t n0 = band * band_images, n1 = min(d.N, n0 + band_images);
  T sum = T(0);
  for (int64_t n = n0; n < n1; ++n) {
    const T* plane = dy + (n * d.Cout + o) * d.P;
    for (int64_t ij = threadIdx.x; ij < d.P; ij += blockDim.x) sum += plane[ij];
  }
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) out[band * d.Cout + o] = sum + (prior ? prior[o] : T(0));
}

}  // namespace fastnn::cuda::conv_kernels
