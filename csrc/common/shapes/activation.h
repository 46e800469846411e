// The elementwise activations both backends implement (math in cpu/activation.h), and the one
// place their Python names are parsed.
#pragma once

#include <string>

#include "common/errors.h"

namespace fastnn {

enum class Activation { relu, leaky_relu, sigmoid, tanh, gelu };

// True when backward needs the forward output y rather than the input x.
inline bool activation_backward_uses_output(Activation a) {
  return a == Activation::sigmoid || a == Activation::tanh;
}

inline Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "gelu") return Activation::gelu;
  throw_value_error("fastnn.activation: unknown activation '", name,
                    "'; expected relu, leaky_relu, sigmoid, tanh or gelu");
}

}  // namespace fastnn
