// Fused optimiser updates; see optim.h. Each element is independent: one threaded pass.
#include "cpu/optim.h"

#include <cmath>

#include "common/threading.h"

namespace fastnn::cpu {

namespace {

template <class T>
void sgd_update(T* p, const T* grad, T* buf, int64_t n, const SgdConfig& cfg) {
  const T lr = static_cast<T>(cfg.lr), mu = static_cast<T>(cfg.momentum),
          wd = static_cast<T>(cfg.weight_decay), damp = T(1) - static_cast<T>(cfg.dampening);
  const bool use_momentum = cfg.momentum != 0.0, nesterov = cfg.nesterov,
             first = cfg.first_step;
  const int nt = threads_for(n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i] + wd * p[i];
    if (use_momentum) {
      const T b = first ? g : mu * buf[i] + damp * g;
      buf[i] = b;
      g = nesterov ? g + mu * b : b;
    }
    p[i] -= lr * g;
  }
}

template <class T>
void adam_update(T* p, const T* grad, T* m, T* v, int64_t n, const AdamConfig& cfg) {
  const double bias1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(cfg.step));
  const double bias2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(cfg.step));
  const T b1 = static_cast<T>(cfg.beta1), b2 = static_cast<T>(cfg.beta2);
  const T step_size = static_cast<T>(cfg.lr / bias1);
  const T inv_sqrt_bias2 = static_cast<T>(1.0 / std::sqrt(bias2));
  const T eps = static_cast<T>(cfg.eps);
  const T l2 = cfg.decoupled_weight_decay ? T(0) : static_cast<T>(cfg.weight_decay);
  const T decay = cfg.decoupled_weight_decay ? static_cast<T>(1.0 - cfg.lr * cfg.weight_decay)
                                             : T(1);
  const int nt = threads_for(n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i] * decay;
    const T g = grad[i] + l2 * pi;
    const T mi = b1 * m[i] + (T(1) - b1) * g;
    const T vi = b2 * v[i] + (T(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * mi / (std::sqrt(vi) * inv_sqrt_bias2 + eps);
  }
}

}  // namespace

template <class T>
void sgd_step(const std::vector<OptimTensor<T>>& tensors, const SgdConfig& cfg, const Exec&) {
  for (const OptimTensor<T>& t : tensors) sgd_update(t.param, t.grad, t.state0, t.numel, cfg);
}

template <class T>
void adam_step(const std::vector<OptimTensor<T>>& tensors, const AdamConfig& cfg, const Exec&) {
  for (const OptimTensor<T>& t : tensors)
    adam_update(t.param, t.grad, t.state0, t.state1, t.numel, cfg);
}

template void sgd_step<float>(const std::vector<OptimTensor<float>>&, const SgdConfig&, const Exec&);
template void sgd_step<double>(const std::vector<OptimTensor<double>>&, const SgdConfig&, const Exec&);
template void adam_step<float>(const std::vector<OptimTensor<float>>&, const AdamConfig&, const Exec&);
template void adam_step<double>(const std::vector<OptimTensor<double>>&, const AdamConfig&,
                                const Exec&);

}  // namespace fastnn::cpu
