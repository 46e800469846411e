// Scalar panel packing for the GEMM (gemm_kernel.h: GemmPackPanel): the whole of the portable
// path, and the ragged remainders of the SIMD packers in gemm_simd.h.
//
// A panel is `lines` lines of `width` elements (width = MR for A, NR for B); line l holds the
// source elements (l, 0..count), then zeros up to width, so micro-kernels never test bounds.
// The anonymous namespace gives each including translation unit its own copy, so code built
// with -mavx512f is never merged into the portable path by the linker.
#pragma once

#include <cstdint>

namespace fastnn::cpu {
namespace {

// out[l * width + j] = src[l * ld + j] for j < count, else 0: lines are rows of the source.
template <class T>
void pack_rows_scalar(const T* src, int64_t ld, int64_t count, int64_t lines, int width,
                      T* out) {
  for (int64_t l = 0; l < lines; ++l) {
    const T* s = src + l * ld;
    T* o = out + l * width;
    for (int64_t j = 0; j < count; ++j) o[j] = s[j];
    for (int64_t j = count; j < width; ++j) o[j] = T(0);
  }
}

// out[l * width + j] = src[j * ld + l] for j in [j_begin, j_end), l in [l_begin, l_end): the
// panel's lines are columns of the source.
template <class T>
void pack_transposed_range(const T* src, int64_t ld, int64_t j_begin, int64_t j_end,
                           int64_t l_begin, int64_t l_end, int width, T* out) {
  for (int64_t j = j_begin; j < j_end; ++j)
    for (int64_t l = l_begin; l < l_end; ++l) out[l * width + j] = src[j * ld + l];
}

template <class T>
void zero_panel_tail(int64_t count, int64_t lines, int width, T* out) {
  if (count >= width) return;
  for (int64_t l = 0; l < lines; ++l)
    for (int64_t j = count; j < width; ++j) out[l * width + j] = T(0);
}

template <class T>
void pack_transposed_scalar(const T* src, int64_t ld, int64_t count, int64_t lines, int width,
                            T* out) {
  // Column blocks of 8 keep the reads within a few cache lines per pass.
  for (int64_t j0 = 0; j0 < count; j0 += 8)
    pack_transposed_range(src, ld, j0, j0 + 8 < count ? j0 + 8 : count, 0, lines, width, out);
  zero_panel_tail(count, lines, width, out);
}

}  // namespace
}  // namespace fastnn::cpu
