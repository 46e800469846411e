// Winograd convolution F(4x4, 3x3) for 3x3, stride-1, dilation-1, ungrouped float32 layers
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). An output tile of
// m x m = 4x4 pixels comes from an input tile d of a x a = 6x6 pixels (neighbouring tiles
// overlap by 2) in a x a independent products instead of a sliding 3x3 window:
//
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A          (.* elementwise, per channel pair)
//
// summed over the input channels, which makes each of the a*a positions xi a matrix product:
//   U[xi] (C_in, C_out)  = (G g[o, c] G^T)[xi]            weights, once per call
//   V[xi] (tiles, C_in)  = (B^T d[tile, c] B)[xi]          input transform
//   M[xi] (tiles, C_out) = V[xi] @ U[xi]                   a*a GEMMs (cpu/gemm.h)
//   y[tile, o]           = relu?(A^T M[., tile, o] A + bias[o])   output transform
//
// With the points 0, +-1, +-2, inf: 36 products per 16 outputs, 4x fewer multiplies than the 9
// per output of a direct 3x3, at the price of the transforms and about one decimal digit in
// float32 (the coefficients up to 8 in A and 5 in B grow the rounding error):
//   B^T = [ 4  0 -5  0  1  0 ]   G = [  1/4     0     0  ]   A^T = [ 1  1  1  1  1  0 ]
//         [ 0 -4 -4  1  1  0 ]       [ -1/6  -1/6  -1/6 ]         [ 0  1 -1  2 -2  0 ]
//         [ 0  4 -4 -1  1  0 ]       [ -1/6   1/6  -1/6 ]         [ 0  1  1  4  4  0 ]
//         [ 0 -2 -1  2  1  0 ]       [ 1/24  1/12   1/6 ]         [ 0  1 -1  8 -8  1 ]
//         [ 0  2 -1 -2  1  0 ]       [ 1/24 -1/12   1/6 ]
//         [ 0  4  0 -5  0  1 ]       [   0     0     1  ]
// (F(2x2, 3x3), 16 products per 4 outputs, measured slower on every layer: conv2d_plan.cpp.)
//
// The weight gradient runs the same algorithm backwards (the transposition principle: the
// forward is linear in U and in g, so dL/dU = sum over tiles of (A dY A^T) .* V, and
// dL/dg = G^T (dL/dU) G). Per position xi one product sums over every tile of the batch:
//   V[xi] (tiles, C_in)  = (B^T d[tile, c] B)[xi]          the forward's input transform
//   W[xi] (tiles, C_out) = (A dY[tile, o] A^T)[xi]         dy's 4x4 tile (0 past H_out, W_out)
//   M[xi] (C_out, C_in) += W[xi]^T @ V[xi]                 a*a GEMMs, K = the block's tiles
//   dweight[o, c]       (+)= G^T M[., o, c] G              3x3 per channel pair
// with A = (A^T)^T (6x4) and G^T (3x6):
//   G^T = [ 1/4  -1/6  -1/6  1/24   1/24  0 ]
//         [  0   -1/6   1/6  1/12  -1/12  0 ]
//         [  0   -1/6  -1/6   1/6    1/6  1 ]
// The error grows as in the forward but through A (up to 8 per dimension) on dy's side: see
// tests/test_conv2d_winograd.py for the bound the tests use.
//
// Layouts (conv2d_winograd.cpp drives them; the transforms here are vectorised over channels,
// L lanes, instantiated per ISA like conv2d_direct.h: conv2d_winograd.cpp portable,
// conv2d_winograd_avx2.cpp, conv2d_winograd_avx512.cpp):
//   xh   one image, channels last and padded: xh[(h * Wh + w) * Cp + c] = x[c, h - ph, w - pw],
//        0 outside the image and for c >= C_in; Wh = tiles_w * m + 2 (Hh likewise), Cp = C_in
//        rounded up to L. Tile (i, j) reads rows i*m .. i*m + a - 1, columns j*m .. j*m + a - 1.
//   V    V[xi][row * Cp + c], row = a block's tile index (image-major, then tile rows, columns);
//        V[xi + 1] follows V[xi] a cache line past its end (conv2d_winograd.cpp says why).
//   M    M[xi][row * Op + o], Op = C_out rounded up to L (the GEMM writes the first C_out).
//   band one tile row's outputs, channels last: band[(r * tiles_w * m + w) * Op + o] for the m
//        rows r of the tile row, transposed into y's planes (the last tiles' pixels past H_out,
//        W_out dropped).
//   dyh  one image of dy, channels last, in whole tiles: dyh[(h * tiles_w * m + w) * Op + o]
//        = dy[o, h, w], 0 past H_out, W_out and for o >= C_out (the weight gradient).
//   W    W[xi][row * Op + o], rows as V's.
//   M    the weight gradient's sums: M[xi][o * Cp + c] (the GEMM writes the first C_in).
//
// Every output is one fixed-order computation whatever the thread count or blocking.
// Non-finite inputs spread to the whole output tiles whose input tiles hold them (the
// transforms mix every pixel of a tile), not only to the outputs whose 3x3 windows hold them;
// in the weight gradient, to all 9 taps of the channel pairs whose tiles hold them.
#pragma once

#include <cstdint>

#include "common/shapes/conv2d.h"
#include "cpu/conv2d_direct.h"

namespace fastnn::cpu {

// The sizes the transforms walk by.
struct WinogradGeometry {
  static constexpr int m = 4, a = 6;  // output and input tile sides
  int64_t tiles_h = 0, tiles_w = 0;  // tiles per column and per row of an image
  int64_t Wh = 0, Hh = 0;            // xh's padded plane
  int64_t Cp = 0, Op = 0;            // channels rounded up to the lanes
  int64_t tiles() const { return tiles_h * tiles_w; }
  static constexpr int64_t positions() { return int64_t{a} * a; }
};

// The per-ISA transforms (float32). For tile row `tile_row` of one image:
//   input:  V[xi][(row0 + t) * Cp + c] for its tiles t = 0 .. tiles_w - 1, from xh;
//   output: band (above) from M[xi][(row0 + t) * Op + o], plus bias[o] (null: none; else Op
//           values), then ReLU when asked.
//   output_grad: W[xi][(row0 + t) * Op + o] for its tiles, from dyh (the weight gradient);
// and for output channel o of the weight gradient:
//   weight_grad: out[k * Cp + c] = (G^T M[., o, c] G)[k] for the 9 taps k = p * 3 + q.
// xi_stride: elements from V[xi] (M[xi], W[xi]) to V[xi + 1] (M[xi + 1], W[xi + 1]).
struct WinogradKernels {
  int lanes;  // L
  void (*input)(const float* xh, const WinogradGeometry& g, int64_t tile_row, float* v,
                int64_t row0, int64_t xi_stride);
  void (*output)(const float* mprod, const WinogradGeometry& g, int64_t row0, int64_t xi_stride,
                 const float* bias, bool relu, float* band);
  void (*output_grad)(const float* dyh, const WinogradGeometry& g, int64_t tile_row, float* w,
                      int64_t row0, int64_t xi_stride);
  void (*weight_grad)(const float* mprod, const WinogradGeometry& g, int64_t o,
                      int64_t xi_stride, float* out);
};

// The transforms for the SIMD level in use (common/cpu_features.h).
const WinogradKernels& winograd_kernels();

namespace {

// The one-dimensional transforms of F(4, 3), written out so that only the nonzero coefficients
// cost an operation, and shared terms are computed once.
template <class V>
struct WinogradF4 {
  // r = B^T d
  static inline __attribute__((always_inline)) void input(const V* d, V* r) {
    const V t1 = d[4] - 4.0f * d[2], t2 = d[3] - 4.0f * d[1];
    const V t3 = d[4] - d[2], t4 = 2.0f * (d[3] - d[1]);
    r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    r[1] = t1 + t2;
    r[2] = t1 - t2;
    r[3] = t3 + t4;
    r[4] = t3 - t4;
    r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
  }
  // o = A^T s
  static inline __attribute__((always_inline)) void output(const V* s, V* o) {
    const V s12 = s[1] + s[2], d12 = s[1] - s[2], s34 = s[3] + s[4], d34 = s[3] - s[4];
    o[0] = s[0] + s12 + s34;
    o[1] = d12 + 2.0f * d34;
    o[2] = s12 + 4.0f * s34;
    o[3] = d12 + 8.0f * d34 + s[5];
  }
  // w = A s (6 from 4): the transpose of output(), for dy's tiles
  static inline __attribute__((always_inline)) void output_grad(const V* s, V* w) {
    const V e = s[0] + s[2], o = s[1] + s[3];
    const V e4 = s[0] + 4.0f * s[2], o8 = 2.0f * s[1] + 8.0f * s[3];
    w[0] = s[0];
    w[1] = e + o;
    w[2] = e - o;
    w[3] = e4 + o8;
    w[4] = e4 - o8;
    w[5] = s[3];
  }
  // r = G^T m (3 from 6): the transpose of the weights' transform
  static inline __attribute__((always_inline)) void weight_grad(const V* m, V* r) {
    const V s12 = m[1] + m[2], d21 = m[2] - m[1], s34 = m[3] + m[4], d34 = m[3] - m[4];
    r[0] = 0.25f * m[0] - (1.0f / 6) * s12 + (1.0f / 24) * s34;
    r[1] = (1.0f / 6) * d21 + (1.0f / 12) * d34;
    r[2] = (1.0f / 6) * (s34 - s12) + m[5];
  }
};

// The first pass of a 2-D transform: t[k][j] = f(column j)[k] over the Cols columns of In
// elements of a tile, element (i, j) read by load(i, j); the second pass applies f to each row
// of t.
template <int In = WinogradGeometry::a, int Out, int Cols, class V, class Load, class F1>
inline __attribute__((always_inline)) void transform_columns(Load load, F1 f, V (&t)[Out][Cols]) {
#pragma GCC unroll 8
  for (int j = 0; j < Cols; ++j) {
    V column[In], r[Out];
#pragma GCC unroll 8
    for (int i = 0; i < In; ++i) column[i] = load(i, j);
    f(column, r);
#pragma GCC unroll 8
    for (int k = 0; k < Out; ++k) t[k][j] = r[k];
  }
}

// V[xi] = B^T d B for the tiles of one tile row, L channels at a time.
template <int L>
void winograd_input_row(const float* xh, const WinogradGeometry& g, int64_t tile_row, float* v,
                        int64_t row0, int64_t xi_stride) {
  using Vec = Lanes<float, L>;
  using V = typename Vec::V;
  using F = WinogradF4<V>;
  constexpr int a = WinogradGeometry::a, m = WinogradGeometry::m;
  const int64_t Cp = g.Cp, Wh = g.Wh;
  for (int64_t t = 0; t < g.tiles_w; ++t) {
    const float* tile = xh + (tile_row * m * Wh + t * m) * Cp;
    float* out = v + (row0 + t) * Cp;
    for (int64_t c = 0; c < Cp; c += L) {
      V cols[a][a];  // B^T d: cols[k][j] = sum_i B^T[k, i] d[i, j]
      transform_columns(
          [&](int i, int j) { return Vec::load(tile + (i * Wh + j) * Cp + c); }, F::input, cols);
#pragma GCC unroll 8
      for (int k = 0; k < a; ++k) {
        V r[a];
        F::input(cols[k], r);  // (B^T d) B: the same transform along the row
#pragma GCC unroll 8
        for (int l = 0; l < a; ++l) Vec::store(out + (k * a + l) * xi_stride + c, r[l]);
      }
    }
  }
}

// band = relu?(A^T M A + bias) for the tiles of one tile row, L channels at a time.
template <int L>
void winograd_output_row(const float* mprod, const WinogradGeometry& g, int64_t row0,
                         int64_t xi_stride, const float* bias, bool relu, float* band) {
  using Vec = Lanes<float, L>;
  using V = typename Vec::V;
  using F = WinogradF4<V>;
  constexpr int a = WinogradGeometry::a, m = WinogradGeometry::m;
  const int64_t Op = g.Op, band_width = g.tiles_w * m;
  for (int64_t t = 0; t < g.tiles_w; ++t) {
    const float* in = mprod + (row0 + t) * Op;
    float* out = band + t * m * Op;
    for (int64_t o = 0; o < Op; o += L) {
      V rows[m][a];  // A^T M: rows[i][l] = sum_k A^T[i, k] M[k, l]
      transform_columns(
          [&](int k, int l) { return Vec::load(in + (k * a + l) * xi_stride + o); }, F::output,
          rows);
      const V b = bias ? Vec::load(bias + o) : V{};
#pragma GCC unroll 8
      for (int i = 0; i < m; ++i) {
        V r[m];
        F::output(rows[i], r);
#pragma GCC unroll 8
        for (int j = 0; j < m; ++j) {
          V y = r[j] + b;
          // max(y, 0) keeping NaN, as the GEMM epilogue's ReLU does
          if (relu) y = y < 0.0f ? V{} : y;
          Vec::store(out + (i * band_width + j) * Op + o, y);
        }
      }
    }
  }
}

// W[xi] = A dY A^T for the tiles of one tile row of dy, L output channels at a time.
template <int L>
void winograd_output_grad_row(const float* dyh, const WinogradGeometry& g, int64_t tile_row,
                              float* w, int64_t row0, int64_t xi_stride) {
  using Vec = Lanes<float, L>;
  using V = typename Vec::V;
  using F = WinogradF4<V>;
  constexpr int a = WinogradGeometry::a, m = WinogradGeometry::m;
  const int64_t Op = g.Op, width = g.tiles_w * m;
  for (int64_t t = 0; t < g.tiles_w; ++t) {
    const float* tile = dyh + (tile_row * m * width + t * m) * Op;
    float* out = w + (row0 + t) * Op;
    for (int64_t o = 0; o < Op; o += L) {
      V cols[a][m];  // A dY: cols[k][j] = sum_i A[k, i] dY[i, j]
      transform_columns<m>(
          [&](int i, int j) { return Vec::load(tile + (i * width + j) * Op + o); }, F::output_grad,
          cols);
#pragma GCC unroll 8
      for (int k = 0; k < a; ++k) {
        V r[a];
        F::output_grad(cols[k], r);  // (A dY) A^T
#pragma GCC unroll 8
        for (int l = 0; l < a; ++l) Vec::store(out + (k * a + l) * xi_stride + o, r[l]);
      }
    }
  }
}

// out[k * Cp + c] = (G^T M[., o, c] G)[k] for output channel o, L input channels at a time.
template <int L>
void winograd_weight_grad_row(const float* mprod, const WinogradGeometry& g, int64_t o,
                              int64_t xi_stride, float* out) {
  using Vec = Lanes<float, L>;
  using V = typename Vec::V;
  using F = WinogradF4<V>;
  constexpr int a = WinogradGeometry::a;
  const int64_t Cp = g.Cp;
  const float* in = mprod + o * Cp;
  for (int64_t c = 0; c < Cp; c += L) {
    V rows[3][a];  // G^T M: rows[i][l] = sum_k G^T[i, k] M[k, l]
    transform_columns(
        [&](int k, int l) { return Vec::load(in + (k * a + l) * xi_stride + c); }, F::weight_grad,
        rows);
#pragma GCC unroll 4
    for (int i = 0; i < 3; ++i) {
      V r[3];
      F::weight_grad(rows[i], r);  // (G^T M) G
#pragma GCC unroll 4
      for (int j = 0; j < 3; ++j) Vec::store(out + (i * 3 + j) * Cp + c, r[j]);
    }
  }
}

template <int L>
WinogradKernels winograd_kernels_for() {
  return {L, winograd_input_row<L>, winograd_output_row<L>, winograd_output_grad_row<L>,
          winograd_weight_grad_row<L>};
}

}  // namespace

// Defined by the ISA translation units (call only when active_simd_level() allows).
const WinogradKernels& winograd_kernels_avx2();
const WinogradKernels& winograd_kernels_avx512();

}  // namespace fastnn::cpu

namespace fastnn::cpu::conv2d_detail {

// Whether a layer can run by Winograd: a 3x3 kernel at stride 1, dilation 1, one group, padding
// 0..2 (the transforms are written for that kernel; more padding than the kernel's span only
// adds tiles of zeros). Whether it pays is conv2d_plan.cpp's call.
bool winograd_applies(const Conv2dShape& s);

// The forward pass by F(4x4, 3x3) (conv2d.cpp's run_forward, for the plan's winograd method):
// y = relu?(conv(x, weight) + bias), y NCHW, every element written.
void winograd_forward(const float* x, const float* weight, const float* bias /* nullable */,
                      float* y, bool relu, const Conv2dShape& s);

// The weight gradient by F(4x4, 3x3) (conv2d_backward.cpp, for the plan's winograd method):
// dweight (+)= the sum over the batch (accumulate: +=, else =). The batch is summed in chunks
// fixed by the shape, then the chunks in order: the result does not depend on the thread count.
void winograd_weight_grad(const float* dy, const float* x, float* dweight, bool accumulate,
                          const Conv2dShape& s);

}  // namespace fastnn::cpu::conv2d_detail
