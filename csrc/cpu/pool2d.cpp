// Pooling kernels; see pool2d.h for the math and the threading rule.
#include "cpu/pool2d.h"

#include <algorithm>
#include <cmath>

#include "common/threading.h"

namespace fastnn::cpu {
namespace {

// The real (unpadded) input rows [h_begin, h_end) and columns [w_begin, w_end) under one
// output position's window. Never empty (see shapes/pool2d.h).
struct Window {
  int64_t h_begin, h_end, w_begin, w_end;
};

inline Window window_at(const Pool2dShape& s, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * s.stride_h - s.pad_h, w0 = ow * s.stride_w - s.pad_w;
  return {std::max<int64_t>(h0, 0), std::min(h0 + s.kernel_h, s.in_h),
          std::max<int64_t>(w0, 0), std::min(w0 + s.kernel_w, s.in_w)};
}

// NaN propagates through max pooling: the first NaN in scan order wins (rare, so a second scan).
template <class T>
int64_t first_nan_in_window(const T* plane, int64_t W, const Window& win) {
  for (int64_t h = win.h_begin; h < win.h_end; ++h)
    for (int64_t w = win.w_begin; w < win.w_end; ++w)
      if (std::isnan(plane[h * W + w])) return h * W + w;
  return win.h_begin * W + win.w_begin;  // unreachable when called after a NaN was seen
}

// Calls row(plane, oh) for every output row, rows split across threads. Each row is written
// by exactly one thread.
template <class F>
void for_each_output_row(const Pool2dShape& s, F row) {
  const int64_t rows = s.planes() * s.out_h;
  const int nt = threads_for(rows * s.out_w * s.kernel_h * s.kernel_w);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) row(r / s.out_h, r % s.out_h);
}

// Calls plane_fn(p) for every (n, c) plane, planes split across threads.
template <class F>
void for_each_plane(int64_t planes, int64_t work_per_plane, F plane_fn) {
  const int nt = threads_for(planes * work_per_plane);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t p = 0; p < planes; ++p) plane_fn(p);
}

}  // namespace

template <class T, class Index>
void max_pool2d_forward(const T* x, T* y, Index* indices, const Pool2dShape& s) {
  const int64_t W = s.in_w;
  for_each_output_row(s, [&](int64_t plane, int64_t oh) {
    const T* xp = x + plane * s.in_plane();
    const int64_t out_offset = (plane * s.out_h + oh) * s.out_w;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const Window win = window_at(s, oh, ow);
      // Start from the window's first real element, so padding never wins and a window of
      // equal values reports its first element.
      int64_t best_index = win.h_begin * W + win.w_begin;
      T best = xp[best_index];
      bool saw_nan = false;
      for (int64_t h = win.h_begin; h < win.h_end; ++h) {
        for (int64_t w = win.w_begin; w < win.w_end; ++w) {
          const T v = xp[h * W + w];
          // Strictly greater: ties keep the earlier element. Written as selects (a max and a
          // conditional move), not a branch: on real data the winner is unpredictable.
          const bool wins = v > best;
          best_index = wins ? h * W + w : best_index;
          best = wins ? v : best;
          saw_nan |= v != v;
        }
      }
      if (saw_nan) best_index = first_nan_in_window(xp, W, win), best = xp[best_index];
      y[out_offset + ow] = best;
      indices[out_offset + ow] = static_cast<Index>(best_index);
    }
  });
}

template <class T, class Index>
void max_pool2d_backward(const T* dy, const Index* indices, T* dx, int64_t planes,
                         int64_t in_plane, int64_t out_plane) {
  for_each_plane(planes, in_plane + out_plane, [&](int64_t p) {
    T* dxp = dx + p * in_plane;
    const T* dyp = dy + p * out_plane;
    const Index* ip = indices + p * out_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    // Overlapping windows may share a winner: add, in output order.
    for (int64_t o = 0; o < out_plane; ++o) dxp[ip[o]] += dyp[o];
  });
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s) {
  const T inv_area = T(1) / static_cast<T>(s.kernel_h * s.kernel_w);
  const int64_t W = s.in_w;
  for_each_output_row(s, [&](int64_t plane, int64_t oh) {
    const T* xp = x + plane * s.in_plane();
    T* yr = y + (plane * s.out_h + oh) * s.out_w;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const Window win = window_at(s, oh, ow);
      T sum = T(0);
      for (int64_t h = win.h_begin; h < win.h_end; ++h)
        for (int64_t w = win.w_begin; w < win.w_end; ++w) sum += xp[h * W + w];
      yr[ow] = sum * inv_area;
    }
  });
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s) {
  const T inv_area = T(1) / static_cast<T>(s.kernel_h * s.kernel_w);
  const int64_t W = s.in_w;
  for_each_plane(s.planes(), s.in_plane() + s.out_plane() * s.kernel_h * s.kernel_w,
                 [&](int64_t p) {
                   T* dxp = dx + p * s.in_plane();
                   const T* dyp = dy + p * s.out_plane();
                   std::fill(dxp, dxp + s.in_plane(), T(0));
                   for (int64_t oh = 0; oh < s.out_h; ++oh) {
                     for (int64_t ow = 0; ow < s.out_w; ++ow) {
                       const Window win = window_at(s, oh, ow);
                       const T g = dyp[oh * s.out_w + ow] * inv_area;
                       for (int64_t h = win.h_begin; h < win.h_end; ++h)
                         for (int64_t w = win.w_begin; w < win.w_end; ++w) dxp[h * W + w] += g;
                     }
                   }
                 });
}

template <class T>
void global_avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s) {
  const int64_t plane_size = s.in_plane();
  for_each_plane(s.planes(), plane_size, [&](int64_t p) {
    const T* xp = x + p * plane_size;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < plane_size; ++i) sum += static_cast<double>(xp[i]);
    y[p] = static_cast<T>(sum / static_cast<double>(plane_size));
  });
}

template <class T>
void global_avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s) {
  const int64_t plane_size = s.in_plane();
  const T inv_size = T(1) / static_cast<T>(plane_size);
  for_each_plane(s.planes(), plane_size, [&](int64_t p) {
    std::fill(dx + p * plane_size, dx + (p + 1) * plane_size, dy[p] * inv_size);
  });
}

#define FASTNN_INSTANTIATE_MAX(T, Index)                                                  \
  template void max_pool2d_forward<T, Index>(const T*, T*, Index*, const Pool2dShape&);   \
  template void max_pool2d_backward<T, Index>(const T*, const Index*, T*, int64_t, int64_t, \
                                              int64_t);
#define FASTNN_INSTANTIATE(T)                                                             \
  FASTNN_INSTANTIATE_MAX(T, int32_t)                                                      \
  FASTNN_INSTANTIATE_MAX(T, int64_t)                                                      \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&);                  \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&);                 \
  template void global_avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&);           \
  template void global_avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE
#undef FASTNN_INSTANTIATE_MAX

}  // namespace fastnn::cpu
