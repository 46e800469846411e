// csrc/cuda/linear.cu (+ gemm.cu, band_sums.cu) run whole on the host by emulate.h, through the
// public entry points: the three GEMMs of a linear layer (their shapes and transposes, bias in
// the epilogue, beta = 1 accumulation), and bias_backward_rows' column sums (32 x 8 thread blocks
// over 32 columns each, bands of rows, shared-memory partials, the band sums added in order) for
// one band and, on the emulated one-multiprocessor GPU, two bands, with and without a prior.
// Compared in full with float64 loops; tolerance |got - want| <= rtol * (sum of |terms|), rtol
// 1e-13 in float64 and 2e-6 in float32.
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/linear.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

template <class T>
void expect(const char* what, int64_t B, int64_t I, int64_t O, const Guarded<T>& got, const std::vector<double>& want,
            const std::vector<double>& scale) {
  const double rtol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
  const double err = worst_error(got, want, scale);
  if (!(err <= rtol && got.guards_intact()) && fails++ < 20)
    std::printf("%s %s batch %ld in %ld out %ld: worst error %.3g%s\n", what, std::is_same_v<T, double> ? "float64" : "float32",
                (long)B, (long)I, (long)O, err, got.guards_intact() ? "" : ", wrote outside its output");
}

template <class T>
void check(int64_t B, int64_t I, int64_t O, std::mt19937& rng) {
  LinearShape s;
  s.batch = B, s.in_features = I, s.out_features = O;
  std::normal_distribution<double> normal;
  Guarded<T> x(B * I, 256), w(O * I, 256), b(O, 256), dy(B * O, 256);
  for (auto* g : {&x, &w, &b, &dy})
    for (size_t i = 0; i < g->size(); ++i) (*g)[i] = static_cast<T>(normal(rng));
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};

  std::vector<double> y(B * O), ys(B * O), dx(B * I), dxs(B * I), dw(O * I), dws(O * I), db(O), dbs(O);
  for (int64_t n = 0; n < B; ++n)
    for (int64_t o = 0; o < O; ++o) {
      y[n * O + o] = b[o], ys[n * O + o] = std::fabs(double(b[o]));
      db[o] += dy[n * O + o], dbs[o] += std::fabs(double(dy[n * O + o]));
      for (int64_t i = 0; i < I; ++i) {
        y[n * O + o] += double(x[n * I + i]) * w[o * I + i], ys[n * O + o] += std::fabs(double(x[n * I + i]) * w[o * I + i]);
        dx[n * I + i] += double(dy[n * O + o]) * w[o * I + i], dxs[n * I + i] += std::fabs(double(dy[n * O + o]) * w[o * I + i]);
        dw[o * I + i] += double(dy[n * O + o]) * x[n * I + i], dws[o * I + i] += std::fabs(double(dy[n * O + o]) * x[n * I + i]);
      }
    }
  Guarded<T> gy(B * O, 256), gdx(B * I, 256), gdw(O * I, 256), gdb(O, 256);
  linear_forward(x.data(), w.data(), b.data(), gy.data(), s, false, exec);
  expect("linear_forward", B, I, O, gy, y, ys);
  std::vector<double> relu_y(y.size());
  for (size_t i = 0; i < y.size(); ++i) relu_y[i] = std::max(y[i], 0.0);
  linear_forward(x.data(), w.data(), b.data(), gy.data(), s, true, exec);
  expect("linear_forward relu", B, I, O, gy, relu_y, ys);
  linear_backward_input(dy.data(), w.data(), gdx.data(), s, exec);
  expect("linear_backward_input", B, I, O, gdx, dx, dxs);
  linear_backward_weight(dy.data(), x.data(), gdw.data(), false, s, exec);
  expect("linear_backward_weight", B, I, O, gdw, dw, dws);
  bias_backward_rows(dy.data(), gdb.data(), B, O, false, exec);
  expect("bias_backward_rows", B, I, O, gdb, db, dbs);
  // accumulate: the written gradients again on top
  for (size_t i = 0; i < dw.size(); ++i) dw[i] += double(gdw[i]), dws[i] += std::fabs(double(gdw[i]));
  for (size_t i = 0; i < db.size(); ++i) db[i] += double(gdb[i]), dbs[i] += std::fabs(double(gdb[i]));
  linear_backward_weight(dy.data(), x.data(), gdw.data(), true, s, exec);
  expect("linear_backward_weight (accumulate)", B, I, O, gdw, dw, dws);
  bias_backward_rows(dy.data(), gdb.data(), B, O, true, exec);
  expect("bias_backward_rows (accumulate)", B, I, O, gdb, db, dbs);
}

int main() {
  std::mt19937 rng(5);
  for (auto [B, I, O] : {std::tuple<int64_t, int64_t, int64_t>{5, 7, 70}, {1, 1, 1}, {33, 20, 10}, {600, 3, 40}}) {
    check<float>(B, I, O, rng);
    check<double>(B, I, O, rng);
  }
  std::printf(fails ? "FAILED (%d)\n" : "linear entry points, emulated: ok\n", fails);
  return fails != 0;
}
