// Binary cross-entropy on logits, for binary and multi-label targets (PyTorch's
// BCEWithLogitsLoss, mean reduction). x, t: n elements viewed as (n / C, C); pos_weight: (C,)
// or null (all ones), broadcast along the last axis.
//   softplus(z) = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))      (stable for any |z|)
//   l   = pw * t * softplus(-x) + (1 - t) * softplus(x)
//   loss = (1 / n) * sum l
//   dloss/dx = (sigmoid(x) * (pw * t + 1 - t) - pw * t) / n          (written to grad if not null)
#pragma once

#include <cstdint>

#include "common/loss_result.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
LossResult bce_with_logits(const T* logits, const T* targets, const T* pos_weight /* nullable */,
                       T* grad /* nullable */, int64_t n, int64_t classes, const Exec&);

}  // namespace fastnn::cpu
