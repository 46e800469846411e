// The machine's float32 multiply-add throughput, measured: the denominator of "fraction of
// peak" in the benchmarks (the datasheet number is no use on a shared, throttled VM).
//
// Each of `threads` threads runs 12 independent FMA chains (enough to cover two FMA ports at
// up to 6 cycles latency) at the SIMD level in use (FASTNN_SIMD caps it) for about `seconds`;
// the result is the sum of the threads' rates in GFLOP/s, 2 flops per lane per FMA. The
// portable path measures whatever its compiler makes of multiply-add on the baseline ISA.
#pragma once

#include <cstdint>

namespace fastnn::cpu {

double fma_peak_gflops(int threads, double seconds);

#if defined(FASTNN_X86)
// iterations x 12 chains x lanes FMAs at one width (peak_avx2.cpp / peak_avx512.cpp).
float fma_chains_avx2(int64_t iterations, float seed);
float fma_chains_avx512(int64_t iterations, float seed);
#endif

}  // namespace fastnn::cpu
