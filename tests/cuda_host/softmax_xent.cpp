// csrc/cuda/softmax_xent.cu (+ loss_result.cu) run whole on the host by emulate.h: the public
// entry points, their launch shapes (a warp per row, 8 rows per block) and kernels (butterfly
// max / sum shuffles, strided columns), and the loss's one-block finish. Compared in full with
// float64 direct loops over the definitions (cpu/softmax_xent.h): softmax and log-softmax
// forward and backward, cross-entropy loss and gradient with and without label smoothing, int32
// and int64 labels, no gradient requested, and a bad label (reported as the first bad row, its
// row's loss and gradient NaN). Rows of 1 to 70 classes (one and several column strides), 1 to
// 19 rows (partial blocks of rows). Tolerances: |got - want| <= atol + rtol * |want|, rtol 1e-12 /
// atol 1e-14 in float64 and rtol 2e-6 / atol 1e-7 in float32 (a few roundings of exp and sums),
// relative to the size of the terms where the result cancels (log-softmax forward and backward).
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/softmax_xent.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

template <class T>
void check(int64_t rows, int64_t cols, std::mt19937& rng) {
  const RowsShape s{rows, cols};
  const double rtol = std::is_same_v<T, double> ? 1e-12 : 2e-6, atol = std::is_same_v<T, double> ? 1e-14 : 1e-7;
  char what[160];
  auto expect = [&](const char* name, const auto* got, const std::vector<double>& want) {
    std::snprintf(what, sizeof what, "%s %s rows %ld cols %ld", name, std::is_same_v<T, double> ? "float64" : "float32",
                  (long)rows, (long)cols);
    fails += count_mismatches(what, got, want, rtol, atol) != 0;
  };
  std::normal_distribution<double> normal(0.0, 3.0);
  const int64_t n = rows * cols;
  std::vector<T> x(n), dy(n), y(n), ly(n), dx(n), grad(n);
  for (auto& v : x) v = static_cast<T>(normal(rng));
  for (auto& v : dy) v = static_cast<T>(normal(rng));
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};

  // The definitions, row by row, from the values the kernels see.
  std::vector<double> want_y(n), want_ly(n), want_sdx(n), want_ldx(n), lse(rows), m(rows);
  for (int64_t r = 0; r < rows; ++r) {
    double mx = x[r * cols];
    for (int64_t c = 0; c < cols; ++c) mx = std::fmax(mx, double(x[r * cols + c]));
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(double(x[r * cols + c]) - mx);
    m[r] = mx, lse[r] = std::log(sum);
    for (int64_t c = 0; c < cols; ++c) {
      want_y[r * cols + c] = std::exp(double(x[r * cols + c]) - mx) / sum;
      want_ly[r * cols + c] = double(x[r * cols + c]) - mx - lse[r];
    }
  }
  softmax_forward(x.data(), y.data(), s, exec);
  log_softmax_forward(x.data(), ly.data(), s, exec);
  expect("softmax_forward", y.data(), want_y);
  {  // x - (m + lse) cancels near the row's maximum: the bound follows the size of its terms
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = i / cols;
      const double scale = std::fabs(double(x[i])) + std::fabs(m[r]) + std::fabs(lse[r]);
      if (!(std::fabs(double(ly[i]) - want_ly[i]) <= atol + rtol * scale)) bad++;
    }
    if (bad && fails++ < 20) std::printf("log_softmax_forward rows %ld cols %ld: %d wrong\n", (long)rows, (long)cols, bad);
  }
  // Backward from the kernels' own forward outputs (as training does).
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0, sum_dy = 0;
    for (int64_t c = 0; c < cols; ++c) dot += double(dy[r * cols + c]) * double(y[r * cols + c]), sum_dy += dy[r * cols + c];
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      want_sdx[i] = double(y[i]) * (double(dy[i]) - dot);
      want_ldx[i] = double(dy[i]) - std::exp(double(ly[i])) * sum_dy;
    }
  }
  softmax_backward(y.data(), dy.data(), dx.data(), s, exec);
  expect("softmax_backward", dx.data(), want_sdx);
  log_softmax_backward(ly.data(), dy.data(), dx.data(), s, exec);
  // dy - exp(y) * sum(dy) cancels: compare against the size of its terms
  std::vector<double> scale(n);
  for (int64_t i = 0; i < n; ++i) scale[i] = std::fabs(double(dy[i])) + std::fabs(std::exp(double(ly[i]))) * cols * 10;
  {
    int bad = 0;
    for (int64_t i = 0; i < n; ++i)
      if (!(std::fabs(double(dx[i]) - want_ldx[i]) <= atol + rtol * scale[i])) bad++;
    if (bad && fails++ < 20) std::printf("log_softmax_backward rows %ld cols %ld: %d wrong\n", (long)rows, (long)cols, bad);
  }

  // Cross-entropy: loss = mean_r [lse - sum_c q_c (x_c - m)], grad = (softmax - q) / rows.
  std::uniform_int_distribution<int64_t> label(0, cols - 1);
  std::vector<int64_t> labels64(rows);
  std::vector<int32_t> labels32(rows);
  for (int64_t r = 0; r < rows; ++r) labels64[r] = label(rng), labels32[r] = static_cast<int32_t>(labels64[r]);
  for (double eps : {0.0, 0.1}) {
    double want_loss = 0;
    std::vector<double> want_grad(n);
    for (int64_t r = 0; r < rows; ++r) {
      double row = lse[r];
      for (int64_t c = 0; c < cols; ++c) {
        const double q = (c == labels64[r] ? 1.0 - eps : 0.0) + eps / double(cols);
        row -= q * (double(x[r * cols + c]) - m[r]);
        want_grad[r * cols + c] = (want_y[r * cols + c] - q) / double(rows);
      }
      want_loss += row;
    }
    want_loss /= double(rows);
    for (bool int32 : {false, true}) {
      std::fill(grad.begin(), grad.end(), T(NAN));
      const LossResult res = int32 ? softmax_cross_entropy(x.data(), labels32.data(), T(eps), grad.data(), s, exec)
                                   : softmax_cross_entropy(x.data(), labels64.data(), T(eps), grad.data(), s, exec);
      expect(int32 ? "softmax_cross_entropy gradient (int32 labels)" : "softmax_cross_entropy gradient", grad.data(),
             want_grad);
      const std::vector<double> loss{want_loss};
      expect("softmax_cross_entropy loss", &res.loss, loss);
      if (res.first_invalid != -1 && fails++ < 20) std::printf("softmax_cross_entropy: first_invalid %ld\n", (long)res.first_invalid);
    }
    const LossResult no_grad = softmax_cross_entropy(x.data(), labels64.data(), T(eps), static_cast<T*>(nullptr), s, exec);
    expect("softmax_cross_entropy loss (no gradient)", &no_grad.loss, std::vector<double>{want_loss});
  }

  // A label out of range in the last row and another in row 0 when there are several: the first
  // bad row is reported, the loss is NaN and so is each bad row's gradient.
  std::vector<int64_t> bad = labels64;
  bad[rows - 1] = cols;
  if (rows > 2) bad[1] = -1;
  std::fill(grad.begin(), grad.end(), T(0));
  const LossResult res = softmax_cross_entropy(x.data(), bad.data(), T(0), grad.data(), s, exec);
  const int64_t want_first = rows > 2 ? 1 : rows - 1;
  bool bad_ok = res.first_invalid == want_first && std::isnan(res.loss);
  for (int64_t c = 0; c < cols; ++c) bad_ok &= std::isnan(double(grad[(rows - 1) * cols + c]));
  if (!bad_ok && fails++ < 20)
    std::printf("softmax_cross_entropy with bad labels rows %ld: first_invalid %ld (want %ld), loss %g\n", (long)rows,
                (long)res.first_invalid, (long)want_first, res.loss);
}

int main() {
  std::mt19937 rng(3);
  for (int64_t rows : {1, 3, 19})
    for (int64_t cols : {1, 33, 70}) {
      check<float>(rows, cols, rng);
      check<double>(rows, cols, rng);
    }
  std::printf(fails ? "FAILED (%d)\n" : "softmax_xent entry points, emulated: ok\n", fails);
  return fails != 0;
}
