// Implicit-GEMM convolution; see conv2d.h for the products and cpu/conv2d.h for the math.
// The kernels (conv2d_kernels.cuh) evaluate the im2col / col2im index maps of the CPU kernel per
// element as the tiled main loop fetches its operand tiles; this file picks tiles and launches.
#include "cuda/conv2d.h"

#include <algorithm>
#include <type_traits>

#include "cuda/band_sums.h"
#include "cuda/conv2d_kernels.cuh"

namespace fastnn::cuda {
namespace {

using conv_kernels::conv2d_backward_input_kernel;
using conv_kernels::conv2d_backward_weight_kernel;
using conv_kernels::conv2d_bias_kernel;
using conv_kernels::conv2d_forward_kernel;
using conv_kernels::ConvTile;
using conv_maps::ConvDims;
using detail::GemmParams;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs launch(Tile) with the tile shape for a product of `rows` rows of C (float64: 32 x 32
// only, to keep the number of compiled kernels down).
template <class T, class Launch>
void with_tile(int64_t rows, Launch&& launch) {
  if (std::is_same_v<T, double> || rows <= 32) launch(ConvTile<32>{});
  else launch(ConvTile<64>{});
}

bool aligned16(const void* ptr, int64_t ld, size_t elem) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && (ld * static_cast<int64_t>(elem)) % 16 == 0;
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                    bool relu, const Exec& exec) {
  const ConvDims d = ConvDims::of(s);
  if (d.N * d.P == 0) return;
  with_tile<T>(d.Og, [&](auto tile) {
    using Tile = decltype(tile);
    const int tm = static_cast<int>(ceil_div(d.Og, Tile::BM)), tn = static_cast<int>(ceil_div(d.N * d.P, Tile::BN));
    const bool vec = aligned16(weight, d.Kg, sizeof(T));
    for (int64_t g = 0; g < s.groups; ++g) {
      FASTNN_LAUNCH(static_cast<unsigned>(tm) * tn, Tile::THREADS, 0, exec.stream,
                    conv2d_forward_kernel<T, Tile>)(
          x, weight, bias, y, d, g, tm, tn, vec && aligned16(weight + g * d.Og * d.Kg, d.Kg, sizeof(T)),
          relu);
      check_launch("conv2d_forward");
    }
  });
}

template <class T>
void conv2d_backward_input(const T* dy, const T* weight, T* dx, const Conv2dShape& s, const Exec& exec) {
  const ConvDims d = ConvDims::of(s);
  if (d.N * d.HW == 0) return;
  with_tile<T>(d.Cg, [&](auto tile) {
    using Tile = decltype(tile);
    const int tm = static_cast<int>(ceil_div(d.Cg, Tile::BM)), tn = static_cast<int>(ceil_div(d.N * d.HW, Tile::BN));
    for (int64_t g = 0; g < s.groups; ++g) {
      FASTNN_LAUNCH(static_cast<unsigned>(tm) * tn, Tile::THREADS, 0, exec.stream,
                    conv2d_backward_input_kernel<T, Tile>)(
          dy, weight, dx, d, g, tm, tn);
      check_launch("conv2d_backward_input");
    }
  });
}

template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate, const Conv2dShape& s,
                            const Exec& exec) {
  const ConvDims d = ConvDims::of(s);
  with_tile<T>(d.Og, [&](auto tile) {
    using Tile = decltype(tile);
    for (int64_t g = 0; g < s.groups; ++g) {
      GemmParams<T> p{};
      p.c = dweight + g * d.Og * d.Kg;
      p.M = d.Og, p.N = d.Kg, p.K = d.N * d.P, p.ldc = d.Kg;
      p.alpha = T(1), p.beta = accumulate ? T(1) : T(0);
      p.tiles_m = static_cast<int>(ceil_div(d.Og, Tile::BM));
      p.tiles_n = static_cast<int>(ceil_div(d.Kg, Tile::BN));
      // The reduction runs over every output pixel of the batch: split it when the weight
      // gradient has too few tiles to fill the GPU (the usual case).
      const int splits = detail::plan_split_k(p, static_cast<int64_t>(p.tiles_m) * p.tiles_n, Tile::BK, exec);
      const dim3 grid(static_cast<unsigned>(p.tiles_m) * p.tiles_n, 1, static_cast<unsigned>(splits));
      FASTNN_LAUNCH(grid, Tile::THREADS, 0, exec.stream, conv2d_backward_weight_kernel<T, Tile>)(
          dy, x, p, d, g);
      check_launch("conv2d_backward_weight");
      if (splits > 1) detail::reduce_splits(p, splits, exec);
    }
  });
}

template <class T>
void conv2d_backward_bias(const T* dy, T* dbias, bool accumulate, const Conv2dShape& s, const Exec& exec) {
  const ConvDims d = ConvDims::of(s);
  if (d.Cout == 0) return;
  const T* prior = accumulate ? dbias : nullptr;
  const int64_t wanted = reduction_bands(d.N, d.Cout, 1);
  const int64_t band_images = std::max<int64_t>(1, ceil_div(d.N, wanted));
  const int64_t bands = std::max<int64_t>(1, ceil_div(d.N, band_images));
  constexpr int threads = 256;
  if (bands == 1) {
    FASTNN_LAUNCH(dim3(d.Cout, 1), threads, 0, exec.stream, conv2d_bias_kernel<T>)(
        dy, d, band_images, prior, dbias);
    check_launch("conv2d_backward_bias");
    return;
  }
  T* band_sums = static_cast<T*>(exec.scratch(bands * d.Cout * sizeof(T), "conv2d_backward_bias"));
  FASTNN_LAUNCH(dim3(d.Cout, bands), threads, 0, exec.stream, conv2d_bias_kernel<T>)(
      dy, d, band_images, nullptr, band_sums);
  check_launch("conv2d_backward_bias");
  add_band_sums(band_sums, bands, d.Cout, prior, dbias, exec);
}

#define FASTNN_INSTANTIATE(T)                                                                          \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, bool, const Exec&);   \
  template void conv2d_backward_input<T>(const T*, const T*, T*, const Conv2dShape&, const Exec&);      \
  template void conv2d_backward_weight<T>(const T*, const T*, T*, bool, const Conv2dShape&, const Exec&); \
  template void conv2d_backward_bias<T>(const T*, T*, bool, const Conv2dShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cuda
