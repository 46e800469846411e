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

#include "common/shapes/optim.h"

namespace fastnn::cpu {

template <class T>
void sgd_step(T* param, const T* grad, T* momentum_buffer /* nullable when momentum == 0 */,
              int64_t n, const SgdConfig& cfg);

template <class T>
void adam_step(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n,
               const AdamConfig& cfg);

}  // namespace fastnn::cpu
