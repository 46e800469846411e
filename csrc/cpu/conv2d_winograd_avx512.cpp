// Winograd transforms (conv2d_winograd.h) under the avx512 flags: L = 16 floats.
#include "cpu/conv2d_winograd.h"

namespace fastnn::cpu {

const WinogradKernels& winograd_kernels_avx512() {
  static const WinogradKernels kernels = winograd_kernels_for<64 / 4>();
  return kernels;
}

}  // namespace fastnn::cpu
