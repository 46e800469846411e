// Inverted dropout on the GPU: the math and the mask of cpu/dropout.h. The mask's random bits
// come from common/dropout_mask.h, the same function the CPU kernel calls, so for one seed the
// GPU drops exactly the elements the CPU drops. One grid-stride kernel per call.
//   forward:  y[i] = keep[i] ? x[i] / (1 - p) : 0;   mask[i] = keep[i] (uint8 0/1)
//   backward: dx[i] = mask[i] ? dy[i] / (1 - p) : 0  (written)
#pragma once

#include <cstdint>

#include "cuda/launch.h"

namespace fastnn::cuda {

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double p, uint64_t seed,
                     const Exec& exec);

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double p, const Exec& exec);

}  // namespace fastnn::cuda
