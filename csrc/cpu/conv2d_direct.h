// Direct 2-D convolution for layers with few taps or few output channels (LeNet's layers, a
// network's first layer), stride 1, any padding and dilation: no column matrix, no GEMM.
// Written once over the vector width L (elements) and instantiated under each ISA's flags
// (conv2d_direct.cpp: portable; conv2d_direct_avx2.cpp, conv2d_direct_avx512.cpp), where the
// fixed-length loops below become one vector operation per L lanes.
//
// Include only from those translation units: the templates have internal linkage, so each one
// keeps its own ISA's code (as gemm_simd.h).
//
// Both kernels work on one image whose planes are padded (cpu/conv2d.cpp prepares them):
//   xpad[c, h, w] = x[c, h - ph, w - pw] inside, 0 in the border; planes of Hp x Wp, followed
//   by at least L + (kw-1)*dw zeros (rows are read up to a vector past their end).
// Output channels go in blocks of OB = 8 (so 8 vector accumulators per lane block), with the
// weights re-laid out per block: wblock[g][b][k][u] = weight[g*Og + b*OB + u, k] for the taps
// k = (c, p, q) of a group (Kg of them), zero for u past the group's channels.
//
//   forward:      y[o, i, j] = relu?(sum_k wblock[.., k, u] * xpad[c, i + p*dh, j + q*dw]
//                                   + bias[o])
//                 for L output pixels of a row at once; taps in k order.
//   weight grad:  dwblock[g][b][k][u] += sum_{i, j} dyw[g][b][u][i, j]
//                                                    * xpad[c, i + p*dh, j + q*dw]
//                 over dy laid out in rows of `pitch` = W_out rounded up to L, zero past W_out
//                 (the pixels there are masked out too), and zero for u past the group's
//                 channels. Lanes are summed in a fixed order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/shapes/conv2d.h"

namespace fastnn::cpu {

// The per-ISA entry points (cpu/conv2d.cpp calls them through the table for the active level).
template <class T>
struct Conv2dDirectKernels {
  int lanes;  // L
  void (*forward_image)(const T* xpad, const T* wblock, const T* bias, T* y, bool relu,
                        const Conv2dShape& s);
  void (*weight_grad_image)(const T* xpad, const T* dyw, int64_t pitch, T* dwblock,
                            const Conv2dShape& s);
};

constexpr int kConv2dDirectBlock = 8;  // OB

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

// Sizes both kernels walk by: padded planes, a group's channels and taps, channel blocks.
struct DirectGeometry {
  int64_t Wp, plane, Og, Cg, Kg, blocks;
  explicit DirectGeometry(const Conv2dShape& s)
      : Wp(s.width + 2 * s.pad_w),
        plane((s.height + 2 * s.pad_h) * Wp),
        Og(s.out_channels_per_group()),
        Cg(s.in_channels_per_group()),
        Kg(s.col_rows_per_group()),
        blocks((Og + kConv2dDirectBlock - 1) / kConv2dDirectBlock) {}
};

// R output rows at once share each weight broadcast (R = 2 where 32 vector registers hold the
// 2 x 8 accumulators: the loads per FMA drop from 9/8 to 10/16, under the FMA ports' rate).
template <class T, int L, int R>
void direct_forward_image(const T* xpad, const T* wblock, const T* bias, T* y, bool relu,
                          const Conv2dShape& s) {
  constexpr int OB = kConv2dDirectBlock;
  using V = typename Lanes<T, L>::V;
  const DirectGeometry d(s);
  const int64_t Wp = d.Wp, plane = d.plane, Og = d.Og, Cg = d.Cg, Kg = d.Kg, blocks = d.blocks;
  const int64_t H_out = s.out_height, W_out = s.out_width, P = s.out_plane();
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t b = 0; b < blocks; ++b) {
      const T* w = wblock + (g * blocks + b) * Kg * OB;
      const T* xg = xpad + g * Cg * plane;
      const int64_t o0 = g * Og + b * OB;
      const int ob = static_cast<int>(std::min<int64_t>(OB, Og - b * OB));
      for (int64_t i = 0; i < H_out; i += R) {
        // A last group with fewer rows recomputes its last row in the spare slots (not stored).
        int64_t rows[R];
        for (int r = 0; r < R; ++r) rows[r] = std::min(i + r, H_out - 1);
        for (int64_t j0 = 0; j0 < W_out; j0 += L) {
          V acc[R][OB];
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
            for (int u = 0; u < OB; ++u) acc[r][u] = V{};
          const T* wk = w;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t p = 0; p < s.kernel_h; ++p) {
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

template <class T, int L>
void direct_weight_grad_image(const T* xpad, const T* dyw, int64_t pitch, T* dwblock,
                              const Conv2dShape& s) {
  constexpr int OB = kConv2dDirectBlock;
  using V = typename Lanes<T, L>::V;
  const DirectGeometry d(s);
  const int64_t Wp = d.Wp, plane = d.plane, Cg = d.Cg, Kg = d.Kg, blocks = d.blocks;
  const int64_t H_out = s.out_height, W_out = s.out_width, dy_plane = H_out * pitch;
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t b = 0; b < blocks; ++b) {
      const T* dy_block = dyw + (g * blocks + b) * OB * dy_plane;
      const T* xg = xpad + g * Cg * plane;
      T* dw = dwblock + (g * blocks + b) * Kg * OB;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t p = 0; p < s.kernel_h; ++p)
          for (int64_t q = 0; q < s.kernel_w; ++q) {
            V acc[OB];
#pragma GCC unroll 8
            for (int u = 0; u < OB; ++u) acc[u] = V{};
            for (int64_t i = 0; i < H_out; ++i) {
              const T* src_row = xg + c * plane + (i + p * s.dilation_h) * Wp + q * s.dilation_w;
              const T* dy_row = dy_block + i * pitch;
              int64_t j0 = 0;
              for (; j0 + L <= W_out; j0 += L) {
                const V src = Lanes<T, L>::load(src_row + j0);
#pragma GCC unroll 8
                for (int u = 0; u < OB; ++u)
                  acc[u] += Lanes<T, L>::load(dy_row + u * dy_plane + j0) * src;
              }
              if (j0 < W_out) {
                // The row's last lanes: pixels past W_out are masked to 0 (not just multiplied
                // by dy's zeros), so an Inf there cannot turn into NaN.
                const V src = Lanes<T, L>::first(Lanes<T, L>::load(src_row + j0), W_out - j0);
#pragma GCC unroll 8
                for (int u = 0; u < OB; ++u)
                  acc[u] += Lanes<T, L>::load(dy_row + u * dy_plane + j0) * src;
              }
            }
            T* dwk = dw + ((c * s.kernel_h + p) * s.kernel_w + q) * OB;
            for (int u = 0; u < OB; ++u) {
              T lanes[L];
              std::memcpy(lanes, &acc[u], sizeof(lanes));
              T sum = T(0);
              for (int l = 0; l < L; ++l) sum += lanes[l];
              dwk[u] += sum;
            }
          }
    }
}

// L lanes per vector, R output rows per pass of the forward.
template <class T, int L, int R>
Conv2dDirectKernels<T> direct_kernels() {
  return {L, direct_forward_image<T, L, R>, direct_weight_grad_image<T, L>};
}

}  // namespace

// Defined by the ISA translation units (call only when active_simd_level() allows).
const Conv2dDirectKernels<float>& conv2d_direct_kernels_avx2_float();
const Conv2dDirectKernels<double>& conv2d_direct_kernels_avx2_double();
const Conv2dDirectKernels<float>& conv2d_direct_kernels_avx512_float();
const Conv2dDirectKernels<double>& conv2d_direct_kernels_avx512_double();

}  // namespace fastnn::cpu
