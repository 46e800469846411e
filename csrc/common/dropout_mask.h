// The dropout mask's random numbers, shared by the CPU and CUDA kernels (host and device code),
// so a GPU run drops exactly the elements a CPU run drops for the same seed.
//   keep[i] = dropout_keep_bits(seed, i) >= dropout_drop_threshold(p)
// dropout_keep_bits is counter-based: the i-th output of a splitmix64 stream keyed by the mixed
// seed, its top 53 bits. Element i's draw depends only on (seed, i): any thread count, any
// launch configuration, any backend gives the same mask (fastnn.reference.dropout transcribes
// it in NumPy).
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace fastnn {

// splitmix64's finaliser: a bijective 64-bit mix with full avalanche.
FASTNN_HOST_DEVICE inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The mixed seed: computed once per call and handed to dropout_keep_bits_keyed.
FASTNN_HOST_DEVICE inline uint64_t dropout_key(uint64_t seed) { return splitmix64_mix(seed); }

// 53 uniform random bits for element i under a key from dropout_key.
FASTNN_HOST_DEVICE inline uint64_t dropout_keep_bits_keyed(uint64_t key, uint64_t i) {
  constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;
  return splitmix64_mix(key + (i + 1) * kGoldenGamma) >> 11;
}

// 53 uniform random bits for element i; u(seed, i) = dropout_keep_bits(seed, i) * 2^-53.
// Mixing the seed first keeps streams of nearby seeds unrelated (plain splitmix64 streams of
// seeds that differ by its increment would be shifted copies of each other).
FASTNN_HOST_DEVICE inline uint64_t dropout_keep_bits(uint64_t seed, uint64_t i) {
  return dropout_keep_bits_keyed(dropout_key(seed), i);
}

// Keep element i iff its 53 random bits, read as an integer, reach p * 2^53 (exact in double
// for p in [0, 1]); p = 1 gives 2^53, which no 53-bit value reaches.
inline uint64_t dropout_drop_threshold(double p) {
  return static_cast<uint64_t>(p * 9007199254740992.0);
}

// The kept elements' scale 1 / (1 - p), or 0 when everything is dropped.
inline double dropout_keep_scale(double p) { return p < 1.0 ? 1.0 / (1.0 - p) : 0.0; }

}  // namespace fastnn
