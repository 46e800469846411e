// What a loss kernel returns on either backend: the mean loss, and the flat index of the first
// invalid label or target (-1 when all are valid). The CUDA kernels flag invalid entries on the
// device; the CPU bindings check them on the host before the kernel runs, so the CPU kernels
// always return -1 here.
#pragma once

#include <cstdint>

namespace fastnn {

struct LossResult {
  double loss = 0;
  int64_t first_invalid = -1;
};

}  // namespace fastnn
