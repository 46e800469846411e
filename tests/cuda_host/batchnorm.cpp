// csrc/cuda/batchnorm.cu (+ band_sums.h's banding) run whole on the host by emulate.h: the
// per-channel band sums (block per (channel, band), the BnDims offsets of (N, C, S) layouts,
// block reductions in double), the finishing kernels and the elementwise passes, through the
// public entry points. Compared in full with float64 loops over the definition (cpu/batchnorm.h):
// training forward (saved mean and 1/std, running estimates with the unbiased variance), eval
// forward, backward in training and eval mode with weight and bias gradients written and
// accumulated, and without an affine transform; the fused ReLU's forward and backward (dy masked
// where the forward's y > 0, the mask read from the kernel's own y). Shapes: BatchNorm1d (S = 1), 2d planes, one
// channel, and enough values per channel for two bands on the emulated one-multiprocessor GPU.
// Tolerance: |got - want| <= rtol * scale, scale the size of the terms (|x - mean| * 1/std * |w|
// + |b| and the like), rtol 1e-12 in float64 and 4e-6 in float32 (statistics in double, the
// output rounded a few times in float).
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/batchnorm.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

template <class T>
void expect(const char* what, const BatchNormShape& s, const std::vector<T>& got, const std::vector<double>& want,
            const std::vector<double>& scale) {
  const double rtol = std::is_same_v<T, double> ? 1e-12 : 4e-6;
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (!(std::fabs(double(got[i]) - want[i]) <= rtol * scale[i] + 1e-300)) {
      if (bad++ < 3)
        std::printf("%s %s N%ld C%ld S%ld: element %zu is %.17g, want %.17g\n", what,
                    std::is_same_v<T, double> ? "float64" : "float32", (long)s.batch, (long)s.channels,
                    (long)s.spatial, i, double(got[i]), want[i]);
    }
  fails += bad != 0;
}

template <class T>
void check(int64_t N, int64_t C, int64_t S, std::mt19937& rng) {
  BatchNormShape s;
  s.batch = N, s.channels = C, s.spatial = S;
  const int64_t total = N * C * S, count = N * S;
  const double momentum = 0.1, eps = 1e-5;
  std::normal_distribution<double> normal;
  std::vector<T> x(total), dy(total), w(C), b(C), y(total), save_mean(C), save_inv_std(C), run_mean(C), run_var(C);
  for (auto& v : x) v = static_cast<T>(1.5 + 2.0 * normal(rng));
  for (auto& v : dy) v = static_cast<T>(normal(rng));
  for (int64_t c = 0; c < C; ++c) {
    w[c] = static_cast<T>(1 + 0.5 * normal(rng)), b[c] = static_cast<T>(normal(rng));
    run_mean[c] = static_cast<T>(normal(rng)), run_var[c] = static_cast<T>(1 + std::fabs(normal(rng)));
  }
  const std::vector<T> run_mean0 = run_mean, run_var0 = run_var;
  auto at = [&](int64_t n, int64_t c, int64_t i) { return (n * C + c) * S + i; };
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};

  // Training forward.
  batch_norm_train_forward(x.data(), w.data(), b.data(), y.data(), save_mean.data(), save_inv_std.data(),
                           run_mean.data(), run_var.data(), momentum, eps, false, s, exec);
  std::vector<double> mean(C), var(C), want_y(total), scale_y(total), ones(C, 1.0);
  std::vector<double> want_rm(C), want_rv(C), want_inv(C), abs_rm(C), abs_rv(C);
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) sum += x[at(n, c, i)];
    mean[c] = sum / double(count);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) sq += (x[at(n, c, i)] - mean[c]) * (x[at(n, c, i)] - mean[c]);
    var[c] = sq / double(count);
    want_inv[c] = 1.0 / std::sqrt(var[c] + eps);
    want_rm[c] = (1 - momentum) * run_mean0[c] + momentum * mean[c];
    want_rv[c] = (1 - momentum) * run_var0[c] + momentum * var[c] * double(count) / double(count - 1);
    abs_rm[c] = std::fabs(run_mean0[c]) + std::fabs(mean[c]), abs_rv[c] = std::fabs(want_rv[c]);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) {
        const int64_t k = at(n, c, i);
        want_y[k] = (x[k] - mean[c]) * want_inv[c] * w[c] + b[c];
        scale_y[k] = (std::fabs(double(x[k])) + std::fabs(mean[c])) * want_inv[c] * std::fabs(double(w[c])) +
                     std::fabs(double(b[c]));
      }
  }
  std::vector<double> abs_mean(C), abs_inv(C);
  for (int64_t c = 0; c < C; ++c) abs_mean[c] = std::fabs(mean[c]) + std::sqrt(var[c]), abs_inv[c] = want_inv[c];
  expect("batch_norm_train_forward y", s, y, want_y, scale_y);
  expect("batch_norm_train_forward save_mean", s, save_mean, mean, abs_mean);
  expect("batch_norm_train_forward save_inv_std", s, save_inv_std, want_inv, abs_inv);
  expect("batch_norm_train_forward running_mean", s, run_mean, want_rm, abs_rm);
  expect("batch_norm_train_forward running_var", s, run_var, want_rv, abs_rv);

  // Eval forward with the running estimates, no affine transform.
  std::vector<T> ye(total);
  batch_norm_eval_forward(x.data(), static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), run_mean0.data(),
                          run_var0.data(), ye.data(), eps, false, s, exec);
  std::vector<double> want_ye(total), scale_ye(total);
  for (int64_t k = 0; k < total; ++k) {
    const int64_t c = (k / S) % C;
    const double inv = 1.0 / std::sqrt(double(run_var0[c]) + eps);
    want_ye[k] = (double(x[k]) - run_mean0[c]) * inv;
    scale_ye[k] = (std::fabs(double(x[k])) + std::fabs(double(run_mean0[c]))) * inv;
  }
  expect("batch_norm_eval_forward", s, ye, want_ye, scale_ye);

  // The fused ReLU forward: max(y, 0) of the same values.
  std::vector<T> yr(total), relu_mean(C), relu_inv_std(C);
  batch_norm_train_forward(x.data(), w.data(), b.data(), yr.data(), relu_mean.data(), relu_inv_std.data(),
                           static_cast<T*>(nullptr), static_cast<T*>(nullptr), momentum, eps, true, s, exec);
  std::vector<double> want_yr(total);
  for (int64_t k = 0; k < total; ++k) want_yr[k] = want_y[k] < 0 ? 0.0 : want_y[k];
  expect("batch_norm_train_forward relu", s, yr, want_yr, scale_y);

  // Backward from the saved statistics, training and eval, gradients accumulated into a prior;
  // and the fused ReLU's (training), whose dy is masked where the stored y (yr) is positive.
  for (int mode = 0; mode < 3; ++mode) {
    const bool training = mode != 1, relu = mode == 2;
    std::vector<T> dx(total), dw(C, T(0.5)), db(C, T(-0.25));
    batch_norm_backward(dy.data(), x.data(), w.data(), b.data(), save_mean.data(), save_inv_std.data(), dx.data(),
                        dw.data(), db.data(), true, training, relu, s, exec);
    auto g_at = [&](int64_t k) { return relu && !(yr[k] > T(0)) ? 0.0 : double(dy[k]); };
    std::vector<double> want_dx(total), scale_dx(total), want_dw(C), scale_dw(C), want_db(C), scale_db(C);
    for (int64_t c = 0; c < C; ++c) {
      const double m = save_mean[c], r = save_inv_std[c];
      double sdy = 0, sdy_xhat = 0, abs_dy = 0, abs_dy_xhat = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t k = at(n, c, i);
          const double xhat = (double(x[k]) - m) * r;
          sdy += g_at(k), sdy_xhat += g_at(k) * xhat;
          abs_dy += std::fabs(g_at(k)), abs_dy_xhat += std::fabs(g_at(k) * xhat);
        }
      want_db[c] = -0.25 + sdy, scale_db[c] = 0.25 + abs_dy;
      want_dw[c] = 0.5 + sdy_xhat, scale_dw[c] = 0.5 + abs_dy_xhat;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t k = at(n, c, i);
          const double xhat = (double(x[k]) - m) * r, g = double(w[c]) * r;
          want_dx[k] = training ? g * (g_at(k) - sdy / double(count) - xhat * sdy_xhat / double(count)) : g * g_at(k);
          scale_dx[k] = std::fabs(g) * (std::fabs(g_at(k)) + (abs_dy + std::fabs(xhat) * abs_dy_xhat) / double(count));
        }
    }
    expect(relu ? "batch_norm_backward dx (relu)" : training ? "batch_norm_backward dx (training)" : "batch_norm_backward dx (eval)",
           s, dx, want_dx, scale_dx);
    expect("batch_norm_backward dweight (accumulated)", s, dw, want_dw, scale_dw);
    expect("batch_norm_backward dbias (accumulated)", s, db, want_db, scale_db);
  }
}

int main() {
  std::mt19937 rng(11);
  for (auto [N, C, S] : {std::tuple<int64_t, int64_t, int64_t>{4, 3, 5}, {7, 5, 1}, {2, 1, 1}, {3, 2, 700}}) {
    check<float>(N, C, S, rng);
    check<double>(N, C, S, rng);
  }
  std::printf(fails ? "FAILED (%d)\n" : "batchnorm entry points, emulated: ok\n", fails);
  return fails != 0;
}
