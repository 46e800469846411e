// Scalar panel packing for the GEMM (gemm_kernel.h: GemmPackPanel): the whole of the portable
// path, and the ragged remainders of the SIMD packers in gemm_simd.h.
//
// Panels as gemm_kernel.h (GemmPackPanels) describes: consecutive, `lines` lines of `width`
// elements each, zeros past `count`, so micro-kernels never test bounds.
// The anonymous namespace gives each including translation unit its own copy, so code built
// with -mavx512f is never merged into the portable path by the linker.
#pragma once

#include <cstdint>

namespace fastnn::cpu {
namespace {

// Lines are rows of the source, read in order across all panels.
template <class T>
void pack_rows_scalar(const T* src, int64_t ld, int64_t count, int64_t lines, int width,
                      T* out) {
  const int64_t panels = (count + width - 1) / width;
  for (int64_t l = 0; l < lines; ++l) {
    const T* s = src + l * ld;
    for (int64_t q = 0; q < panels; ++q) {
      T* o = out + (q * lines + l) * width;
      const int64_t n = count - q * width < width ? count - q * width : width;
      for (int64_t j = 0; j < n; ++j) o[j] = s[q * width + j];
      for (int64_t j = n; j < width; ++j) o[j] = T(0);
    }
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

// Zeros columns [count, width) of one panel.
template <class T>
void zero_panel_tail(int64_t count, int64_t lines, int width, T* out) {
  if (count >= width) return;
  for (int64_t l = 0; l < lines; ++l)
    for (int64_t j = count; j < width; ++j) out[l * width + j] = T(0);
}

// Lines are columns of the source: panel by panel, each `width` source rows.
template <class T, class PackOnePanel>
void pack_transposed_panels(const T* src, int64_t ld, int64_t count, int64_t lines, int width,
                            T* out, PackOnePanel pack_one) {
  for (int64_t j0 = 0; j0 < count; j0 += width) {
    const int64_t n = count - j0 < width ? count - j0 : width;
    T* panel = out + j0 * lines;
    pack_one(src + j0 * ld, ld, n, lines, width, panel);
    zero_panel_tail(n, lines, width, panel);
  }
}

template <class T>
void transpose_scalar(const T* src, int64_t ld, int64_t rows, int64_t cols, T* out,
                      int64_t ld_out) {
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) out[c * ld_out + r] = src[r * ld + c];
}

template <class T>
void pack_transposed_scalar(const T* src, int64_t ld, int64_t count, int64_t lines, int width,
                            T* out) {
  pack_transposed_panels(src, ld, count, lines, width, out,
                         [](const T* s, int64_t ld_, int64_t n, int64_t lines_, int width_, T* o) {
                           pack_transposed_range(s, ld_, 0, n, 0, lines_, width_, o);
                         });
}

}  // namespace
}  // namespace fastnn::cpu
