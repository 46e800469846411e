#include "common/cpu_features.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(FASTNN_X86)
#include <cpuid.h>
#endif

namespace fastnn {
namespace {

#if defined(FASTNN_X86)
unsigned long long read_xcr0() {
  unsigned int lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

SimdLevel detect() {
  unsigned int a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return SimdLevel::generic;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28);
  if (!osxsave || !avx) return SimdLevel::generic;
  const unsigned long long xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_state) return SimdLevel::generic;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return SimdLevel::generic;
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31);
  if (avx2 && fma && zmm_state && avx512f && avx512dq && avx512bw && avx512vl)
    return SimdLevel::avx512;
  if (avx2 && fma) return SimdLevel::avx2;
  return SimdLevel::generic;
}
#else
SimdLevel detect() { return SimdLevel::generic; }
#endif

SimdLevel requested_cap() {
  const char* env = std::getenv("FASTNN_SIMD");
  if (!env || !*env) return SimdLevel::avx512;
  if (!std::strcmp(env, "generic")) return SimdLevel::generic;
  if (!std::strcmp(env, "avx2")) return SimdLevel::avx2;
  return SimdLevel::avx512;  // "avx512" or anything unrecognised: no cap
}

}  // namespace

SimdLevel detected_simd_level() {
  static const SimdLevel level = detect();
  return level;
}

SimdLevel active_simd_level() {
  static const SimdLevel level = static_cast<SimdLevel>(
      std::min(static_cast<int>(detected_simd_level()), static_cast<int>(requested_cap())));
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace fastnn
