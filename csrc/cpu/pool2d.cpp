// Pooling kernels; see pool2d.h for the math and the threading rule.
#include "cpu/pool2d.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/cpu_features.h"
#include "common/threading.h"
#if defined(FASTNN_X86)
#include "cpu/pool2d_simd.h"
#endif

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

// Whether v takes over as a window's max from best, the element kept so far (earlier in scan
// order). Strictly greater, so ties keep the earlier element; a NaN takes over from a number and
// nothing takes over from a NaN, so the first NaN in scan order wins. Selects, not branches: on
// real data the winner is unpredictable, and the 2x2 path vectorises.
template <class T>
inline bool takes_max(T v, T best) {
  return !(v <= best) && best == best;
}

// 2x2 windows with stride 2 and no padding, the usual pool of a CNN, get their own paths:
// windows are disjoint and never cross the input's edge, so an output row reads (forward) or
// writes (average backward) exactly two input rows, with no bounds arithmetic per element, in
// a loop the compiler vectorises. When H or W is odd the last row or column belongs to no
// window.
inline bool is_2x2_stride_2(const Pool2dShape& s) {
  return s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 &&
         s.pad_h == 0 && s.pad_w == 0;
}

// The AVX-512 (pool2d_avx512.cpp) or AVX2 (pool2d_avx2.cpp) kernels, where the CPU and
// FASTNN_SIMD allow them.
inline bool use_avx512_2x2_max_pool() {
#if defined(FASTNN_X86)
  return active_simd_level() == SimdLevel::avx512;
#else
  return false;
#endif
}

inline bool use_avx2_2x2_max_pool() {
#if defined(FASTNN_X86)
  return active_simd_level() >= SimdLevel::avx2;
#else
  return false;
#endif
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

// One plane of the 2x2 stride-2 max pool, float32: xp (H, W) -> yp, ip (out_h, out_w). Written
// as selects so that the compiler vectorises the loop over ow; the winner's offset within the
// window is an int32 (as wide as a float, so the selects vectorise for either index type).
// Not for double: GCC does not vectorise it there (SSE2), and its scalar selects were slower
// than the general loop.
template <class Index>
void max_pool2d_2x2_plane(const float* __restrict xp, float* __restrict yp,
                          Index* __restrict ip, int64_t W, int64_t out_h, int64_t out_w) {
  using T = float;
  using Offset = int32_t;
  const Offset down = static_cast<Offset>(W), down_right = static_cast<Offset>(W + 1);
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const T* top = xp + 2 * oh * W;
    const T* bottom = top + W;
    T* yr = yp + oh * out_w;
    Index* ir = ip + oh * out_w;
    const Index row_start = static_cast<Index>(2 * oh * W);
    for (int64_t ow = 0; ow < out_w; ++ow) {
      // Scan order: top-left, top-right, bottom-left, bottom-right.
      const T top_right = top[2 * ow + 1], bottom_left = bottom[2 * ow],
              bottom_right = bottom[2 * ow + 1];
      T best = top[2 * ow];
      Offset offset = 0;
      bool wins = takes_max(top_right, best);
      best = wins ? top_right : best, offset = wins ? Offset(1) : offset;
      wins = takes_max(bottom_left, best);
      best = wins ? bottom_left : best, offset = wins ? down : offset;
      wins = takes_max(bottom_right, best);
      best = wins ? bottom_right : best, offset = wins ? down_right : offset;
      yr[ow] = best;
      ir[ow] = row_start + static_cast<Index>(2 * ow) + static_cast<Index>(offset);
    }
  }
}

// One plane of the 2x2 stride-2 average pool (the same sums, in the same order, as the
// general path).
template <class T>
void avg_pool2d_2x2_plane(const T* xp, T* yp, int64_t W, int64_t out_h, int64_t out_w) {
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const T* top = xp + 2 * oh * W;
    const T* bottom = top + W;
    T* yr = yp + oh * out_w;
    for (int64_t ow = 0; ow < out_w; ++ow)
      yr[ow] = (top[2 * ow] + top[2 * ow + 1] + bottom[2 * ow] + bottom[2 * ow + 1]) * T(0.25);
  }
}

template <class T>
void avg_pool2d_backward_2x2_plane(const T* dyp, T* dxp, int64_t H, int64_t W, int64_t out_h,
                                   int64_t out_w) {
  for (int64_t oh = 0; oh < out_h; ++oh) {
    T* top = dxp + 2 * oh * W;
    T* bottom = top + W;
    const T* dyr = dyp + oh * out_w;
    for (int64_t ow = 0; ow < out_w; ++ow) {
      const T g = dyr[ow] * T(0.25);
      top[2 * ow] = top[2 * ow + 1] = bottom[2 * ow] = bottom[2 * ow + 1] = g;
    }
    std::fill(top + 2 * out_w, top + W, T(0));
    std::fill(bottom + 2 * out_w, bottom + W, T(0));
  }
  std::fill(dxp + 2 * out_h * W, dxp + H * W, T(0));
}

}  // namespace

template <class T, class Index>
void max_pool2d_forward(const T* x, T* y, Index* indices, const Pool2dShape& s, const Exec&) {
  const int64_t W = s.in_w;
  if constexpr (std::is_same_v<T, float>) {
    // (The 2x2 kernels compute window offsets in int32.)
    if (is_2x2_stride_2(s) && s.in_plane() <= INT32_MAX) {
      const auto planes = [&](auto plane_kernel) {
        for_each_plane(s.planes(), s.in_plane(), [&](int64_t p) {
          plane_kernel(x + p * s.in_plane(), y + p * s.out_plane(), indices + p * s.out_plane(), W,
                       s.out_h, s.out_w);
        });
      };
#if defined(FASTNN_X86)
      if (use_avx512_2x2_max_pool()) return planes(max_pool2d_2x2_plane_avx512<Index>);
      // The AVX2 kernel where rows hold whole vectors of outputs (it was slower on all-tail rows).
      if (use_avx2_2x2_max_pool() && s.out_w >= 8) return planes(max_pool2d_2x2_plane_avx2<Index>);
#endif
      return planes(max_pool2d_2x2_plane<Index>);
    }
  }
  for_each_output_row(s, [&](int64_t plane, int64_t oh) {
    const T* xp = x + plane * s.in_plane();
    const int64_t out_offset = (plane * s.out_h + oh) * s.out_w;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const Window win = window_at(s, oh, ow);
      // Start from the window's first real element, so padding never wins.
      int64_t best_index = win.h_begin * W + win.w_begin;
      T best = xp[best_index];
      for (int64_t h = win.h_begin; h < win.h_end; ++h) {
        for (int64_t w = win.w_begin; w < win.w_end; ++w) {
          const T v = xp[h * W + w];
          const bool wins = takes_max(v, best);
          best_index = wins ? h * W + w : best_index;
          best = wins ? v : best;
        }
      }
      y[out_offset + ow] = best;
      indices[out_offset + ow] = static_cast<Index>(best_index);
    }
  });
}

template <class T, class Index>
int64_t max_pool2d_backward_scatter(const T* dy, const Index* indices, T* dx, int64_t planes,
                                    int64_t in_plane, int64_t out_plane, const Exec&) {
  // A plane fits in L1, so zeroing it and scattering into it costs one pass over dx in memory.
  // (A one-pass 2x2 path writing each dx element from its window's index was slower: rows of
  // 14 outputs leave the vector loop mostly tails; an AVX2 one was no faster: the pass is bound
  // by writing dx.)
  for_each_plane(planes, in_plane + out_plane, [&](int64_t p) {
    T* dxp = dx + p * in_plane;
    const T* dyp = dy + p * out_plane;
    const Index* ip = indices + p * out_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    // Overlapping windows may share a winner: add, in output order.
    for (int64_t o = 0; o < out_plane; ++o) dxp[ip[o]] += dyp[o];
  });
  return -1;
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec&) {
  const T inv_area = T(1) / static_cast<T>(s.kernel_h * s.kernel_w);
  const int64_t W = s.in_w;
  if (is_2x2_stride_2(s)) {
    for_each_plane(s.planes(), s.in_plane(), [&](int64_t p) {
      avg_pool2d_2x2_plane(x + p * s.in_plane(), y + p * s.out_plane(), W, s.out_h, s.out_w);
    });
    return;
  }
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
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec&) {
  const T inv_area = T(1) / static_cast<T>(s.kernel_h * s.kernel_w);
  const int64_t W = s.in_w;
  const bool fast = is_2x2_stride_2(s);
  for_each_plane(s.planes(), s.in_plane() + s.out_plane() * s.kernel_h * s.kernel_w,
                 [&](int64_t p) {
                   T* dxp = dx + p * s.in_plane();
                   const T* dyp = dy + p * s.out_plane();
                   if (fast)
                     return avg_pool2d_backward_2x2_plane(dyp, dxp, s.in_h, W, s.out_h, s.out_w);
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
void global_avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec&) {
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
void global_avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec&) {
  const int64_t plane_size = s.in_plane();
  const T inv_size = T(1) / static_cast<T>(plane_size);
  for_each_plane(s.planes(), plane_size, [&](int64_t p) {
    std::fill(dx + p * plane_size, dx + (p + 1) * plane_size, dy[p] * inv_size);
  });
}

#define FASTNN_INSTANTIATE_MAX(T, Index)                                                  \
  template void max_pool2d_forward<T, Index>(const T*, T*, Index*, const Pool2dShape&, const Exec&);   \
  template int64_t max_pool2d_backward_scatter<T, Index>(const T*, const Index*, T*, int64_t,  \
                                                         int64_t, int64_t, const Exec&);
#define FASTNN_INSTANTIATE(T)                                                             \
  FASTNN_INSTANTIATE_MAX(T, int32_t)                                                      \
  FASTNN_INSTANTIATE_MAX(T, int64_t)                                                      \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&, const Exec&);                  \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&, const Exec&);                 \
  template void global_avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&, const Exec&);           \
  template void global_avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE
#undef FASTNN_INSTANTIATE_MAX

}  // namespace fastnn::cpu
