// The FMA throughput probe on zmm registers (cpu/peak.h).
#include "cpu/peak.h"
#include "cpu/simd_vec.h"

namespace fastnn::cpu {

float fma_chains_avx512(int64_t iterations, float seed) {
  return fma_chains<Zmm16f>(iterations, seed);
}

}  // namespace fastnn::cpu
