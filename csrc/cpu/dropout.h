// Inverted dropout over n elements (any shape, flattened), PyTorch's training-mode Dropout:
//   keep[i]  = u(seed, i) >= p, with u uniform in [0, 1)
//   forward:  y[i] = keep[i] ? x[i] / (1 - p) : 0;   mask[i] = keep[i] (uint8 0/1, for backward)
//   backward: dx[i] = mask[i] ? dy[i] / (1 - p) : 0  (written)
// p = 1 drops everything (y = 0). u(seed, i) is counter-based: the i-th output of a splitmix64
// stream keyed by the mixed seed, taking its top 53 bits. Element i's draw depends only on
// (seed, i), so the mask is identical for any thread count (and on any backend that implements
// dropout_keep_bits the same way; fastnn.reference.dropout transcribes it in NumPy).
#pragma once

#include <cstdint>

namespace fastnn::cpu {

// splitmix64's finaliser: a bijective 64-bit mix with full avalanche.
inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// 53 uniform random bits for element i; u(seed, i) = dropout_keep_bits(seed, i) * 2^-53.
// Mixing the seed first keeps streams of nearby seeds unrelated (plain splitmix64 streams of
// seeds that differ by its increment would be shifted copies of each other).
inline uint64_t dropout_keep_bits(uint64_t seed, uint64_t i) {
  constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;
  return splitmix64_mix(splitmix64_mix(seed) + (i + 1) * kGoldenGamma) >> 11;
}

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double p, uint64_t seed);

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double p);

}  // namespace fastnn::cpu
