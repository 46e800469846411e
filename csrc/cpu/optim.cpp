// Fused optimiser updates; see optim.h. Each element is independent: one threaded pass over
// the whole parameter list.
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>

#include "common/threading.h"

namespace fastnn::cpu {

namespace {

// Elements [begin, end) of one tensor; the callers below split the work.
template <class T>
void sgd_update(T* p, const T* grad, T* buf, int64_t begin, int64_t end, const SgdConfig& cfg) {
  const T lr = static_cast<T>(cfg.lr), mu = static_cast<T>(cfg.momentum),
          wd = static_cast<T>(cfg.weight_decay), damp = T(1) - static_cast<T>(cfg.dampening);
  const bool use_momentum = cfg.momentum != 0.0, nesterov = cfg.nesterov,
             first = cfg.first_step;
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
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
void adam_update(T* p, const T* grad, T* m, T* v, int64_t begin, int64_t end, const AdamConfig& cfg) {
  const double bias1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(cfg.step));
  const double bias2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(cfg.step));
  const T b1 = static_cast<T>(cfg.beta1), b2 = static_cast<T>(cfg.beta2);
  const T step_size = static_cast<T>(cfg.lr / bias1);
  const T inv_sqrt_bias2 = static_cast<T>(1.0 / std::sqrt(bias2));
  const T eps = static_cast<T>(cfg.eps);
  const T l2 = cfg.decoupled_weight_decay ? T(0) : static_cast<T>(cfg.weight_decay);
  const T decay = cfg.decoupled_weight_decay ? static_cast<T>(1.0 - cfg.lr * cfg.weight_decay)
                                             : T(1);
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const T pi = p[i] * decay;
    const T g = grad[i] + l2 * pi;
    const T mi = b1 * m[i] + (T(1) - b1) * g;
    const T vi = b2 * v[i] + (T(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * mi / (std::sqrt(vi) * inv_sqrt_bias2 + eps);
  }
}

// update(tensor, begin, end) over every element of the list in one parallel region: the list's
// elements, tensor after tensor, cut into one contiguous share per thread (a share may span
// several tensors). Each element is updated once, on its own, so the result is the same for
// any split; a region per tensor cost a fork and join each (ResNet-20 has 65 parameters, most
// too small to share). `streams` is how many arrays an element's update reads or writes: the
// thread count follows the bytes moved, with threads_for's grain meant for a one-pass
// element-wise kernel (one array read, one written). SGD with momentum moves 5 (a 784x256
// layer's update took 148 us on one thread, 2.5 times the grain's ~50 us of streaming).
template <class T, class Update>
void for_each_share(const std::vector<OptimTensor<T>>& tensors, int64_t streams, Update update) {
  int64_t total = 0;
  for (const OptimTensor<T>& t : tensors) total += t.numel;
  const int nt = threads_for(total * streams / 2);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int share = 0; share < nt; ++share) {
    const int64_t begin = total * share / nt, end = total * (share + 1) / nt;
    int64_t start = 0;  // of the current tensor in the list's elements
    for (const OptimTensor<T>& t : tensors) {
      const int64_t lo = std::max(begin, start), hi = std::min(end, start + t.numel);
      if (lo < hi) update(t, lo - start, hi - start);
      start += t.numel;
      if (start >= end) break;
    }
  }
}

}  // namespace

template <class T>
void sgd_step(const std::vector<OptimTensor<T>>& tensors, const SgdConfig& cfg, const Exec&) {
  // param, grad and param again; with momentum the buffer read and written too.
  const int64_t streams = cfg.momentum != 0.0 ? 5 : 3;
  for_each_share(tensors, streams, [&](const OptimTensor<T>& t, int64_t begin, int64_t end) {
    sgd_update(t.param, t.grad, t.state0, begin, end, cfg);
  });
}

template <class T>
void adam_step(const std::vector<OptimTensor<T>>& tensors, const AdamConfig& cfg, const Exec&) {
  // param, grad, m and v read; param, m and v written.
  for_each_share(tensors, 7, [&](const OptimTensor<T>& t, int64_t begin, int64_t end) {
    adam_update(t.param, t.grad, t.state0, t.state1, begin, end, cfg);
  });
}

template void sgd_step<float>(const std::vector<OptimTensor<float>>&, const SgdConfig&, const Exec&);
template void sgd_step<double>(const std::vector<OptimTensor<double>>&, const SgdConfig&, const Exec&);
template void adam_step<float>(const std::vector<OptimTensor<float>>&, const AdamConfig&, const Exec&);
template void adam_step<double>(const std::vector<OptimTensor<double>>&, const AdamConfig&,
                                const Exec&);

}  // namespace fastnn::cpu
