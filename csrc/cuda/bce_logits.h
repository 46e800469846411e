// Binary cross-entropy on logits on the GPU; the math of cpu/bce_logits.h. x, t: n elements viewed
// as (n / C, C); pos_weight: (C,) or null, broadcast along the last axis.
//   l = pw * t * softplus(-x) + (1 - t) * softplus(x),  loss = mean of l over known targets
//   dloss/dx = ((1 - t) * sigmoid(x) - pw * t * sigmoid(-x)) / n_known   (written to grad when not null)
// A target of -1 is unknown: no loss, zero gradient, not counted (all unknown: loss 0, zero
// gradient; see cpu/bce_logits.h). Two grid-stride passes: the first counts the known targets
// and flags targets neither in [0, 1] nor -1 (NaN included; the result's first_invalid names the
// first); in the second each block sums its elements' terms in double and leaves one partial
// sum, already divided by the count; finish_loss adds the partials in block order.
#pragma once

#include <cstdint>

#include "cuda/launch.h"
#include "cuda/loss_result.h"

namespace fastnn::cuda {

template <class T>
LossResult bce_with_logits(const T* logits, const T* targets, const T* pos_weight /* nullable */,
                           T* grad /* nullable */, int64_t n, int64_t classes, const Exec& exec);

}  // namespace fastnn::cuda
