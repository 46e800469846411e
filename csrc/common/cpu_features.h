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

// The kernel table for the level in use: the portable one, or an ISA translation unit's (its
// accessor, or null where that ISA is not built, e.g. off x86).
template <class Table>
const Table& table_for_active_level(const Table& generic, const Table& (*avx2)(),
                                    const Table& (*avx512)()) {
  switch (active_simd_level()) {
    case SimdLevel::avx512: return avx512 ? avx512() : generic;
    case SimdLevel::avx2: return avx2 ? avx2() : generic;
    default: return generic;
  }
}

}  // namespace fastnn
