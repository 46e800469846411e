// Fused optimiser updates on the GPU, in place; the rules of cpu/optim.h (PyTorch's SGD with
// momentum / dampening / Nesterov / L2 decay, Adam and AdamW with bias correction).
//
// Multi-tensor apply: one call updates a whole list of parameters. The list is cut into chunks of
// up to 64 Ki elements; each block of a launch updates one chunk, found through a table of
// pointers passed by value as the kernel argument (< 4 KiB), so a model's dozens of small
// parameters cost one or a few launches instead of one each. Updates are elementwise: exact and
// deterministic.
#pragma once

#include <cstdint>
#include <vector>

#include "common/shapes/optim.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

// One parameter and its state: state0 is the momentum buffer (SGD, may be null when momentum is
// 0) or exp_avg (Adam); state1 is exp_avg_sq (Adam) or null.
using fastnn::OptimTensor;

template <class T>
void sgd_step(const std::vector<OptimTensor<T>>& tensors, const SgdConfig& cfg, const Exec& exec);

// Every tensor of the list takes the same step number cfg.step.
template <class T>
void adam_step(const std::vector<OptimTensor<T>>& tensors, const AdamConfig& cfg, const Exec& exec);

}  // namespace fastnn::cuda
