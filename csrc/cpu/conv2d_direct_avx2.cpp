// Direct convolution kernels (conv2d_direct.h) under the avx2 flags: L = 32 bytes of lanes. The
// pixel-major forward takes 2 rows of 5 pixels (10 accumulators, a weight vector and a broadcast
// in the 16 registers): LeNet's second layer, 16 channels over 10-pixel rows, keeps every lane
// and enough independent FMA chains busy (8 pixels of one row left 6 of 16 pixel slots idle).
#include "cpu/conv2d_direct.h"

namespace fastnn::cpu {

const Conv2dDirectKernels<float>& conv2d_direct_kernels_avx2_float() {
  static const Conv2dDirectKernels<float> kernels = direct_kernels<float, 32 / 4, 2, 16, 5>();
  return kernels;
}

const Conv2dDirectKernels<double>& conv2d_direct_kernels_avx2_double() {
  static const Conv2dDirectKernels<double> kernels = direct_kernels<double, 32 / 8, 2, 16, 5>();
  return kernels;
}

}  // namespace fastnn::cpu
