// Losses return a host scalar: the per-row (or per-block) loss terms a loss kernel leaves in
// device memory are summed by one block in a fixed order (deterministic), divided, and copied to
// the host together with the index of the first invalid label or target the kernel flagged.
// Reading the result waits for the stream: a loss is the one synchronisation point of a
// training step.
#pragma once

#include <cstdint>

#include "common/loss_result.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

using fastnn::LossResult;

// Device scratch of a loss: the result and the "first invalid index" word (all ones = none),
// which loss kernels lower with atomicMin (the minimum does not depend on thread order).
struct LossScratch {
  double loss;
  unsigned long long first_invalid;
};

// Allocates and clears a LossScratch on exec's stream.
LossScratch* new_loss_scratch(const Exec& exec);

// loss = sum(terms[0:count]) / divisor, computed on the device, then copied to the host.
LossResult finish_loss(const double* terms, int64_t count, double divisor, LossScratch* scratch,
                       const Exec& exec);

}  // namespace fastnn::cuda
