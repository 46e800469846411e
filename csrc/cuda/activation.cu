// Activations: one grid-stride kernel templated on a small functor per op (see activation.h).
// The formulas are the CPU's, in the same stable forms: sigmoid through exp(-|x|), GELU's
// normal CDF through erfc so its left tail keeps relative accuracy.
#include "cuda/activation.h"

#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

template <class T>
__device__ inline T sigmoid(T x) {
  const T e = math::exp(-math::abs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <class T>
__device__ inline T normal_cdf(T x) {
  return T(0.5) * math::erfc(-x * T(0.70710678118654752440));
}

template <class T>
struct Forward {
  Activation act;
  T slope;
  __device__ T operator()(T x) const {
    switch (act) {
      case Activation::relu: return x < T(0) ? T(0) : x;  // NaN stays NaN
      case Activation::leaky_relu: return x > T(0) ? x : slope * x;
      case Activation::sigmoid: return sigmoid(x);
      case Activation::tanh: return math::tanh(x);
      default: return x * normal_cdf(x);  // gelu
    }
  }
};

template <class T>
struct Backward {
  Activation act;
  T slope;
  // `s` is the saved tensor's element: x, or y for sigmoid and tanh.
  __device__ T operator()(T s, T dy) const {
    switch (act) {
      case Activation::relu: return s > T(0) ? dy : T(0);
      case Activation::leaky_relu: return s > T(0) ? dy : slope * dy;
      case Activation::sigmoid: return dy * s * (T(1) - s);
      case Activation::tanh: return dy * (T(1) - s * s);
      default: {  // gelu
        const T pdf = T(0.39894228040143267794) * math::exp(T(-0.5) * s * s);
        return dy * (normal_cdf(s) + s * pdf);
      }
    }
  }
};

// The switch is on a kernel argument, uniform across the grid: no divergence.
template <class T>
__global__ void activation_forward_kernel(Forward<T> f, const T* x, T* y, int64_t n) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) y[i] = f(x[i]);
}

template <class T>
__global__ void activation_backward_kernel(Backward<T> f, const T* saved, const T* dy, T* dx,
                                           int64_t n) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) dx[i] = f(saved[i], dy[i]);
}

template <class T>
__global__ void add_relu_kernel(const T* a, const T* b, T* y, int64_t n) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) {
    const T v = a[i] + b[i];
    y[i] = v < T(0) ? T(0) : v;  // NaN stays NaN
  }
}

constexpr int kThreads = 256;

}  // namespace

template <class T>
void add_relu(const T* a, const T* b, T* y, int64_t n, const Exec& exec) {
  if (n == 0) return;
  FASTNN_LAUNCH(blocks_for(n, kThreads), kThreads, 0, exec.stream, add_relu_kernel<T>)(a, b, y, n);
  check_launch("add_relu");
}

template <class T>
void activation_forward(Activation act, const T* x, T* y, int64_t n, T negative_slope,
                        const Exec& exec) {
  if (n == 0) return;
  FASTNN_LAUNCH(blocks_for(n, kThreads), kThreads, 0, exec.stream, activation_forward_kernel<T>)(
      Forward<T>{act, negative_slope}, x, y, n);
  check_launch("activation_forward");
}

template <class T>
void activation_backward(Activation act, const T* saved, const T* dy, T* dx, int64_t n,
                         T negative_slope, const Exec& exec) {
  if (n == 0) return;
  FASTNN_LAUNCH(blocks_for(n, kThreads), kThreads, 0, exec.stream, activation_backward_kernel<T>)(
      Backward<T>{act, negative_slope}, saved, dy, dx, n);
  check_launch("activation_backward");
}

template void add_relu<float>(const float*, const float*, float*, int64_t, const Exec&);
template void add_relu<double>(const double*, const double*, double*, int64_t, const Exec&);
template void activation_forward<float>(Activation, const float*, float*, int64_t, float, const Exec&);
template void activation_forward<double>(Activation, const double*, double*, int64_t, double, const Exec&);
template void activation_backward<float>(Activation, const float*, const float*, float*, int64_t, float,
                                         const Exec&);
template void activation_backward<double>(Activation, const double*, const double*, double*, int64_t,
                                          double, const Exec&);

}  // namespace fastnn::cuda
