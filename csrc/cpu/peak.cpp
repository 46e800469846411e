// Measured FMA peak (see peak.h): times the widest FMA chains the SIMD level allows.
#include "cpu/peak.h"

#include <atomic>
#include <chrono>

#include "common/cpu_features.h"

namespace fastnn::cpu {
namespace {

// The portable probe: 12 chains of 8 lanes in plain arrays, which the compiler keeps in
// registers and vectorises with the baseline ISA.
float fma_chains_portable(int64_t iterations, float seed) {
  constexpr int chains = 12, lanes = 8;
  float acc[chains][lanes];
  for (int i = 0; i < chains; ++i)
    for (int l = 0; l < lanes; ++l) acc[i][l] = seed + static_cast<float>(i);
  for (int64_t it = 0; it < iterations; ++it)
    for (int i = 0; i < chains; ++i)
      for (int l = 0; l < lanes; ++l) acc[i][l] = acc[i][l] * 0.999999f + 1e-7f;
  float sum = 0;
  for (int i = 0; i < chains; ++i) sum += acc[i][0];
  return sum;
}

struct Probe {
  float (*chains)(int64_t, float);
  int lanes;
};

Probe probe_for_active_level() {
#if defined(FASTNN_X86)
  switch (active_simd_level()) {
    case SimdLevel::avx512: return {fma_chains_avx512, 16};
    case SimdLevel::avx2: return {fma_chains_avx2, 8};
    default: break;
  }
#endif
  return {fma_chains_portable, 8};
}

}  // namespace

double fma_peak_gflops(int threads, double seconds) {
  using clock = std::chrono::steady_clock;
  const Probe probe = probe_for_active_level();
  constexpr int64_t batch = 1 << 16;  // iterations between clock reads (~0.1-1 ms)
  std::atomic<double> total_gflops{0.0};
  std::atomic<float> sink{0.0f};
#pragma omp parallel num_threads(threads)
  {
    // One untimed batch brings the core up to its vector clock before timing starts.
    float keep = probe.chains(batch, 1.0f);
    int64_t iterations = 0;
    const auto start = clock::now();
    double elapsed = 0;
    do {
      keep += probe.chains(batch, keep * 1e-30f + 1.0f);
      iterations += batch;
      elapsed = std::chrono::duration<double>(clock::now() - start).count();
    } while (elapsed < seconds);
    const double flops = 2.0 * 12 * probe.lanes * static_cast<double>(iterations);
    double expected = total_gflops.load();
    while (!total_gflops.compare_exchange_weak(expected, expected + flops / elapsed / 1e9)) {
    }
    sink.store(keep);
  }
  return total_gflops.load();
}

}  // namespace fastnn::cpu
