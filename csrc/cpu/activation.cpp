// Activations: one threaded elementwise loop, one small functor per op (see activation.h).
#include "cpu/activation.h"

#include <cmath>

#include "common/threading.h"

namespace fastnn::cpu {
namespace {

template <class F>
void for_each_index(int64_t n, F f) {
  const int nt = threads_for(n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

template <class T>
inline T sigmoid(T x) {
  // Two branches so exp never overflows: exp(-|x|) is in (0, 1].
  const T e = std::exp(-std::fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <class T>
constexpr T kInvSqrt2 = T(0.70710678118654752440);
template <class T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);

// Phi(x) = (1 + erf(x / sqrt 2)) / 2, written with erfc so that the left tail keeps its
// relative accuracy (1 + erf(x) cancels to 0 in float32 for x < -4).
template <class T>
inline T normal_cdf(T x) {
  return T(0.5) * std::erfc(-x * kInvSqrt2<T>);
}

}  // namespace

template <class T>
void activation_forward(Activation act, const T* x, T* y, int64_t n, T negative_slope, const Exec&) {
  switch (act) {
    case Activation::relu:
      // NaN stays NaN (as PyTorch's relu and the GEMM epilogue's fused ReLU).
      for_each_index(n, [=](int64_t i) { y[i] = x[i] < T(0) ? T(0) : x[i]; });
      break;
    case Activation::leaky_relu:
      for_each_index(n, [=](int64_t i) { y[i] = x[i] > T(0) ? x[i] : negative_slope * x[i]; });
      break;
    case Activation::sigmoid:
      for_each_index(n, [=](int64_t i) { y[i] = sigmoid(x[i]); });
      break;
    case Activation::tanh:
      for_each_index(n, [=](int64_t i) { y[i] = std::tanh(x[i]); });
      break;
    case Activation::gelu:
      for_each_index(n, [=](int64_t i) {
        y[i] = x[i] * normal_cdf(x[i]);
      });
      break;
  }
}

template <class T>
void activation_backward(Activation act, const T* saved, const T* dy, T* dx, int64_t n,
                         T negative_slope, const Exec&) {
  switch (act) {
    case Activation::relu:
      // dy[i] is loaded whatever the sign, so the select vectorises; written as
      // `saved > 0 ? dy[i] : 0` the load was conditional and the loop a mispredicted branch per
      // element (35x slower on random signs).
      for_each_index(n, [=](int64_t i) {
        const T g = dy[i];
        dx[i] = saved[i] > T(0) ? g : T(0);
      });
      break;
    case Activation::leaky_relu:
      for_each_index(n, [=](int64_t i) {
        const T g = dy[i];
        dx[i] = saved[i] > T(0) ? g : negative_slope * g;
      });
      break;
    case Activation::sigmoid:
      for_each_index(n, [=](int64_t i) { dx[i] = dy[i] * saved[i] * (T(1) - saved[i]); });
      break;
    case Activation::tanh:
      for_each_index(n, [=](int64_t i) { dx[i] = dy[i] * (T(1) - saved[i] * saved[i]); });
      break;
    case Activation::gelu:
      for_each_index(n, [=](int64_t i) {
        const T v = saved[i];
        const T cdf = normal_cdf(v);
        const T pdf = kInvSqrt2Pi<T> * std::exp(T(-0.5) * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
      });
      break;
  }
}

template <class T>
void add_relu(const T* a, const T* b, T* y, int64_t n, const Exec&) {
  // Same rounding as a + b then relu: one float add, then the NaN-keeping max.
  for_each_index(n, [=](int64_t i) {
    const T v = a[i] + b[i];
    y[i] = v < T(0) ? T(0) : v;
  });
}

template void add_relu<float>(const float*, const float*, float*, int64_t, const Exec&);
template void add_relu<double>(const double*, const double*, double*, int64_t, const Exec&);
template void activation_forward<float>(Activation, const float*, float*, int64_t, float, const Exec&);
template void activation_forward<double>(Activation, const double*, double*, int64_t, double, const Exec&);
template void activation_backward<float>(Activation, const float*, const float*, float*, int64_t,
                                         float, const Exec&);
template void activation_backward<double>(Activation, const double*, const double*, double*,
                                          int64_t, double, const Exec&);

}  // namespace fastnn::cpu
