// csrc/cuda/optim.cu run whole on the host by emulate.h: multi_tensor_apply's chunk tables (a
// block per 65536-element chunk, tensors registered per table, a new table and launch when 48
// tensors are in one, empty tensors skipped) and the update kernels, through
// sgd_step and adam_step. A list of 60 tensors (sizes 0 to 300, one of three chunks in the
// middle) is updated and every element compared with a float64 loop over the rules of
// cpu/optim.h: SGD plain, with momentum (first step and later, dampening, Nesterov) and weight
// decay; Adam with L2 decay and AdamW with decoupled decay. Tolerance: |got - want| <=
// rtol * (|p| + |state| + 1), rtol 1e-13 in float64 and 2e-6 in float32 (a few roundings).
// Not covered: 320 chunks in one table (2e7 elements), where a tensor's chunks continue in the
// next table.
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/optim.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

template <class T>
struct Params {
  std::vector<std::vector<T>> p, g, s0, s1;
};

template <class T>
Params<T> make(std::mt19937& rng) {
  std::uniform_int_distribution<int64_t> size(0, 300);
  std::normal_distribution<double> normal;
  Params<T> ps;
  for (int t = 0; t < 60; ++t) {
    const int64_t n = t == 30 ? 2 * 65536 + 5 : (t == 7 ? 0 : size(rng));
    for (auto* v : {&ps.p, &ps.g, &ps.s0, &ps.s1}) {
      v->emplace_back(n);
      for (T& e : v->back()) e = static_cast<T>(normal(rng));
    }
    for (T& e : ps.s1.back()) e = std::fabs(e);  // Adam's second moment
  }
  return ps;
}

template <class T>
std::vector<OptimTensor<T>> list(Params<T>& ps) {
  std::vector<OptimTensor<T>> out;
  for (size_t t = 0; t < ps.p.size(); ++t)
    out.push_back({ps.p[t].data(), ps.g[t].data(), ps.s0[t].data(), ps.s1[t].data(), int64_t(ps.p[t].size())});
  return out;
}

template <class T>
void compare(const char* what, const Params<T>& got, const Params<double>& want) {
  const double rtol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
  int bad = 0;
  for (size_t t = 0; t < want.p.size(); ++t)
    for (size_t i = 0; i < want.p[t].size(); ++i) {
      const double scale = std::fabs(want.p[t][i]) + std::fabs(want.s0[t][i]) + std::fabs(want.s1[t][i]) + 1;
      const bool ok = std::fabs(double(got.p[t][i]) - want.p[t][i]) <= rtol * scale &&
                      std::fabs(double(got.s0[t][i]) - want.s0[t][i]) <= rtol * scale &&
                      std::fabs(double(got.s1[t][i]) - want.s1[t][i]) <= rtol * scale;
      if (!ok && bad++ < 3)
        std::printf("%s %s: tensor %zu element %zu: param %.17g want %.17g\n", what,
                    std::is_same_v<T, double> ? "float64" : "float32", t, i, double(got.p[t][i]), want.p[t][i]);
    }
  fails += bad != 0;
}

template <class T>
Params<double> widen(const Params<T>& ps) {
  Params<double> out;
  for (size_t t = 0; t < ps.p.size(); ++t) {
    out.p.emplace_back(ps.p[t].begin(), ps.p[t].end());
    out.g.emplace_back(ps.g[t].begin(), ps.g[t].end());
    out.s0.emplace_back(ps.s0[t].begin(), ps.s0[t].end());
    out.s1.emplace_back(ps.s1[t].begin(), ps.s1[t].end());
  }
  return out;
}

template <class T>
void check(std::mt19937& rng) {
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  for (const SgdConfig cfg : {SgdConfig{0.1, 0.0, 0.0, 0.0, false, false}, SgdConfig{0.05, 0.9, 0.0, 5e-4, false, true},
                              SgdConfig{0.05, 0.9, 0.1, 5e-4, false, false}, SgdConfig{0.02, 0.8, 0.0, 0.0, true, false}}) {
    Params<T> ps = make<T>(rng);
    Params<double> want = widen(ps);
    for (size_t t = 0; t < want.p.size(); ++t)
      for (size_t i = 0; i < want.p[t].size(); ++i) {
        double g = want.g[t][i] + cfg.weight_decay * want.p[t][i];
        if (cfg.momentum != 0.0) {
          const double b = cfg.first_step ? g : cfg.momentum * want.s0[t][i] + (1 - cfg.dampening) * g;
          want.s0[t][i] = b;
          g = cfg.nesterov ? g + cfg.momentum * b : b;
        }
        want.p[t][i] -= cfg.lr * g;
      }
    sgd_step(list(ps), cfg, exec);
    compare("sgd_step", ps, want);
  }
  for (const AdamConfig cfg : {AdamConfig{1e-3, 0.9, 0.999, 1e-8, 0.0, 1, false}, AdamConfig{1e-2, 0.8, 0.99, 1e-6, 0.1, 7, false},
                               AdamConfig{1e-2, 0.9, 0.999, 1e-8, 0.05, 3, true}}) {
    Params<T> ps = make<T>(rng);
    Params<double> want = widen(ps);
    const double bias1 = 1 - std::pow(cfg.beta1, double(cfg.step)), bias2 = 1 - std::pow(cfg.beta2, double(cfg.step));
    for (size_t t = 0; t < want.p.size(); ++t)
      for (size_t i = 0; i < want.p[t].size(); ++i) {
        double p = want.p[t][i];
        if (cfg.decoupled_weight_decay) p *= 1 - cfg.lr * cfg.weight_decay;
        const double g = want.g[t][i] + (cfg.decoupled_weight_decay ? 0.0 : cfg.weight_decay * p);
        const double m = cfg.beta1 * want.s0[t][i] + (1 - cfg.beta1) * g;
        const double v = cfg.beta2 * want.s1[t][i] + (1 - cfg.beta2) * g * g;
        want.s0[t][i] = m, want.s1[t][i] = v;
        want.p[t][i] = p - cfg.lr * (m / bias1) / (std::sqrt(v / bias2) + cfg.eps);
      }
    adam_step(list(ps), cfg, exec);
    compare(cfg.decoupled_weight_decay ? "adamw_step" : "adam_step", ps, want);
  }
}

int main() {
  std::mt19937 rng(9);
  check<float>(rng);
  check<double>(rng);
  std::printf(fails ? "FAILED (%d)\n" : "optim entry points, emulated: ok\n", fails);
  return fails != 0;
}
