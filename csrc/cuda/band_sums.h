// The second pass of the bias-gradient reductions (linear.cu, conv2d.cu): a first kernel leaves
// one partial sum per (band of rows or images, feature) in scratch memory; this adds them band by
// band, in order, onto the prior value (accumulate) or zero. Deterministic.
#pragma once

#include <cstdint>

#include "cuda/launch.h"

namespace fastnn::cuda {

// out[f] = (prior ? prior[f] : 0) + sum_{b < bands} band_sums[b * features + f]
template <class T>
void add_band_sums(const T* band_sums, int64_t bands, int64_t features, const T* prior /* nullable */,
                   T* out, const Exec& exec);

// Bands for a reduction of `length` items per feature over `features` features: enough blocks
// to occupy the GPU, each band at least `min_band` long. Depends on the shape and GPU only.
int64_t reduction_bands(int64_t length, int64_t feature_blocks, int64_t min_band);

}  // namespace fastnn::cuda
