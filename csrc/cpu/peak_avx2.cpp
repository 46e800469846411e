// The FMA throughput probe on ymm registers (cpu/peak.h).
#include "cpu/peak.h"
#include "cpu/simd_vec.h"

namespace fastnn::cpu {

float fma_chains_avx2(int64_t iterations, float seed) {
  return fma_chains<Ymm8f>(iterations, seed);
}

}  // namespace fastnn::cpu
