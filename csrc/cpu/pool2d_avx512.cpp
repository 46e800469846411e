// AVX-512 2x2 stride-2 max pool (see pool2d_simd.h). A zmm holds 16 outputs of a row: two
// loads of 16 floats per input row are split into even (left) and odd (right) columns with
// one permute each, and the window's four candidates are compared as whole vectors. Masked
// loads and stores cover a row of any length in one pass (a 28-wide input row is one 14-lane
// step), where the portable loop spent most of its time in scalar tails.
#include "cpu/pool2d_simd.h"

#include <immintrin.h>

#include <algorithm>

namespace fastnn::cpu {
namespace {

inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

inline void store_indices(int32_t* dst, __m512i idx, __mmask16 m) {
  _mm512_mask_storeu_epi32(dst, m, idx);
}

// Widened to int64 half by half. (The zero-masked forms dodge GCC 12's false
// -Wmaybe-uninitialized in the unmasked extract and convert intrinsics.)
inline void store_indices(int64_t* dst, __m512i idx, __mmask16 m) {
  const __mmask8 all = 0xFF;
  for (int half = 0; half < 2; ++half) {
    const __m256i part = half ? _mm512_maskz_extracti32x8_epi32(all, idx, 1)
                              : _mm512_maskz_extracti32x8_epi32(all, idx, 0);
    _mm512_mask_storeu_epi64(dst + 8 * half, static_cast<__mmask8>(m >> (8 * half)),
                             _mm512_maskz_cvtepi32_epi64(all, part));
  }
}

// The 2n floats at row[0 .. 2n) (n <= 16 outputs) as (left columns, right columns).
inline void load_pairs(const float* row, int64_t n, __m512& left, __m512& right) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(2 * n), row);
  const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(std::max<int64_t>(2 * n - 16, 0)), row + 16);
  left = _mm512_permutex2var_ps(lo, even, hi);
  right = _mm512_permutex2var_ps(lo, odd, hi);
}

}  // namespace

template <class Index>
void max_pool2d_2x2_plane_avx512(const float* x, float* y, Index* indices, int64_t W,
                                 int64_t out_h, int64_t out_w) {
  const __m512i twice_lane =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i right = _mm512_set1_epi32(1), down = _mm512_set1_epi32(static_cast<int32_t>(W)),
                down_right = _mm512_set1_epi32(static_cast<int32_t>(W + 1));
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const float* top = x + 2 * oh * W;
    for (int64_t ow = 0; ow < out_w; ow += 16) {
      const int64_t n = std::min<int64_t>(16, out_w - ow);
      __m512 top_left, top_right, bottom_left, bottom_right;
      load_pairs(top + 2 * ow, n, top_left, top_right);
      load_pairs(top + W + 2 * ow, n, bottom_left, bottom_right);
      // Scan order with pool2d.cpp's takes_max rule: v wins if !(v <= best) (greater, or a
      // NaN) and best is not already a NaN.
      __m512 best = top_left;
      __m512i offset = _mm512_setzero_si512();
      const auto consider = [&](__m512 v, __m512i v_offset) {
        const __mmask16 wins = _mm512_cmp_ps_mask(v, best, _CMP_NLE_UQ) &
                               _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q);
        best = _mm512_mask_mov_ps(best, wins, v);
        offset = _mm512_mask_mov_epi32(offset, wins, v_offset);
      };
      consider(top_right, right);
      consider(bottom_left, down);
      consider(bottom_right, down_right);
      const __m512i window_start =
          _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * oh * W + 2 * ow)), twice_lane);
      const __m512i index = _mm512_add_epi32(window_start, offset);
      const __mmask16 valid = first_lanes(n);
      _mm512_mask_storeu_ps(y + oh * out_w + ow, valid, best);
      store_indices(indices + oh * out_w + ow, index, valid);
    }
  }
}

template void max_pool2d_2x2_plane_avx512<int32_t>(const float*, float*, int32_t*, int64_t,
                                                   int64_t, int64_t);
template void max_pool2d_2x2_plane_avx512<int64_t>(const float*, float*, int64_t*, int64_t,
                                                   int64_t, int64_t);

}  // namespace fastnn::cpu
