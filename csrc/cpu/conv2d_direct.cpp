// The portable direct convolution kernels (conv2d_direct.h, 16-byte lane blocks, which the
// baseline ISA of every target vectorises) and the run-time choice among the ISA variants.
#include "common/cpu_features.h"
#include "cpu/conv2d_direct.h"

namespace fastnn::cpu {
namespace {

template <class T>
const Conv2dDirectKernels<T>& choose_direct(const Conv2dDirectKernels<T>& generic,
                                            const Conv2dDirectKernels<T>& (*avx2)(),
                                            const Conv2dDirectKernels<T>& (*avx512)()) {
  switch (active_simd_level()) {
    case SimdLevel::avx512: return avx512 ? avx512() : generic;
    case SimdLevel::avx2: return avx2 ? avx2() : generic;
    default: return generic;
  }
}

}  // namespace

template <>
const Conv2dDirectKernels<float>& conv2d_direct_kernels<float>() {
  static const Conv2dDirectKernels<float> generic = direct_kernels<float, 4, 1>();
#if defined(FASTNN_X86)
  static const Conv2dDirectKernels<float>& chosen = choose_direct(
      generic, conv2d_direct_kernels_avx2_float, conv2d_direct_kernels_avx512_float);
#else
  static const Conv2dDirectKernels<float>& chosen = choose_direct<float>(generic, nullptr, nullptr);
#endif
  return chosen;
}

template <>
const Conv2dDirectKernels<double>& conv2d_direct_kernels<double>() {
  static const Conv2dDirectKernels<double> generic = direct_kernels<double, 2, 1>();
#if defined(FASTNN_X86)
  static const Conv2dDirectKernels<double>& chosen = choose_direct(
      generic, conv2d_direct_kernels_avx2_double, conv2d_direct_kernels_avx512_double);
#else
  static const Conv2dDirectKernels<double>& chosen =
      choose_direct<double>(generic, nullptr, nullptr);
#endif
  return chosen;
}

}  // namespace fastnn::cpu
