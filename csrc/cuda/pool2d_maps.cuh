// The index maps and per-element loops of the pooling kernels (pool2d.cu), host and device code
// alike, so tests/cuda_host/pool2d_maps.cpp checks them on the CPU against direct loops over the
// definition and the scatter loops of cpu/pool2d.cpp.
//
// Forward reads each output's window (window_at, the CPU's rule; max_in_window, window_sum). Backward runs one thread per
// input element and *gathers* from the outputs whose windows cover it (covering_outputs), in
// output order — the order in which the CPU's scatter adds into that element — so the GPU's dx
// equals the CPU's bit for bit, with no atomics:
//   output row oh covers input row h  <=>  oh * stride - pad <= h <= oh * stride - pad + kernel - 1
//                                      <=>  ceil((h + pad - kernel + 1) / stride) <= oh <= floor((h + pad) / stride)
#pragma once

#include <cstdint>

#include "common/host_device.h"
#include "common/shapes/pool2d.h"

namespace fastnn::cuda::pool_maps {

// The shape in the form the kernels index with (plain int64s, passed by value to kernels).
struct PoolDims {
  int64_t H, W, kh, kw, sh, sw, ph, pw, Ho, Wo;

  static PoolDims of(const Pool2dShape& s) {
    return {s.in_h, s.in_w, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.out_h, s.out_w};
  }
};

struct Range {
  int64_t begin, end;  // [begin, end), possibly empty
};

// The real (unpadded) input rows and columns under output (oh, ow)'s window; never empty
// (shapes/pool2d.h: pad <= kernel / 2).
struct Window {
  Range rows, cols;
};

FASTNN_HOST_DEVICE inline Range window_range(int64_t o, int64_t stride, int64_t pad, int64_t kernel,
                                             int64_t in) {
  const int64_t first = o * stride - pad;
  return {first > 0 ? first : 0, first + kernel < in ? first + kernel : in};
}

FASTNN_HOST_DEVICE inline Window window_at(const PoolDims& d, int64_t oh, int64_t ow) {
  return {window_range(oh, d.sh, d.ph, d.kh, d.H), window_range(ow, d.sw, d.pw, d.kw, d.W)};
}

// Max over output (oh, ow)'s window of one plane, by the CPU's scan: start from the window's
// first real element and replace only on strictly greater (ties keep the earlier element, so
// padding never wins); the first NaN in scan order, if any, wins. `index` is h * W + w.
template <class T>
struct ArgMax {
  T value;
  int64_t index;
};
template <class T>
FASTNN_HOST_DEVICE inline ArgMax<T> max_in_window(const PoolDims& d, const T* x_plane, int64_t oh, int64_t ow) {
  const Window win = window_at(d, oh, ow);
  int64_t best_index = win.rows.begin * d.W + win.cols.begin, nan_index = -1;
  T best = x_plane[best_index];
  for (int64_t h = win.rows.begin; h < win.rows.end; ++h)
    for (int64_t w = win.cols.begin; w < win.cols.end; ++w) {
      const int64_t k = h * d.W + w;
      const T v = x_plane[k];
      if (v > best) best = v, best_index = k;
      if (v != v && nan_index < 0) nan_index = k;
    }
  if (nan_index >= 0) return {x_plane[nan_index], nan_index};
  return {best, best_index};
}

// Sum over output (oh, ow)'s window of one plane (padding adds nothing), in scan order.
template <class T>
FASTNN_HOST_DEVICE inline T window_sum(const PoolDims& d, const T* x_plane, int64_t oh, int64_t ow) {
  const Window win = window_at(d, oh, ow);
  T sum = T(0);
  for (int64_t h = win.rows.begin; h < win.rows.end; ++h)
    for (int64_t w = win.cols.begin; w < win.cols.end; ++w) sum += x_plane[h * d.W + w];
  return sum;
}

// The outputs along one axis whose windows cover input position i (see the header).
FASTNN_HOST_DEVICE inline Range covering_outputs(int64_t i, int64_t stride, int64_t pad, int64_t kernel,
                                                 int64_t out) {
  const int64_t lowest = i + pad - kernel + 1;  // may be negative; i + pad never is
  const int64_t begin = lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
  const int64_t last = (i + pad) / stride;
  return {begin, last + 1 < out ? last + 1 : out};
}

// dx[h * W + w] of one plane for max pooling: the sum, in output order, of dy over the outputs
// covering (h, w) whose argmax index names (h, w). An index outside its own window (only a
// forged one can be) is never matched, so nothing is written out of bounds.
template <class T, class Index>
FASTNN_HOST_DEVICE inline T max_pool_gather(const PoolDims& d, const T* dy_plane, const Index* index_plane,
                                            int64_t h, int64_t w) {
  const Range rows = covering_outputs(h, d.sh, d.ph, d.kh, d.Ho);
  const Range cols = covering_outputs(w, d.sw, d.pw, d.kw, d.Wo);
  const int64_t self = h * d.W + w;
  T sum = T(0);
  for (int64_t oh = rows.begin; oh < rows.end; ++oh)
    for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
      const int64_t o = oh * d.Wo + ow;
      if (static_cast<int64_t>(index_plane[o]) == self) sum += dy_plane[o];
    }
  return sum;
}

// a * b rounded on its own: the GPU compiler would otherwise fuse it with the following add
// (an FMA), where the CPU rounds the product first.
template <class T>
FASTNN_HOST_DEVICE inline T rounded_product(T a, T b) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fmul_rn(a, b);
  else return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// dx[h * W + w] of one plane for average pooling: dy * inv_area summed over the covering
// outputs in output order (each term rounded as the CPU's scatter rounds it).
template <class T>
FASTNN_HOST_DEVICE inline T avg_pool_gather(const PoolDims& d, const T* dy_plane, T inv_area, int64_t h,
                                            int64_t w) {
  const Range rows = covering_outputs(h, d.sh, d.ph, d.kh, d.Ho);
  const Range cols = covering_outputs(w, d.sw, d.pw, d.kw, d.Wo);
  T sum = T(0);
  for (int64_t oh = rows.begin; oh < rows.end; ++oh)
    for (int64_t ow = cols.begin; ow < cols.end; ++ow) sum += rounded_product(dy_plane[oh * d.Wo + ow], inv_area);
  return sum;
}

}  // namespace fastnn::cuda::pool_maps
