// Hyperparameters of the fused optimiser updates, shared by both backends (math in
// cpu/optim.h).
#pragma once

#include <cstdint>

namespace fastnn {

struct SgdConfig {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};

struct AdamConfig {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;                 // 1-based count of this update
  bool decoupled_weight_decay;  // true: AdamW
};

}  // namespace fastnn
