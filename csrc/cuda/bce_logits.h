// Binary cross-entropy on logits on the GPU; the math of cpu/bce_logits.h. x, t: n elements viewed
// as (n / C, C); pos_weight: (C,) or null, broadcast along the last axis.
//   l = pw * t * softplus(-x) + (1 - t) * softplus(x),  loss = mean l
//   dloss/dx = (sigmoid(x) * (pw * t + 1 - t) - pw * t) / n   (written to grad when not null)
// One grid-stride pass: each block sums its elements' terms in double and leaves one partial
// sum; finish_loss adds the partials in block order. Targets outside [0, 1] (or NaN) are
// flagged: the result's first_invalid names the first.
#pragma once

#include <cstdint>

#include "cuda/launch.h"
#include "cuda/loss_result.h"

namespace fastnn::cuda {

template <class T>
LossResult bce_with_logits(const T* logits, const T* targets, const T* pos_weight /* nullable */,
                           T* grad /* nullable */, int64_t n, int64_t classes, const Exec& exec);

}  // namespace fastnn::cuda
