// Pixel rows of strided convolutions (conv2d_rows.h has the layouts): the rows matrix, the
// weight's reordered K, and the input gradient's scatter back into dx.
#include "cpu/conv2d_rows.h"

#include <algorithm>

#include "cpu/conv2d_columns.h"
#include "cpu/gemm.h"

namespace fastnn::cpu::conv2d_detail {
namespace {

// The copies per tap: with dw = 1 a kernel row's taps are adjacent pixels of xh, one run of
// kw*C_in values; otherwise one run of C_in per tap. Calls f(pixel, xh_offset, k_offset,
// length) for every run of output rows [i0, i1): R[pixel, k_offset + v] <-> xh[xh_offset + v]
// for v < length, pixels and runs in order.
template <class F>
void for_each_tap_run(const Conv2dShape& s, int64_t i0, int64_t i1, F&& f) {
  const int64_t C = s.in_channels, Wp = s.width + 2 * s.pad_w;
  const int64_t W_out = s.out_width, kh = s.kernel_h, kw = s.kernel_w;
  const int64_t row_step = s.stride_h * Wp * C, pixel_step = s.stride_w * C;
  const int64_t tap_row_step = s.dilation_h * Wp * C;
  const bool whole_rows = s.dilation_w == 1 || kw == 1;
  const int64_t length = whole_rows ? kw * C : C, runs = whole_rows ? 1 : kw;
  const int64_t run_step = s.dilation_w * C;
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = 0; j < W_out; ++j)
      for (int64_t p = 0; p < kh; ++p)
        for (int64_t r = 0; r < runs; ++r)
          f(i * W_out + j, i * row_step + j * pixel_step + p * tap_row_step + r * run_step,
            p * kw * C + r * length, length);
}

}  // namespace

template <class T>
std::vector<T> rows_weight(const T* weight, const Conv2dShape& s) {
  const int64_t C = s.in_channels, area = s.kernel_area(), K = s.col_rows_per_group();
  std::vector<T> w(static_cast<size_t>(s.out_channels * K));
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < area; ++t) w[o * K + t * C + c] = weight[(o * C + c) * area + t];
  return w;
}

template <class T>
void add_rows_weight_grad(const T* dweight_rows_t, T* dweight, bool accumulate,
                          const Conv2dShape& s) {
  const int64_t C = s.in_channels, area = s.kernel_area(), O = s.out_channels;
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < area; ++t) {
        const T v = dweight_rows_t[(t * C + c) * O + o];
        T& dst = dweight[(o * C + c) * area + t];
        dst = accumulate ? dst + v : v;
      }
}

template <class T>
const T* block_rows(const T* x, int64_t n, int64_t images, const Conv2dShape& s, bool first,
                    int threads) {
  const int64_t C = s.in_channels, K = s.col_rows_per_group(), P = s.out_plane();
  const int64_t Hp = s.height + 2 * s.pad_h, Wp = s.width + 2 * s.pad_w;
  T* rows = workspace<T>(kColumns, images * P * K);
  for (int64_t m = 0; m < images; ++m) {
    const T* xh = channels_last_image(x, n + m, s, Hp, Wp, C, first && m == 0, threads);
    T* image_rows = rows + m * P * K;
    for_channel_blocks(threads, s.out_height, [&](int64_t i0, int64_t i1) {
      for_each_tap_run(s, i0, i1, [=](int64_t pixel, int64_t at, int64_t k, int64_t length) {
        copy_short_row(xh + at, image_rows + pixel * K + k, length);
      });
    });
  }
  return rows;
}

template <class T>
void scatter_add_rows(const T* drows, T* dx_image, const Conv2dShape& s) {
  const int64_t C = s.in_channels, K = s.col_rows_per_group();
  const int64_t Hp = s.height + 2 * s.pad_h, Wp = s.width + 2 * s.pad_w;
  T* dxh = workspace<T>(kPaddedImage, Hp * Wp * C);
  std::fill(dxh, dxh + Hp * Wp * C, T(0));
  for_each_tap_run(s, 0, s.out_height, [=](int64_t pixel, int64_t at, int64_t k, int64_t length) {
    T* to = dxh + at;
    const T* from = drows + pixel * K + k;
    for (int64_t v = 0; v < length; ++v) to[v] += from[v];
  });
  for (int64_t h = 0; h < s.height; ++h)
    transpose(dxh + ((h + s.pad_h) * Wp + s.pad_w) * C, C, s.width, C, dx_image + h * s.width,
              s.in_plane());
}

#define FASTNN_INSTANTIATE(T)                                                                  \
  template std::vector<T> rows_weight<T>(const T*, const Conv2dShape&);                        \
  template void add_rows_weight_grad<T>(const T*, T*, bool, const Conv2dShape&);               \
  template const T* block_rows<T>(const T*, int64_t, int64_t, const Conv2dShape&, bool, int);  \
  template void scatter_add_rows<T>(const T*, T*, const Conv2dShape&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu::conv2d_detail
