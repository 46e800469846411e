// csrc/cuda/activation.cu run whole on the host by emulate.h, through activation_forward and
// activation_backward: the grid-stride loop (sizes past the emulated GPU's 16 blocks of 256
// threads, so it wraps) and each activation's functor. Every element compared with a float64
// evaluation of the definitions (cpu/activation.h): ReLU, leaky ReLU, sigmoid, tanh and GELU
// (x * Phi(x)), forward and backward (from x, or from y for sigmoid and tanh), inputs including
// 0, +-0.5, large magnitudes and NaN. Tolerance |got - want| <= rtol * scale + atol, rtol 1e-13
// / atol 1e-300 in float64 and rtol 2e-6 / atol 1e-30 in float32, scale = |want|, times 1 + x^2
// for GELU (erfc's relative error in the left tail grows as x^2 with the rounding of its
// argument), and for the backward passes of GELU, tanh and sigmoid the size of the terms that
// cancel; NaN where the definition gives NaN. And add_relu (max(a + b, 0)) written in place.
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/activation.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double forward(Activation a, double x, double slope) {
  switch (a) {
    case Activation::relu: return std::isnan(x) ? x : (x < 0 ? 0 : x);
    case Activation::leaky_relu: return x > 0 ? x : slope * x;
    case Activation::sigmoid: return 1 / (1 + std::exp(-x));
    case Activation::tanh: return std::tanh(x);
    default: return x * phi(x);
  }
}

double backward(Activation a, double s, double dy, double slope) {
  switch (a) {
    case Activation::relu: return s > 0 ? dy : 0;
    case Activation::leaky_relu: return s > 0 ? dy : slope * dy;
    case Activation::sigmoid: return dy * s * (1 - s);
    case Activation::tanh: return dy * (1 - s * s);
    default: return dy * (phi(s) + s * std::exp(-0.5 * s * s) / std::sqrt(2 * M_PI));
  }
}

template <class T>
void check(int64_t n, std::mt19937& rng) {
  const double rtol = std::is_same_v<T, double> ? 1e-13 : 2e-6, atol = std::is_same_v<T, double> ? 1e-300 : 1e-30;
  std::normal_distribution<double> normal(0.0, 4.0);
  std::vector<T> x(n), dy(n), y(n), dx(n);
  const double specials[] = {0.0, 0.5, -0.5, 30.0, -30.0, 1e-3, NAN};
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(i < 7 ? specials[i % 7] : normal(rng));
  for (auto& v : dy) v = static_cast<T>(normal(rng));
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  const double slope = 0.125;
  char what[120];
  for (Activation a : {Activation::relu, Activation::leaky_relu, Activation::sigmoid, Activation::tanh, Activation::gelu}) {
    std::snprintf(what, sizeof what, "activation %d %s n %ld", int(a), std::is_same_v<T, double> ? "float64" : "float32", (long)n);
    std::vector<double> want_y(n), want_dx(n);
    for (int64_t i = 0; i < n; ++i) want_y[i] = forward(a, x[i], slope);
    activation_forward(a, x.data(), y.data(), n, T(slope), exec);
    const bool gelu = a == Activation::gelu;
    std::vector<double> scale(n);
    for (int64_t i = 0; i < n; ++i) scale[i] = std::fabs(want_y[i]) * (gelu ? 1 + double(x[i]) * x[i] : 1.0) + atol / rtol;
    fails += count_outside(what, y.data(), want_y, scale, rtol) != 0;
    const bool uses_y = a == Activation::sigmoid || a == Activation::tanh;
    const std::vector<T>& saved = uses_y ? y : x;
    for (int64_t i = 0; i < n; ++i) want_dx[i] = backward(a, saved[i], dy[i], slope);
    activation_backward(a, saved.data(), dy.data(), dx.data(), n, T(slope), exec);
    for (int64_t i = 0; i < n; ++i) {
      const double s = saved[i];
      const double g = std::fabs(double(dy[i]));
      if (gelu) scale[i] = g * (phi(s) + std::fabs(s) * std::exp(-0.5 * s * s)) * (1 + s * s);
      else if (a == Activation::tanh) scale[i] = g * (std::fabs(1 - s * s) + s * s);  // 1 - s^2 cancels as |y| -> 1
      else if (a == Activation::sigmoid) scale[i] = g * std::fabs(s) * (std::fabs(1 - s) + std::fabs(s));
      else scale[i] = std::fabs(want_dx[i]);
      scale[i] += atol / rtol;
    }
    fails += count_outside(what, dx.data(), want_dx, scale, rtol) != 0;
  }
  // add_relu(x, dy) = max(x + dy, 0), written over its first input (the residual's in-place use).
  std::snprintf(what, sizeof what, "add_relu %s n %ld", std::is_same_v<T, double> ? "float64" : "float32", (long)n);
  std::vector<double> want_sum(n), scale_sum(n);
  for (int64_t i = 0; i < n; ++i) {
    want_sum[i] = forward(Activation::relu, double(x[i]) + double(dy[i]), slope);
    scale_sum[i] = std::fabs(double(x[i])) + std::fabs(double(dy[i])) + atol / rtol;
  }
  std::vector<T> sum = x;
  add_relu(sum.data(), dy.data(), sum.data(), n, exec);
  fails += count_outside(what, sum.data(), want_sum, scale_sum, rtol) != 0;
}

int main() {
  std::mt19937 rng(17);
  for (int64_t n : {1, 7, 300, 5000}) {
    check<float>(n, rng);
    check<double>(n, rng);
  }
  std::printf(fails ? "FAILED (%d)\n" : "activation entry points, emulated: ok\n", fails);
  return fails != 0;
}
