// Elementwise activations on the GPU and their backward passes; the math of cpu/activation.h
// (relu, leaky_relu, sigmoid, tanh, exact erf-GELU), any shape flattened to n elements.
// Backward reads what the derivative needs: x for relu, leaky_relu and gelu, y for sigmoid and
// tanh; dx = dy * f'(.) is written. One grid-stride kernel per call.
#pragma once

#include <cstdint>

#include "common/shapes/activation.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

template <class T>
void activation_forward(Activation act, const T* x, T* y, int64_t n, T negative_slope,
                        const Exec& exec);

template <class T>
void activation_backward(Activation act, const T* saved, const T* dy, T* dx, int64_t n,
                         T negative_slope, const Exec& exec);

// y = max(a + b, 0) (y may be a or b itself).
template <class T>
void add_relu(const T* a, const T* b, T* y, int64_t n, const Exec& exec);

}  // namespace fastnn::cuda
