// AVX-512 kernels of cpu/pool2d.cpp, defined in pool2d_avx512.cpp (compiled with its own -m
// flags): call them only when active_simd_level() is avx512 (common/cpu_features.h).
#pragma once

#include <cstdint>

namespace fastnn::cpu {

// One (H, W) plane of the 2x2 stride-2 max pool, float32: y and indices (out_h, out_w), the
// same values and tie / NaN rule as the portable path in pool2d.cpp. Needs H * W < 2^31 (the
// window offsets are computed in int32 lanes).
template <class Index>
void max_pool2d_2x2_plane_avx512(const float* x, float* y, Index* indices, int64_t W,
                                 int64_t out_h, int64_t out_w);

}  // namespace fastnn::cpu
