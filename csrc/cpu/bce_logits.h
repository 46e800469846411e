// Binary cross-entropy on logits, for binary and multi-label targets (PyTorch's
// BCEWithLogitsLoss, mean reduction). x, t: n elements viewed as (n / C, C); pos_weight: (C,)
// or null (all ones), broadcast along the last axis.
//   softplus(z) = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))      (stable for any |z|)
//   l   = pw * t * softplus(-x) + (1 - t) * softplus(x)
//   loss = (1 / n_known) * sum over known elements of l
//   dloss/dx = ((1 - t) * sigmoid(x) - pw * t * sigmoid(-x)) / n_known    (written to grad if not null)
// A target of exactly -1 is unknown (common/shapes/bce_logits.h): it adds no loss, gets a zero
// gradient and is not counted in n_known. With every target unknown the loss is 0 and the
// gradient zero: such a batch carries no label to learn from, and a 0 / 0 NaN would end training.
#pragma once

#include <cstdint>

#include "common/loss_result.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
LossResult bce_with_logits(const T* logits, const T* targets, const T* pos_weight /* nullable */,
                       T* grad /* nullable */, int64_t n, int64_t classes, const Exec&);

}  // namespace fastnn::cpu
