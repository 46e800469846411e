// Inverted dropout over n elements (any shape, flattened), PyTorch's training-mode Dropout:
//   keep[i]  = u(seed, i) >= p, with u uniform in [0, 1)
//   forward:  y[i] = keep[i] ? x[i] / (1 - p) : 0;   mask[i] = keep[i] (uint8 0/1, for backward)
//   backward: dx[i] = mask[i] ? dy[i] / (1 - p) : 0  (written)
// p = 1 drops everything (y = 0). u(seed, i) = dropout_keep_bits(seed, i) * 2^-53 is
// counter-based (common/dropout_mask.h, shared with the CUDA kernel): element i's draw depends
// only on (seed, i), so the mask is identical for any thread count and on either backend.
#pragma once

#include <cstdint>

#include "common/dropout_mask.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double p, uint64_t seed, const Exec&);

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double p, const Exec&);

}  // namespace fastnn::cpu
