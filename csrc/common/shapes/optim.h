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

// One parameter of a list update: its values, gradient and state arrays (numel elements each).
// state0 is SGD's momentum buffer or Adam's exp_avg (null when unused), state1 Adam's exp_avg_sq.
template <class T>
struct OptimTensor {
  T* param;
  const T* grad;
  T* state0;
  T* state1;
  int64_t numel;
};

}  // namespace fastnn
