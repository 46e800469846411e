// Vector traits for the SIMD translation units (*_avx2.cpp, *_avx512.cpp): one small struct per
// register type naming the handful of operations kernels are written against, so one kernel
// template serves ymm and zmm, float and double.
//
// Include only from SIMD translation units. Everything here has internal linkage (anonymous
// namespace), so no AVX-512 instruction can leak into code the linker shares with the portable
// path through a merged inline function.
#pragma once

#include <immintrin.h>

#include <cstdint>

#define FASTNN_INLINE inline __attribute__((always_inline))

namespace fastnn::cpu {
namespace {

// ---- Vector traits: V, lanes, and the handful of operations the kernel needs --------------

struct Ymm8f {
  using T = float;
  using V = __m256;
  static constexpr int lanes = 8;
  static FASTNN_INLINE V zero() { return _mm256_setzero_ps(); }
  static FASTNN_INLINE V set1(T x) { return _mm256_set1_ps(x); }
  static FASTNN_INLINE V load(const T* p) { return _mm256_loadu_ps(p); }
  static FASTNN_INLINE void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static FASTNN_INLINE __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static FASTNN_INLINE V load_n(const T* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static FASTNN_INLINE void store_n(T* p, V v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
  static FASTNN_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static FASTNN_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static FASTNN_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  // max(floor, v) returns v when v is NaN (maxps returns its second operand on NaN).
  static FASTNN_INLINE V max(V floor, V v) { return _mm256_max_ps(floor, v); }
  static FASTNN_INLINE V relu(V v) { return max(zero(), v); }
};

struct Ymm4d {
  using T = double;
  using V = __m256d;
  static constexpr int lanes = 4;
  static FASTNN_INLINE V zero() { return _mm256_setzero_pd(); }
  static FASTNN_INLINE V set1(T x) { return _mm256_set1_pd(x); }
  static FASTNN_INLINE V load(const T* p) { return _mm256_loadu_pd(p); }
  static FASTNN_INLINE void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static FASTNN_INLINE __m256i mask(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static FASTNN_INLINE V load_n(const T* p, int n) { return _mm256_maskload_pd(p, mask(n)); }
  static FASTNN_INLINE void store_n(T* p, V v, int n) { _mm256_maskstore_pd(p, mask(n), v); }
  static FASTNN_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static FASTNN_INLINE V add(V a, V b) { return _mm256_add_pd(a, b); }
  static FASTNN_INLINE V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static FASTNN_INLINE V max(V floor, V v) { return _mm256_max_pd(floor, v); }
  static FASTNN_INLINE V relu(V v) { return max(zero(), v); }
};

#if defined(__AVX512F__)
struct Zmm16f {
  using T = float;
  using V = __m512;
  static constexpr int lanes = 16;
  static FASTNN_INLINE V zero() { return _mm512_setzero_ps(); }
  static FASTNN_INLINE V set1(T x) { return _mm512_set1_ps(x); }
  static FASTNN_INLINE V load(const T* p) { return _mm512_loadu_ps(p); }
  static FASTNN_INLINE void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static FASTNN_INLINE __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static FASTNN_INLINE V load_n(const T* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static FASTNN_INLINE void store_n(T* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static FASTNN_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static FASTNN_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static FASTNN_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  // (the masked form dodges a GCC 12 false -Wmaybe-uninitialized in _mm512_max_ps)
  static FASTNN_INLINE V max(V floor, V v) { return _mm512_maskz_max_ps(mask(lanes), floor, v); }
  static FASTNN_INLINE V relu(V v) { return max(zero(), v); }
};

struct Zmm8d {
  using T = double;
  using V = __m512d;
  static constexpr int lanes = 8;
  static FASTNN_INLINE V zero() { return _mm512_setzero_pd(); }
  static FASTNN_INLINE V set1(T x) { return _mm512_set1_pd(x); }
  static FASTNN_INLINE V load(const T* p) { return _mm512_loadu_pd(p); }
  static FASTNN_INLINE void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static FASTNN_INLINE __mmask8 mask(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static FASTNN_INLINE V load_n(const T* p, int n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static FASTNN_INLINE void store_n(T* p, V v, int n) { _mm512_mask_storeu_pd(p, mask(n), v); }
  static FASTNN_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static FASTNN_INLINE V add(V a, V b) { return _mm512_add_pd(a, b); }
  static FASTNN_INLINE V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static FASTNN_INLINE V max(V floor, V v) { return _mm512_maskz_max_pd(mask(lanes), floor, v); }
  static FASTNN_INLINE V relu(V v) { return max(zero(), v); }
};
#endif

// The first n elements at p (all lanes when n >= lanes), zeros after; reads nothing past them.
template <class Vec>
FASTNN_INLINE typename Vec::V load_first(const typename Vec::T* p, int64_t n) {
  if (n >= Vec::lanes) return Vec::load(p);
  return n > 0 ? Vec::load_n(p, static_cast<int>(n)) : Vec::zero();
}

// ---- FMA throughput probe (cpu/peak.h) ------------------------------------------------------

// Runs `iterations` x 12 independent FMA chains (12 covers 2 ports x up to 6 cycles latency);
// returns a value depending on every chain so none is optimised away.
template <class Vec>
typename Vec::T fma_chains(int64_t iterations, typename Vec::T seed) {
  using V = typename Vec::V;
  constexpr int chains = 12;
  V acc[chains];
  const V x = Vec::set1(typename Vec::T(0.999999)), y = Vec::set1(typename Vec::T(1e-7));
#pragma GCC unroll 12
  for (int i = 0; i < chains; ++i) acc[i] = Vec::set1(seed + typename Vec::T(i));
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < chains; ++i) acc[i] = Vec::fma(acc[i], x, y);
  }
  V sum = Vec::zero();
#pragma GCC unroll 12
  for (int i = 0; i < chains; ++i) sum = Vec::add(sum, acc[i]);
  typename Vec::T lanes[Vec::lanes];
  Vec::store(lanes, sum);
  return lanes[0];
}

}  // namespace
}  // namespace fastnn::cpu
