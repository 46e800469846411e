// Elementwise activations, any shape (flattened to n elements), and their backward passes.
//   relu(x)          = max(x, 0)                      d/dx = 1 if x > 0 else 0 (0 at the kink)
//   leaky_relu(x; a) = x if x > 0 else a * x          d/dx = 1 if x > 0 else a
//   sigmoid(x)       = 1 / (1 + exp(-x))              d/dx = y * (1 - y)
//   tanh(x)                                           d/dx = 1 - y^2
//   gelu(x)          = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2   (exact form)
//                                                     d/dx = Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi)
// Backward reads what the derivative needs (saved): the input x for relu, leaky_relu and gelu,
// the output y for sigmoid and tanh. dx = dy * d/dx is written.
//   add_relu(a, b)   = max(a + b, 0)                  (a residual sum and the ReLU after it, in
//                                                      one pass; y may be a or b itself)
#pragma once

#include <cstdint>

#include "common/shapes/activation.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
void activation_forward(Activation act, const T* x, T* y, int64_t n, T negative_slope, const Exec&);

template <class T>
void activation_backward(Activation act, const T* saved, const T* dy, T* dx, int64_t n,
                         T negative_slope, const Exec&);

template <class T>
void add_relu(const T* a, const T* b, T* y, int64_t n, const Exec&);

}  // namespace fastnn::cpu
