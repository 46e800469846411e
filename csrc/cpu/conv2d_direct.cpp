// The portable direct convolution kernels (conv2d_direct.h, 16-byte lane blocks, which the
// baseline ISA of every target vectorises) and the run-time choice among the ISA variants.
#include "common/cpu_features.h"
#include "cpu/conv2d_direct.h"

namespace fastnn::cpu {

template <>
const Conv2dDirectKernels<float>& conv2d_direct_kernels<float>() {
  static const Conv2dDirectKernels<float> generic = direct_kernels<float, 4, 1, 16>();
#if defined(FASTNN_X86)
  static const Conv2dDirectKernels<float>& chosen = table_for_active_level(
      generic, conv2d_direct_kernels_avx2_float, conv2d_direct_kernels_avx512_float);
#else
  static const Conv2dDirectKernels<float>& chosen =
      table_for_active_level<Conv2dDirectKernels<float>>(generic, nullptr, nullptr);
#endif
  return chosen;
}

template <>
const Conv2dDirectKernels<double>& conv2d_direct_kernels<double>() {
  static const Conv2dDirectKernels<double> generic = direct_kernels<double, 2, 1, 16>();
#if defined(FASTNN_X86)
  static const Conv2dDirectKernels<double>& chosen = table_for_active_level(
      generic, conv2d_direct_kernels_avx2_double, conv2d_direct_kernels_avx512_double);
#else
  static const Conv2dDirectKernels<double>& chosen =
      table_for_active_level<Conv2dDirectKernels<double>>(generic, nullptr, nullptr);
#endif
  return chosen;
}

}  // namespace fastnn::cpu
