// Direct convolution kernels (conv2d_direct.h) under the avx512 flags: L = 64 bytes of lanes.
#include "cpu/conv2d_direct.h"

namespace fastnn::cpu {

const Conv2dDirectKernels<float>& conv2d_direct_kernels_avx512_float() {
  static const Conv2dDirectKernels<float> kernels = direct_kernels<float, 64 / 4, 2, 32>();
  return kernels;
}

const Conv2dDirectKernels<double>& conv2d_direct_kernels_avx512_double() {
  static const Conv2dDirectKernels<double> kernels = direct_kernels<double, 64 / 8, 2, 32>();
  return kernels;
}

}  // namespace fastnn::cpu
