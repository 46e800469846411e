// The SIMD GEMM micro-kernel and panel packing, written once over a vector-traits type
// (simd_vec.h) and instantiated by gemm_avx2.cpp (ymm) and gemm_avx512.cpp (zmm) under their
// own -m flags.
//
// Include only from those translation units (internal linkage, as simd_vec.h explains).
//
// Tile: MR rows x NV vectors of C stay in MR * NV accumulator registers for the whole K loop.
// Per k step the kernel loads NV vectors of the packed B panel and broadcasts MR scalars of A
// (broadcasts from memory are pure load-port work, leaving the shuffle port free), then issues
// MR * NV independent FMAs: with MR * NV >= 2 FMA ports x 4 cycles latency the FMA units never
// wait. The tile is written once, after K, applying alpha, beta, the biases and ReLU in
// registers (gemm_kernel.h).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "cpu/gemm_kernel.h"
#include "cpu/gemm_pack.h"
#include "cpu/simd_vec.h"

namespace fastnn::cpu {
namespace {

// ---- The micro-kernel ----------------------------------------------------------------------

template <class Vec, int MR, int NV>
struct SimdMicroKernel {
  using T = typename Vec::T;
  using V = typename Vec::V;
  static constexpr int L = Vec::lanes;
  static constexpr int NR = NV * L;

  // Where the kernel reads A(i, p): column panels, A(i, p) at a[p * a_col_stride + i] (packed,
  // or op(A) stored transposed)...
  struct ColumnPanelA {
    const T* a;
    int64_t col_stride;
    FASTNN_INLINE T at(int i) const { return a[i]; }
    FASTNN_INLINE void next() { a += col_stride; }
  };

  // ... or row-major op(A) read in place, A(i, p) at a[i * row_stride + p]. Rows are addressed
  // in groups of three from one pointer each (base, base + stride, base + 2 * stride are single
  // x86 addressing modes), so MR rows need MR / 3 pointer registers, not MR.
  struct RowMajorA {
    static constexpr int groups = (MR + 2) / 3;
    const T* group[groups];
    int64_t row_stride;
    RowMajorA(const T* a, int64_t stride) : row_stride(stride) {
#pragma GCC unroll 16
      for (int g = 0; g < groups; ++g) group[g] = a + 3 * g * stride;
    }
    FASTNN_INLINE T at(int i) const { return group[i / 3][(i % 3) * row_stride]; }
    FASTNN_INLINE void next() {
#pragma GCC unroll 16
      for (int g = 0; g < groups; ++g) ++group[g];
    }
  };

  // ... or an indirect A, A(i, p) at a[offsets[p] + i] (column panels that start anywhere).
  struct IndirectColumnA {
    const T* a;
    const int64_t* offsets;
    FASTNN_INLINE T at(int i) const { return a[*offsets + i]; }
    FASTNN_INLINE void next() { ++offsets; }
  };

  // ... or row-major A whose columns are picked by offsets, A(i, p) at
  // a[i * row_stride + offsets[p]] (a convolution's pixel rows read in place from padded
  // planes, skipping the padding between rows): per k step each group pointer moves to the
  // next offset.
  struct IndirectRowMajorA {
    static constexpr int groups = (MR + 2) / 3;
    const T* group[groups];
    const int64_t* offsets;
    int64_t row_stride;
    IndirectRowMajorA(const T* a, int64_t stride, const int64_t* k_offsets)
        : offsets(k_offsets), row_stride(stride) {
#pragma GCC unroll 16
      for (int g = 0; g < groups; ++g) group[g] = a + 3 * g * stride;
    }
    FASTNN_INLINE T at(int i) const { return group[i / 3][(i % 3) * row_stride + *offsets]; }
    FASTNN_INLINE void next() { ++offsets; }
  };

  // Where it reads B(p, j): all NR columns (a full panel)...
  struct FullB {
    const T* b;
    int64_t row_stride;
    FASTNN_INLINE V load(int v) const { return Vec::load(b + v * L); }
    FASTNN_INLINE void next() { b += row_stride; }
  };

  // ... or only the first n columns (a ragged panel, or B read in place up to its last column).
  struct MaskedB {
    const T* b;
    int64_t row_stride;
    int n;
    FASTNN_INLINE V load(int v) const { return load_first<Vec>(b + v * L, n - v * L); }
    FASTNN_INLINE void next() { b += row_stride; }
  };

  template <class ARows, class BCols>
  static FASTNN_INLINE void accumulate(int64_t kc, ARows a, BCols b, V (&acc)[MR][NV]) {
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; ++p) {
      V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = b.load(v);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) {
        const V ai = Vec::set1(a.at(i));
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] = Vec::fma(ai, bv[v], acc[i][v]);
      }
      a.next();
      b.next();
    }
  }

  template <class BCols>
  static FASTNN_INLINE void accumulate(int64_t kc, const T* a, int64_t a_row_stride,
                                       int64_t a_col_stride, const int64_t* a_k_offsets,
                                       BCols b, V (&acc)[MR][NV]) {
    if (a_k_offsets && a_row_stride == 1) {
      accumulate(kc, IndirectColumnA{a, a_k_offsets}, b, acc);
    } else if (a_k_offsets) {
      accumulate(kc, IndirectRowMajorA(a, a_row_stride, a_k_offsets), b, acc);
    } else if (a_row_stride == 1) {
      accumulate(kc, ColumnPanelA{a, a_col_stride}, b, acc);
    } else {
      accumulate(kc, RowMajorA(a, a_row_stride), b, acc);
    }
  }

  // A whole tile with alpha == 1 and beta 0 or 1 (every K block of a layer's product) as a
  // straight run of vector operations: absent biases add zero and no ReLU clamps at -inf, in
  // the general path's order, so results match it bit for bit. The general path's per-vector
  // tests cost ~200 cycles a tile, which matters when K is small (an im2col product with
  // K = 25 spends 300 cycles on its FMAs).
  static FASTNN_INLINE bool store_full_tile(V (&acc)[MR][NV], const GemmTileOutput<T>& o) {
    if (o.m_valid != MR || o.n_valid != NR || o.alpha != T(1) || (o.beta != T(0) && o.beta != T(1)))
      return false;
    const bool read_c = o.beta != T(0);
    if (!o.bias_col && !o.bias_row && !o.relu) {
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          T* c = o.c + i * o.ldc + v * L;
          Vec::store(c, read_c ? Vec::add(acc[i][v], Vec::load(c)) : acc[i][v]);
        }
      return true;
    }
    V bias_col[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      bias_col[v] = o.bias_col ? Vec::load(o.bias_col + v * L) : Vec::zero();
    const V floor = o.relu ? Vec::zero() : Vec::set1(-std::numeric_limits<T>::infinity());
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const V bias_row = o.bias_row ? Vec::set1(o.bias_row[i]) : Vec::zero();
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        T* c = o.c + i * o.ldc + v * L;
        V r = read_c ? Vec::add(acc[i][v], Vec::load(c)) : acc[i][v];
        Vec::store(c, Vec::max(floor, Vec::add(Vec::add(r, bias_col[v]), bias_row)));
      }
    }
    return true;
  }

  static FASTNN_INLINE void store_tile(V (&acc)[MR][NV], const GemmTileOutput<T>& o) {
    if (store_full_tile(acc, o)) return;
    const V alpha = Vec::set1(o.alpha), beta = Vec::set1(o.beta);
    const bool scale = o.alpha != T(1), read_c = o.beta != T(0), beta_one = o.beta == T(1);
    V bias_col[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      bias_col[v] =
          o.bias_col ? load_first<Vec>(o.bias_col + v * L, o.n_valid - v * L) : Vec::zero();
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      if (i >= o.m_valid) break;
      T* c_row = o.c + i * o.ldc;
      const V bias_row = o.bias_row ? Vec::set1(o.bias_row[i]) : Vec::zero();
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        const int n = o.n_valid - v * L;
        if (n <= 0) break;
        V r = acc[i][v];
        if (scale) r = Vec::mul(r, alpha);
        if (read_c) {
          const V old = load_first<Vec>(c_row + v * L, n);
          r = beta_one ? Vec::add(r, old) : Vec::fma(beta, old, r);
        }
        if (o.bias_col) r = Vec::add(r, bias_col[v]);
        if (o.bias_row) r = Vec::add(r, bias_row);
        if (o.relu) r = Vec::relu(r);
        if (n >= L) {
          Vec::store(c_row + v * L, r);
        } else {
          Vec::store_n(c_row + v * L, r, n);
        }
      }
    }
  }

  static void run(int64_t kc, const T* a, int64_t a_row_stride, int64_t a_col_stride,
                  const int64_t* a_k_offsets, const T* b, int64_t b_row_stride,
                  const GemmTileOutput<T>& out) {
    V acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = Vec::zero();
    // The tile's C lines arrive while the K loop runs.
    for (int i = 0; i < out.m_valid; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(out.c + i * out.ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(out.c + i * out.ldc + NR - 1), _MM_HINT_T0);
    }
    if (out.n_valid == NR) {
      accumulate(kc, a, a_row_stride, a_col_stride, a_k_offsets, FullB{b, b_row_stride}, acc);
    } else {
      accumulate(kc, a, a_row_stride, a_col_stride, a_k_offsets,
                 MaskedB{b, b_row_stride, out.n_valid}, acc);
    }
    store_tile(acc, out);
  }
};

// ---- Packing transpose (gemm_kernel.h: GemmTransposeCopy) ---------------------------------

FASTNN_INLINE void transpose_8x8(const float* src, int64_t ld, float* out, int64_t out_stride) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * ld), r1 = _mm256_loadu_ps(src + 1 * ld);
  __m256 r2 = _mm256_loadu_ps(src + 2 * ld), r3 = _mm256_loadu_ps(src + 3 * ld);
  __m256 r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld);
  __m256 r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  r0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  r1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  r2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  r3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  r4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  r5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  r6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  r7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(out + 0 * out_stride, _mm256_permute2f128_ps(r0, r4, 0x20));
  _mm256_storeu_ps(out + 1 * out_stride, _mm256_permute2f128_ps(r1, r5, 0x20));
  _mm256_storeu_ps(out + 2 * out_stride, _mm256_permute2f128_ps(r2, r6, 0x20));
  _mm256_storeu_ps(out + 3 * out_stride, _mm256_permute2f128_ps(r3, r7, 0x20));
  _mm256_storeu_ps(out + 4 * out_stride, _mm256_permute2f128_ps(r0, r4, 0x31));
  _mm256_storeu_ps(out + 5 * out_stride, _mm256_permute2f128_ps(r1, r5, 0x31));
  _mm256_storeu_ps(out + 6 * out_stride, _mm256_permute2f128_ps(r2, r6, 0x31));
  _mm256_storeu_ps(out + 7 * out_stride, _mm256_permute2f128_ps(r3, r7, 0x31));
}

FASTNN_INLINE void transpose_4x4(const double* src, int64_t ld, double* out,
                                 int64_t out_stride) {
  const __m256d r0 = _mm256_loadu_pd(src + 0 * ld), r1 = _mm256_loadu_pd(src + 1 * ld);
  const __m256d r2 = _mm256_loadu_pd(src + 2 * ld), r3 = _mm256_loadu_pd(src + 3 * ld);
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(out + 0 * out_stride, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(out + 1 * out_stride, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(out + 2 * out_stride, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(out + 3 * out_stride, _mm256_permute2f128_pd(t1, t3, 0x31));
}

FASTNN_INLINE void transpose_block(const float* src, int64_t ld, float* out, int64_t stride) {
  transpose_8x8(src, ld, out, stride);
}
FASTNN_INLINE void transpose_block(const double* src, int64_t ld, double* out, int64_t stride) {
  transpose_4x4(src, ld, out, stride);
}

// ---- Panel packing (gemm_kernel.h: GemmPackPanel) -----------------------------------------

// Lines are source rows, read in order across all panels: whole vectors, masked at ragged ends.
template <class Vec>
void pack_rows_simd(const typename Vec::T* src, int64_t ld, int64_t count, int64_t lines,
                    int width, typename Vec::T* out) {
  using T = typename Vec::T;
  using V = typename Vec::V;
  constexpr int L = Vec::lanes;
  const int64_t panels = (count + width - 1) / width;
  for (int64_t l = 0; l < lines; ++l) {
    const T* s = src + l * ld;
    for (int64_t q = 0; q < panels; ++q) {
      T* o = out + (q * lines + l) * width;
      const int64_t n = count - q * width;  // may exceed width: then all of it is source
      for (int j = 0; j < width; j += L) {
        const V v = load_first<Vec>(s + q * width + j, n - j);
        if (width - j >= L) {
          Vec::store(o + j, v);
        } else {
          Vec::store_n(o + j, v, width - j);
        }
      }
    }
  }
}

// One panel whose lines are source columns: square register transposes (8 x 8 floats or
// 4 x 4 doubles, one 32-byte vector per source row), scalar copies for the ragged edges.
template <class T>
void pack_transposed_panel_simd(const T* src, int64_t ld, int64_t count, int64_t lines,
                                int width, T* out) {
  constexpr int64_t block = 32 / sizeof(T);
  const int64_t full_count = count / block * block, full_lines = lines / block * block;
  for (int64_t j = 0; j < full_count; j += block)
    for (int64_t l = 0; l < full_lines; l += block)
      transpose_block(src + j * ld + l, ld, out + l * width + j, width);
  pack_transposed_range(src, ld, 0, full_count, full_lines, lines, width, out);
  pack_transposed_range(src, ld, full_count, count, 0, lines, width, out);
}

template <class T>
void pack_transposed_simd(const T* src, int64_t ld, int64_t count, int64_t lines, int width,
                          T* out) {
  pack_transposed_panels(src, ld, count, lines, width, out, pack_transposed_panel_simd<T>);
}

template <class T>
void transpose_simd(const T* src, int64_t ld, int64_t rows, int64_t cols, T* out,
                    int64_t ld_out) {
  constexpr int64_t block = 32 / sizeof(T);
  if (rows < block || cols < block) {
    // A panel of `rows` columns whose lines (fixed c) are ld_out apart is exactly the transpose.
    pack_transposed_panel_simd(src, ld, rows, cols, static_cast<int>(ld_out), out);
    return;
  }
  // Ragged edges take one more square block flush with the edge, overlapping the last full
  // one (it rewrites some elements with the same values): a convolution's 14- or 28-pixel
  // output rows then transpose without scalar copies.
  for (int64_t j = 0; j < rows; j += block) {
    const int64_t r = std::min(j, rows - block);
    for (int64_t l = 0; l < cols; l += block) {
      const int64_t c = std::min(l, cols - block);
      transpose_block(src + r * ld + c, ld, out + c * ld_out + r, ld_out);
    }
  }
}

// ---- One ISA's kernel table ------------------------------------------------------------------

// An MR x NV-vector tile with S1- and S2-row variants (S1 < S2 < MR) for ragged last rows.
template <class Vec, int MR, int NV, int S1, int S2>
GemmMicroTile<typename Vec::T> simd_micro_tile() {
  return {MR,
          NV * Vec::lanes,
          SimdMicroKernel<Vec, MR, NV>::run,
          {{S1, SimdMicroKernel<Vec, S1, NV>::run}, {S2, SimdMicroKernel<Vec, S2, NV>::run}}};
}

// One ISA's table: a wide tile, a one-vector narrow tile (NARROW_MR rows, NS1 < NS2 for ragged
// rows) for products with N <= one vector, a row tile as wide as the wide one (ROW_MR rows, RS1
// < RS2), packing by whole vectors and register transposes.
template <class Vec, int MR, int NV, int S1, int S2, int NARROW_MR, int NS1, int NS2, int ROW_MR,
          int RS1, int RS2>
GemmKernelInfo<typename Vec::T> simd_kernel_info(int64_t mc, int64_t kc, int64_t nc,
                                                  const char* name) {
  return {simd_micro_tile<Vec, MR, NV, S1, S2>(),
          simd_micro_tile<Vec, NARROW_MR, 1, NS1, NS2>(),
          simd_micro_tile<Vec, ROW_MR, NV, RS1, RS2>(),
          mc,
          kc,
          nc,
          pack_rows_simd<Vec>,
          pack_transposed_simd<typename Vec::T>,
          transpose_simd<typename Vec::T>,
          name};
}

}  // namespace
}  // namespace fastnn::cpu
