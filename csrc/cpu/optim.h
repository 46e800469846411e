// Optimiser updates, in place, one pass over a parameter (PyTorch's semantics).
//
// SGD (lr, momentum mu, dampening tau, weight_decay wd, nesterov):
//   g = grad + wd * p
//   if mu != 0:  buf = g                          on the first step
//                buf = mu * buf + (1 - tau) * g   afterwards
//                g   = g + mu * buf  (nesterov)   or   g = buf
//   p -= lr * g
//
// Adam / AdamW (lr, beta1, beta2, eps, wd, step t >= 1):
//   AdamW:  p *= 1 - lr * wd                      (decoupled decay)
//   Adam:   g = grad + wd * p                     (L2 decay)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
#pragma once

#include <cstdint>
#include <vector>

#include "common/shapes/optim.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

// Each updates every tensor of the list in one threaded pass over all their elements (the CUDA
// twin: one launch). SGD reads state0 as the momentum buffer (null when
// momentum == 0); Adam reads state0 / state1 as exp_avg / exp_avg_sq.
template <class T>
void sgd_step(const std::vector<OptimTensor<T>>& tensors, const SgdConfig& cfg, const Exec&);

template <class T>
void adam_step(const std::vector<OptimTensor<T>>& tensors, const AdamConfig& cfg, const Exec&);

}  // namespace fastnn::cpu
