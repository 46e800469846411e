// Direct convolution kernels (conv2d_direct.h) under the avx2 flags: L = 32 bytes of lanes.
#include "cpu/conv2d_direct.h"

namespace fastnn::cpu {

const Conv2dDirectKernels<float>& conv2d_direct_kernels_avx2_float() {
  static const Conv2dDirectKernels<float> kernels = direct_kernels<float, 32 / 4, 1, 16>();
  return kernels;
}

const Conv2dDirectKernels<double>& conv2d_direct_kernels_avx2_double() {
  static const Conv2dDirectKernels<double> kernels = direct_kernels<double, 32 / 8, 1, 16>();
  return kernels;
}

}  // namespace fastnn::cpu
