// Direct 2-D convolution for layers with few taps or few output channels (LeNet's layers, a
// network's first layer), stride 1, any padding and dilation: no column matrix, no GEMM.
// Written once over the vector width L (elements) and instantiated under each ISA's flags
// (conv2d_direct.cpp: portable; conv2d_direct_avx2.cpp, conv2d_direct_avx512.cpp), where the
// fixed-length loops below become one vector operation per L lanes.
//
// Include only from those translation units: the templates have internal linkage, so each one
// keeps its own ISA's code (as gemm_simd.h).
//
// The kernels work on one image whose planes are padded (cpu/conv2d_columns.cpp prepares them):
//   xpad[c, h, w] = x[c, h - ph, w - pw] inside, 0 in the border; planes of Hp x Wp, followed
//   by at least max(L, RW) + (kw-1)*dw zeros (rows are read up to a vector, or the pixel-major
//   forward's run of RW pixels, past their end).
// Output channels go in blocks of OB (8, or 6 where that wastes fewer lanes: LeNet's 6
// channels), so OB vector accumulators per lane block, with the weights re-laid out per block:
// wblock[g][b][k][u] = weight[g*Og + b*OB + u, k] for the taps k = (c, p, q) of a group (Kg of
// them), zero for u past the group's channels.
//
//   forward:      y[o, i, j] = relu?(sum_k wblock[.., k, u] * xpad[c, i + p*dh, j + q*dw]
//                                   + bias[o])
//                 for L output pixels of a row at once; taps in k order.
//   weight grad:  dwpart[g][b][k][u][l] += sum_{i, j = l mod L} dy[g*Og + b*OB + u, i, j]
//                                                    * xpad[c, i + p*dh, j + q*dw]
//                 over dy re-laid out per block as dyw[g][b][i][j / L][u][j % L] (the OB
//                 channels' vectors of the same pixels side by side, at fixed offsets from one
//                 pointer), rows of `pitch` = W_out rounded up to L, zero past W_out (the pixels
//                 there are masked out too) and for u past the group's channels. The sums
//                 stay L lanes wide across images (the caller adds the lanes once, at the
//                 end, in a fixed order), and QB taps of a kernel row share each load of dy:
//                 per L pixels, OB + QB loads feed OB * QB FMAs.
//   forward, pixel-major (narrow planes): the same sums with the L lanes holding L output
//                 channels instead of L pixels (see direct_forward_image_pixel_major).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/shapes/conv2d.h"

namespace fastnn::cpu {

// The per-ISA entry points (cpu/conv2d.cpp and conv2d_backward.cpp call them through the table
// for the active level).
template <class T>
struct Conv2dDirectKernels {
  struct ForBlock {
    int width;  // OB
    void (*forward_image)(const T* xpad, const T* wblock, const T* bias, T* y, bool relu,
                          const Conv2dShape& s);
    // dy_image: the image's dy (C_out, H_out, W_out); dyw: direct_grad_rows_size scratch.
    void (*weight_grad_image)(const T* xpad, const T* dy_image, T* dyw, T* dwpart,
                              const Conv2dShape& s);
  };
  int lanes;  // L
  ForBlock blocks[2];  // OB = 8 and 6
  // The forward with the output channels in the lanes (below), for planes narrower than a
  // vector and channels that fill whole vectors: wvec = wblock with OB = L; writes the
  // image's product pixel-major, prod[pixel * pitch + column] with pitch = groups * blocks * L
  // (each group's Og rounded up to L).
  void (*forward_image_pixel_major)(const T* xpad, const T* wvec, const T* bias, T* prod,
                                    bool relu, const Conv2dShape& s);
  int pixel_run;  // RW: pixels of a row per pass of the pixel-major forward
};

// Elements of the weight gradient's re-laid-out dy (below) for L lanes and blocks of OB.
inline int64_t direct_grad_rows_size(const Conv2dShape& s, int L, int OB) {
  const int64_t blocks = (s.out_channels_per_group() + OB - 1) / OB;
  const int64_t pitch = (s.out_width + L - 1) / L * L;
  return s.groups * blocks * OB * s.out_height * pitch;
}

// The kernels for the SIMD level in use (common/cpu_features.h).
template <class T>
const Conv2dDirectKernels<T>& conv2d_direct_kernels();

namespace {

// L lanes as one value: GCC/Clang vector extensions, lowered to the translation unit's ISA (one
// zmm for 16 floats under AVX-512), so the accumulators below live in registers. Loads and
// stores go through memcpy (unaligned, and no aliasing assumptions).
template <class T, int L>
struct Lanes {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  static inline V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  // Lane l of v where l < n, else 0.
  static inline V first(V v, int64_t n) {
    V index;
    for (int l = 0; l < L; ++l) index[l] = T(l);
    return index < T(n) ? v : V{};
  }
  // relu?(v + bias); max(v, 0) keeps NaN, as std::max(v, 0) does.
  static inline V finish(V v, T bias, bool relu) {
    v += bias;
    return relu ? (v < T(0) ? V{} : v) : v;
  }
};

// All accumulators to zero.
template <class V, int A, int B>
inline __attribute__((always_inline)) void zero_accumulators(V (&acc)[A][B]) {
#pragma GCC unroll 32
  for (int a = 0; a < A; ++a)
#pragma GCC unroll 32
    for (int b = 0; b < B; ++b) acc[a][b] = V{};
}

// The R output rows from i on; a last group with fewer rows repeats its last row in the spare
// slots (computed, not stored).
template <int R>
inline void clamped_rows(int64_t i, int64_t H_out, int64_t (&rows)[R]) {
  for (int r = 0; r < R; ++r) rows[r] = std::min(i + r, H_out - 1);
}

// Sizes both kernels walk by: padded planes, a group's channels and taps, channel blocks.
struct DirectGeometry {
  int64_t Wp, plane, Og, Cg, Kg, blocks;
  DirectGeometry(const Conv2dShape& s, int OB)
      : Wp(s.width + 2 * s.pad_w),
        plane((s.height + 2 * s.pad_h) * Wp),
        Og(s.out_channels_per_group()),
        Cg(s.in_channels_per_group()),
        Kg(s.col_rows_per_group()),
        blocks((Og + OB - 1) / OB) {}
};

// The kernel rows [begin, end) that read a real input row (not the padding) for at least one
// of the output rows first..last (stride 1). The others read only zeros of the padded image and
// are skipped: they would add exact zeros. (Where padding is wide next to a small plane, as in
// the input gradient of LeNet's second layer, dy padded by 4 around 10 x 10, that is over a
// quarter of the taps.)
struct KernelRows {
  int64_t begin, end;
};
inline KernelRows kernel_rows_inside(const Conv2dShape& s, int64_t first, int64_t last) {
  const int64_t dh = s.dilation_h;
  const int64_t begin = std::max<int64_t>(0, (s.pad_h - last + dh - 1) / dh);
  const int64_t end = std::min<int64_t>(s.kernel_h, (s.pad_h + s.height - first + dh - 1) / dh);
  return {std::min(begin, end), end};
}

// R output rows at once share each weight broadcast (R = 2 where the registers hold R x OB
// accumulators, direct_rows_per_pass: for 8 channels under AVX-512 the loads per FMA drop from
// 9/8 to 10/16, under the FMA ports' rate). Kernel rows that read only padding are skipped.
template <class T, int L, int R, int OB>
void direct_forward_image(const T* xpad, const T* wblock, const T* bias, T* y, bool relu,
                          const Conv2dShape& s) {
  using V = typename Lanes<T, L>::V;
  const DirectGeometry d(s, OB);
  const int64_t Wp = d.Wp, plane = d.plane, Og = d.Og, Cg = d.Cg, Kg = d.Kg, blocks = d.blocks;
  const int64_t H_out = s.out_height, W_out = s.out_width, P = s.out_plane();
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t b = 0; b < blocks; ++b) {
      const T* w = wblock + (g * blocks + b) * Kg * OB;
      const T* xg = xpad + g * Cg * plane;
      const int64_t o0 = g * Og + b * OB;
      const int ob = static_cast<int>(std::min<int64_t>(OB, Og - b * OB));
      for (int64_t i = 0; i < H_out; i += R) {
        int64_t rows[R];
        clamped_rows(i, H_out, rows);
        const KernelRows taps = kernel_rows_inside(s, rows[0], rows[R - 1]);
        for (int64_t j0 = 0; j0 < W_out; j0 += L) {
          V acc[R][OB];
          zero_accumulators(acc);
          for (int64_t c = 0; c < Cg; ++c) {
            const T* wk = w + (c * s.kernel_h + taps.begin) * s.kernel_w * OB;
            for (int64_t p = taps.begin; p < taps.end; ++p) {
              const T* base = xg + c * plane + p * s.dilation_h * Wp + j0;
              for (int64_t q = 0; q < s.kernel_w; ++q, wk += OB) {
                V src[R];
#pragma GCC unroll 4
                for (int r = 0; r < R; ++r)
                  src[r] = Lanes<T, L>::load(base + rows[r] * Wp + q * s.dilation_w);
#pragma GCC unroll 8
                for (int u = 0; u < OB; ++u) {
                  const T wu = wk[u];
#pragma GCC unroll 4
                  for (int r = 0; r < R; ++r) acc[r][u] += wu * src[r];
                }
              }
            }
          }
          const int64_t n = std::min<int64_t>(L, W_out - j0);
          for (int r = 0; r < R && i + r < H_out; ++r)
            for (int u = 0; u < ob; ++u) {
              T* dst = y + (o0 + u) * P + (i + r) * W_out + j0;
              const V v = Lanes<T, L>::finish(acc[r][u], bias ? bias[o0 + u] : T(0), relu);
              if (n == L) {
                Lanes<T, L>::store(dst, v);
              } else {
                T out[L];
                Lanes<T, L>::store(out, v);
                for (int64_t l = 0; l < n; ++l) dst[l] = out[l];
              }
            }
        }
      }
    }
}

// L pixels at j0 of a row for QB taps: acc[t][u] += dy[u] * x[t]. `n` < L masks the row's last
// lanes of x to 0 (not just multiplied by dy's zeros), so an Inf past W_out cannot become NaN.
template <class T, int L, int OB, int QB>
inline __attribute__((always_inline)) void direct_weight_grad_pixels(
    const T* x, int64_t dw, const T* dy, int64_t n, typename Lanes<T, L>::V (&acc)[QB][OB]) {
  using V = typename Lanes<T, L>::V;
  V xv[QB];
#pragma GCC unroll 8
  for (int t = 0; t < QB; ++t) {
    xv[t] = Lanes<T, L>::load(x + t * dw);
    if (n < L) xv[t] = Lanes<T, L>::first(xv[t], n);
  }
#pragma GCC unroll 8
  for (int u = 0; u < OB; ++u) {
    const V d = Lanes<T, L>::load(dy + u * L);
#pragma GCC unroll 8
    for (int t = 0; t < QB; ++t) acc[t][u] += d * xv[t];
  }
}

// QB taps (p, q0 .. q0 + QB - 1) of one input channel over the whole image: the accumulators
// stay in registers across all pixels, then go into the lane partials once.
template <class T, int L, int OB, int QB>
void direct_weight_grad_taps(const T* src, int64_t Wp, int64_t dw, const T* dy_block,
                             int64_t pitch, const Conv2dShape& s, T* part) {
  using V = typename Lanes<T, L>::V;
  const int64_t W_out = s.out_width, full = W_out / L * L;
  V acc[QB][OB];
  zero_accumulators(acc);
  for (int64_t i = 0; i < s.out_height; ++i) {
    const T* x_row = src + i * Wp;
    const T* dy_row = dy_block + i * pitch * OB;
    for (int64_t j0 = 0; j0 < full; j0 += L)
      direct_weight_grad_pixels<T, L, OB, QB>(x_row + j0, dw, dy_row + j0 * OB, L, acc);
    if (full < W_out)
      direct_weight_grad_pixels<T, L, OB, QB>(x_row + full, dw, dy_row + full * OB, W_out - full,
                                              acc);
  }
  for (int t = 0; t < QB; ++t)
    for (int u = 0; u < OB; ++u) {
      T* lanes = part + (t * OB + u) * L;
      Lanes<T, L>::store(lanes, Lanes<T, L>::load(lanes) + acc[t][u]);
    }
}

// A kernel row's last taps, fewer than QB: the instance for exactly that many.
template <class T, int L, int OB, int QB>
void direct_weight_grad_tap_run(int64_t taps, const T* src, int64_t Wp, int64_t dw,
                                const T* dy_block, int64_t pitch, const Conv2dShape& s,
                                T* part) {
  if constexpr (QB > 1) {
    if (taps < QB) {
      direct_weight_grad_tap_run<T, L, OB, QB - 1>(taps, src, Wp, dw, dy_block, pitch, s, part);
      return;
    }
  }
  direct_weight_grad_taps<T, L, OB, QB>(src, Wp, dw, dy_block, pitch, s, part);
}

// The forward with L output channels in the lanes of each accumulator and RW pixels of R rows
// at once: per tap one vector load of the weights feeds R * RW FMAs, each with one pixel
// broadcast from the padded image. Every lane is a real output channel where Og fills whole
// vectors, which is what LeNet's second layer (16 channels over 10-pixel rows) needs: there the
// row-vector forward above keeps 10 of 16 lanes busy. Pixels past the row's end (a row's last
// run) and rows past the image's end are computed from readable padding and not stored.
//   prod[(i * W_out + j) * pitch + b*L + l] = relu?(sum_k wvec[g][b][k][l] * xpad[c, i + p*dh,
//                                              j + q*dw] + bias[o]),  pitch = blocks * L
template <class T, int L, int R, int RW>
void direct_forward_image_pixel_major(const T* xpad, const T* wvec, const T* bias, T* prod,
                                      bool relu, const Conv2dShape& s) {
  using V = typename Lanes<T, L>::V;
  const DirectGeometry d(s, L);
  const int64_t H_out = s.out_height, W_out = s.out_width, pitch = s.groups * d.blocks * L;
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t b = 0; b < d.blocks; ++b) {
      const T* w = wvec + (g * d.blocks + b) * d.Kg * L;
      const T* xg = xpad + g * d.Cg * d.plane;
      const int64_t o0 = g * d.Og + b * L, column = (g * d.blocks + b) * L;
      V bias_v{};
      for (int l = 0; l < L; ++l) bias_v[l] = bias && b * L + l < d.Og ? bias[o0 + l] : T(0);
      for (int64_t i = 0; i < H_out; i += R) {
        int64_t rows[R];
        clamped_rows(i, H_out, rows);
        for (int64_t j0 = 0; j0 < W_out; j0 += RW) {
          V acc[R][RW];
          zero_accumulators(acc);
          const T* wk = w;
          for (int64_t c = 0; c < d.Cg; ++c)
            for (int64_t p = 0; p < s.kernel_h; ++p) {
              const T* base = xg + c * d.plane + p * s.dilation_h * d.Wp + j0;
              for (int64_t q = 0; q < s.kernel_w; ++q, wk += L) {
                const V wv = Lanes<T, L>::load(wk);
#pragma GCC unroll 4
                for (int r = 0; r < R; ++r) {
                  const T* x = base + rows[r] * d.Wp + q * s.dilation_w;
#pragma GCC unroll 32
                  for (int jj = 0; jj < RW; ++jj) acc[r][jj] += x[jj] * wv;
                }
              }
            }
          for (int r = 0; r < R && i + r < H_out; ++r)
            for (int jj = 0; jj < RW && j0 + jj < W_out; ++jj) {
              V v = acc[r][jj] + bias_v;
              if (relu) v = v < T(0) ? V{} : v;
              Lanes<T, L>::store(prod + ((i + r) * W_out + j0 + jj) * pitch + column, v);
            }
        }
      }
    }
}

// dyw[g][b][i][j / L][u][j % L] = dy[g*Og + b*OB + u, i, j], zero past W_out and past the
// group's channels (the layout in the file comment), from one image's dy.
template <class T, int L, int OB>
void direct_grad_rows(const T* dy, const Conv2dShape& s, T* dyw) {
  using V = typename Lanes<T, L>::V;
  const DirectGeometry d(s, OB);
  const int64_t H_out = s.out_height, W_out = s.out_width, P = s.out_plane();
  const int64_t pitch = (W_out + L - 1) / L * L, full = W_out / L * L;
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t o = 0; o < d.blocks * OB; ++o) {
      T* dst = dyw + (g * d.blocks + o / OB) * OB * H_out * pitch + (o % OB) * L;
      if (o >= d.Og) {
        for (int64_t i = 0; i < H_out; ++i)
          for (int64_t j0 = 0; j0 < pitch; j0 += L) Lanes<T, L>::store(dst + (i * pitch + j0) * OB, V{});
        continue;
      }
      const T* src = dy + (g * d.Og + o) * P;
      for (int64_t i = 0; i < H_out; ++i) {
        const T* row = src + i * W_out;
        T* out = dst + i * pitch * OB;
        for (int64_t j0 = 0; j0 < full; j0 += L)
          Lanes<T, L>::store(out + j0 * OB, Lanes<T, L>::load(row + j0));
        if (full == W_out) continue;
        if (i * W_out + full + L <= P) {  // a whole vector within the plane, keep the first n
          Lanes<T, L>::store(out + full * OB,
                             Lanes<T, L>::first(Lanes<T, L>::load(row + full), W_out - full));
        } else {  // near the plane's end, which may end the array
          T tail[L] = {};
          for (int64_t j = full; j < W_out; ++j) tail[j - full] = row[j];
          std::memcpy(out + full * OB, tail, sizeof(tail));
        }
      }
    }
}

template <class T, int L, int OB, int QB>
void direct_weight_grad_image(const T* xpad, const T* dy_image, T* dyw, T* dwpart,
                              const Conv2dShape& s) {
  direct_grad_rows<T, L, OB>(dy_image, s, dyw);
  const DirectGeometry d(s, OB);
  const int64_t pitch = (s.out_width + L - 1) / L * L;
  const int64_t dy_plane = s.out_height * pitch, dw = s.dilation_w;
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t b = 0; b < d.blocks; ++b) {
      const T* dy_block = dyw + (g * d.blocks + b) * OB * dy_plane;
      const T* xg = xpad + g * d.Cg * d.plane;
      T* part = dwpart + (g * d.blocks + b) * d.Kg * OB * L;
      for (int64_t c = 0; c < d.Cg; ++c)
        for (int64_t p = 0; p < s.kernel_h; ++p)
          for (int64_t q = 0; q < s.kernel_w; q += QB) {
            const T* src = xg + c * d.plane + p * s.dilation_h * d.Wp + q * dw;
            const int64_t k = (c * s.kernel_h + p) * s.kernel_w + q;
            direct_weight_grad_tap_run<T, L, OB, QB>(std::min<int64_t>(QB, s.kernel_w - q), src,
                                                     d.Wp, dw, dy_block, pitch, s,
                                                     part + k * OB * L);
          }
    }
}

// How many taps the weight gradient takes per pass with `registers` vector registers: QB x OB
// accumulators, QB pixel vectors and one of dy.
constexpr int direct_taps_per_pass(int registers, int OB) {
  return (registers - 1) / (OB + 1) > 1 ? (registers - 1) / (OB + 1) : 1;
}

// How many output rows the row-vector forward takes per pass, up to R, with `registers` vector
// registers: rows x OB accumulators, one pixel vector per row and one weight broadcast. Under
// AVX2 (16 registers) blocks of 6 take 2 rows (15 registers): per tap 2 loads and 6 broadcasts
// feed 12 FMAs in 12 independent chains, where one row had 7 loads per 6 FMAs and too few
// chains to hide the FMA latency (LeNet's first layer and its second layer's input gradient).
constexpr int direct_rows_per_pass(int registers, int OB, int R) {
  const int fit = (registers - 1) / (OB + 1);
  return fit < 1 ? 1 : (fit < R ? fit : R);
}

// L lanes per vector, `registers` vector registers; the pixel-major forward takes R rows of RW
// pixels per pass (R x RW accumulators).
template <class T, int L, int R, int registers, int RW = (registers - 8) / R>
Conv2dDirectKernels<T> direct_kernels() {
  return {L,
          {{8, direct_forward_image<T, L, direct_rows_per_pass(registers, 8, 2), 8>,
            direct_weight_grad_image<T, L, 8, direct_taps_per_pass(registers, 8)>},
           {6, direct_forward_image<T, L, direct_rows_per_pass(registers, 6, 2), 6>,
            direct_weight_grad_image<T, L, 6, direct_taps_per_pass(registers, 6)>}},
          direct_forward_image_pixel_major<T, L, R, RW>, RW};
}

}  // namespace

// Defined by the ISA translation units (call only when active_simd_level() allows).
const Conv2dDirectKernels<float>& conv2d_direct_kernels_avx2_float();
const Conv2dDirectKernels<double>& conv2d_direct_kernels_avx2_double();
const Conv2dDirectKernels<float>& conv2d_direct_kernels_avx512_float();
const Conv2dDirectKernels<double>& conv2d_direct_kernels_avx512_double();

}  // namespace fastnn::cpu
