// Winograd transforms (conv2d_winograd.h) under the avx2 flags: L = 8 floats.
#include "cpu/conv2d_winograd.h"

namespace fastnn::cpu {

const WinogradKernels& winograd_kernels_avx2() {
  static const WinogradKernels kernels = winograd_kernels_for<32 / 4>();
  return kernels;
}

}  // namespace fastnn::cpu
