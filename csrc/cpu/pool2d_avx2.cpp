// AVX2 2x2 stride-2 max pool (see pool2d_simd.h). A ymm holds 8 outputs
// of a row: two loads of 8 floats per input row are split into even (left) and odd (right)
// columns by a shuffle and a lane permute; the window's four candidates are compared as whole
// vectors. A row's last outputs (a 28-wide input row is one full step and one of 6 lanes) take
// masked loads, where the compiler's vectorisation of the portable loop spent most of its time
// in stride-2 gathers and scalar tails (28 x 28 planes: 0.37 -> 0.14 ms per
// LeNet batch on one thread). Rows of fewer than 8 outputs stay on the portable loop, which
// was faster there (all tails).
#include "cpu/pool2d_simd.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace fastnn::cpu {
namespace {

// All ones in the first n lanes.
inline __m256i first_lanes(int64_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(std::clamp<int64_t>(n, 0, 8))), lane);
}

// A row's last, shorter step: masked loads; stores of whole vectors where `room` says the lanes
// past the row land on elements that are written later (the caller knows which), element by
// element otherwise. (AMD's masked stores, vmaskmovps to memory, are microcoded: slower than
// that, and so are memcpy calls.)
inline __m256 load_first(const float* src, int64_t n) {
  return n >= 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, first_lanes(n));
}

template <class E, class V>
inline void store_first(E* dst, V v, int64_t n, int64_t room) {
  constexpr int64_t width = sizeof(V) / sizeof(E);
  if (n >= width || room >= width) {
    std::memcpy(dst, &v, sizeof(V));  // one unaligned vector store
    return;
  }
  E lanes[width];
  std::memcpy(lanes, &v, sizeof(V));
  for (int64_t l = 0; l < width; ++l)
    if (l < n) dst[l] = lanes[l];
}

// The 2n floats at row[0 .. 2n) (n <= 8 outputs) as (left columns, right columns).
inline void load_pairs(const float* row, int64_t n, __m256& left, __m256& right) {
  const __m256 lo = load_first(row, 2 * n), hi = load_first(row + 8, 2 * n - 8);
  // shuffle: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; the 64-bit permute puts the pairs in order.
  left = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
  right = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
}

inline void store_indices(int32_t* dst, __m256i index, int64_t n, int64_t room) {
  store_first(dst, index, n, room);
}

// Widened to int64.
inline void store_indices(int64_t* dst, __m256i index, int64_t n, int64_t room) {
  store_first(dst, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(index)), n, room);
  if (n > 4)
    store_first(dst + 4, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(index, 1)), n - 4, room - 4);
}

// 2 x the lane index: each lane's window starts two columns after the previous one's. (A
// function, not a constant: a namespace-scope initialiser would run AVX2 code at load time.)
inline __m256i twice_lane() { return _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14); }

}  // namespace

template <class Index>
void max_pool2d_2x2_plane_avx2(const float* x, float* y, Index* indices, int64_t W,
                               int64_t out_h, int64_t out_w) {
  const __m256i right = _mm256_set1_epi32(1), down = _mm256_set1_epi32(static_cast<int32_t>(W)),
                down_right = _mm256_set1_epi32(static_cast<int32_t>(W + 1));
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const float* top = x + 2 * oh * W;
    for (int64_t ow = 0; ow < out_w; ow += 8) {
      const int64_t n = std::min<int64_t>(8, out_w - ow);
      __m256 top_left, top_right, bottom_left, bottom_right;
      load_pairs(top + 2 * ow, n, top_left, top_right);
      load_pairs(top + W + 2 * ow, n, bottom_left, bottom_right);
      // Scan order with pool2d.cpp's takes_max rule: v wins if !(v <= best) (greater, or a
      // NaN) and best is not already a NaN.
      __m256 best = top_left;
      __m256i offset = _mm256_setzero_si256();
      const auto consider = [&](__m256 v, __m256i v_offset) {
        const __m256 wins = _mm256_and_ps(_mm256_cmp_ps(v, best, _CMP_NLE_UQ),
                                          _mm256_cmp_ps(best, best, _CMP_ORD_Q));
        best = _mm256_blendv_ps(best, v, wins);
        offset = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(offset),
                                                      _mm256_castsi256_ps(v_offset), wins));
      };
      consider(top_right, right);
      consider(bottom_left, down);
      consider(bottom_right, down_right);
      const __m256i window_start =
          _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(2 * oh * W + 2 * ow)), twice_lane());
      // Lanes past the row land in the next output rows, written later (up to the plane's end).
      const int64_t at = oh * out_w + ow, room = out_h * out_w - at;
      store_first(y + at, best, n, room);
      store_indices(indices + at, _mm256_add_epi32(window_start, offset), n, room);
    }
  }
}

template void max_pool2d_2x2_plane_avx2<int32_t>(const float*, float*, int32_t*, int64_t, int64_t,
                                                 int64_t);
template void max_pool2d_2x2_plane_avx2<int64_t>(const float*, float*, int64_t*, int64_t, int64_t,
                                                 int64_t);

}  // namespace fastnn::cpu
