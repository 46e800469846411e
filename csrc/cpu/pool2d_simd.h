// The SIMD kernels of cpu/pool2d.cpp, each defined in its ISA's translation unit (compiled with
// its own -m flags): pool2d_avx512.cpp, pool2d_avx2.cpp. Call one only when active_simd_level()
// allows its ISA (common/cpu_features.h).
#pragma once

#include <cstdint>

namespace fastnn::cpu {

// One (H, W) plane of the 2x2 stride-2 max pool, float32: y and indices (out_h, out_w), the
// same values and tie / NaN rule as the portable path in pool2d.cpp. Needs H * W < 2^31 (the
// window offsets are computed in int32 lanes).
template <class Index>
void max_pool2d_2x2_plane_avx512(const float* x, float* y, Index* indices, int64_t W,
                                 int64_t out_h, int64_t out_w);

// The same under AVX2; pays where out_w >= 8 (whole vectors).
template <class Index>
void max_pool2d_2x2_plane_avx2(const float* x, float* y, Index* indices, int64_t W,
                               int64_t out_h, int64_t out_w);

}  // namespace fastnn::cpu
