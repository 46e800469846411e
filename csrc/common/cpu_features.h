// Which SIMD path the CPU kernels take.
//
// Detected once from CPUID (x86) and capped by the environment variable
// FASTNN_SIMD=generic|avx2|avx512, so every path can be tested on one machine. Asking for a
// path the CPU lacks falls back to the best one it has (never an illegal instruction).
#pragma once

#include <string>

namespace fastnn {

enum class SimdLevel { generic = 0, avx2 = 1, avx512 = 2 };

// Best level the hardware (and OS register state) supports.
SimdLevel detected_simd_level();
// Level in use: detected level, capped by FASTNN_SIMD when set.
SimdLevel active_simd_level();
const char* simd_level_name(SimdLevel level);

}  // namespace fastnn
