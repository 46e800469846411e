// csrc/cuda/l2_normalize.cu and arcface.cu (+ gemm.cu, loss_result.cu) run whole on the host by
// emulate.h, through the public entry points: the row normalisation forward and backward (a warp
// per row, 8 rows per block, strided columns, norms and dot products by shuffles; rows below eps;
// the fused pieces keeping norms, backward in place and accumulating), and the ArcFace loss (the
// two normalisations, the cosine GEMM, the per-row margin / loss / dloss/dcos pass, the loss's
// finish, the two gradient GEMMs) with int32 and int64 labels, with and without each gradient,
// targets past theta + m = pi, one feature (cosines exactly +-1), and bad labels (the first bad
// row reported, no gradient written). Compared in full with float64 loops written from the
// definitions (the margin as cos(acos(c) + m), its derivative as sin(acos(c) + m) / sqrt(1 - c^2)).
// Tolerance |got - want| <= rtol * (largest |want| of the array): float64 1e-10; float32 1e-5 for
// the normalisation (one rounding after double sums) and 2e-4 for the loss and its gradients (cos
// is a float32 GEMM over D <= 40 terms, the logits s * cos with s <= 30 move softmax by
// s * sqrt(D) * 2^-24 relative).
// Built and run by tests/test_cuda_index_maps.py.
#include <algorithm>
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/arcface.h"
#include "cuda/l2_normalize.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

template <class T>
void expect(const char* what, const char* dims, const Guarded<T>& got, const std::vector<double>& want, double rtol) {
  double top = 0;
  for (double w : want) top = std::fmax(top, std::fabs(w));
  const std::vector<double> scale(want.size(), top > 0 ? top : 1.0);
  const double err = worst_error(got, want, scale);
  if (!(err <= rtol && got.guards_intact()) && fails++ < 20)
    std::printf("%s %s %s: worst error %.3g%s\n", what, std::is_same_v<T, double> ? "float64" : "float32", dims, err,
                got.guards_intact() ? "" : ", wrote outside its output");
}

// The float64 definitions, from the values the kernels see.
struct Normalised {
  std::vector<double> y, norm;
};
template <class T>
Normalised normalise(const Guarded<T>& x, int64_t rows, int64_t cols, double eps) {
  Normalised out{std::vector<double>(rows * cols), std::vector<double>(rows)};
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += double(x[r * cols + c]) * double(x[r * cols + c]);
    out.norm[r] = std::sqrt(sum);
    for (int64_t c = 0; c < cols; ++c) out.y[r * cols + c] = double(x[r * cols + c]) / std::max(out.norm[r], eps);
  }
  return out;
}

std::vector<double> normalise_backward(const std::vector<double>& dy, const Normalised& n, int64_t rows, int64_t cols,
                                       double eps) {
  std::vector<double> dx(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += dy[r * cols + c] * n.y[r * cols + c];
    for (int64_t c = 0; c < cols; ++c)
      dx[r * cols + c] = n.norm[r] > eps ? (dy[r * cols + c] - n.y[r * cols + c] * dot) / n.norm[r] : dy[r * cols + c] / eps;
  }
  return dx;
}

template <class T>
std::vector<double> as_double(const Guarded<T>& a) {
  std::vector<double> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i];
  return out;
}

template <class T>
void check_l2(int64_t rows, int64_t cols, std::mt19937& rng) {
  const double rtol = std::is_same_v<T, double> ? 1e-10 : 1e-5, eps = 0.05;
  char dims[64];
  std::snprintf(dims, sizeof dims, "rows %ld cols %ld", (long)rows, (long)cols);
  std::normal_distribution<double> normal;
  Guarded<T> x(rows * cols, 64), dy(rows * cols, 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(normal(rng)), dy[i] = static_cast<T>(normal(rng));
  for (int64_t c = 0; c < cols; ++c) x[c] = T(0);                            // a zero row
  if (rows > 2) for (int64_t c = 0; c < cols; ++c) x[2 * cols + c] *= T(1e-3);  // a row below eps
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  const RowsShape s{rows, cols};
  const Normalised want = normalise(x, rows, cols, eps);
  const std::vector<double> want_dx = normalise_backward(as_double(dy), want, rows, cols, eps);

  Guarded<T> y(rows * cols, 64), dx(rows * cols, 64);
  l2_normalize_forward(x.data(), y.data(), eps, s, exec);
  expect("l2_normalize_forward", dims, y, want.y, rtol);
  l2_normalize_backward(dy.data(), x.data(), dx.data(), eps, s, exec);
  expect("l2_normalize_backward", dims, dx, want_dx, rtol);

  // The fused pieces: norms kept, backward from y and norms in place, then accumulating.
  Guarded<double> norms(rows, 64);
  l2_normalize_rows(x.data(), y.data(), norms.data(), eps, s, exec);
  expect("l2_normalize_rows norms", dims, norms, want.norm, 1e-13);
  Guarded<T> inplace(rows * cols, 64);
  for (size_t i = 0; i < dy.size(); ++i) inplace[i] = dy[i];
  l2_normalize_rows_backward(inplace.data(), y.data(), norms.data(), inplace.data(), eps, false, s, exec);
  expect("l2_normalize_rows_backward (in place)", dims, inplace, want_dx, rtol);
  std::vector<double> twice(want_dx);
  for (size_t i = 0; i < twice.size(); ++i) twice[i] += double(inplace[i]);
  l2_normalize_rows_backward(dy.data(), y.data(), norms.data(), inplace.data(), eps, true, s, exec);
  expect("l2_normalize_rows_backward (accumulate)", dims, inplace, twice, rtol);
}

// The ArcFace margin from its definition: cos(theta + m) while theta + m <= pi, else
// insightface's line cos - sin(pi - m) * m.
void margin_definition(double c, double m, double* value, double* derivative) {
  const double pi = 3.14159265358979323846, theta = std::acos(std::fmax(-1.0, std::fmin(1.0, c)));
  if (theta + m < pi) {
    *value = std::cos(theta + m);
    const double sin_theta = std::sqrt(std::fmax(1.0 - c * c, 0.0));
    *derivative = sin_theta > 0 ? std::sin(theta + m) / sin_theta : std::cos(m);
  } else {
    *value = c - std::sin(pi - m) * m;
    *derivative = 1.0;
  }
}

template <class T>
void check_arcface(int64_t N, int64_t D, int64_t C, double scale, double margin, bool opposite, std::mt19937& rng) {
  const double rtol = std::is_same_v<T, double> ? 1e-10 : 2e-4, eps = 1e-12;
  char dims[96];
  std::snprintf(dims, sizeof dims, "N %ld D %ld C %ld s %g m %g%s", (long)N, (long)D, (long)C, scale, margin,
                opposite ? " (theta + m > pi)" : "");
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int64_t> label(0, C - 1);
  Guarded<T> e(N * D, 64), w(C * D, 64);
  std::vector<int64_t> labels64(N);
  std::vector<int32_t> labels32(N);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<T>(normal(rng));
  for (int64_t n = 0; n < N; ++n) {
    labels64[n] = label(rng), labels32[n] = static_cast<int32_t>(labels64[n]);
    for (int64_t d = 0; d < D; ++d)
      e[n * D + d] = static_cast<T>(opposite ? -double(w[labels64[n] * D + d]) + 0.05 * normal(rng) : 3.0 * normal(rng));
  }
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  const ArcFaceShape s{N, C, D};
  const ArcFaceParams p = ArcFaceParams::make("arcface_loss", scale, margin, eps);

  // The definition in float64.
  const Normalised en = normalise(e, N, D, eps), wn = normalise(w, C, D, eps);
  std::vector<double> dcos(N * C);
  double want_loss = 0;
  int past_pi = 0;
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> logits(C);
    double target_derivative = 1;
    for (int64_t c = 0; c < C; ++c) {
      double cos = 0;
      for (int64_t d = 0; d < D; ++d) cos += en.y[n * D + d] * wn.y[c * D + d];
      if (c == labels64[n]) {
        past_pi += std::acos(std::fmax(-1.0, std::fmin(1.0, cos))) + margin >= 3.14159265358979323846;
        margin_definition(cos, margin, &cos, &target_derivative);
      }
      logits[c] = scale * cos;
    }
    const double mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (double l : logits) sum += std::exp(l - mx);
    want_loss += std::log(sum) + mx - logits[labels64[n]];
    for (int64_t c = 0; c < C; ++c) {
      const double g = (std::exp(logits[c] - mx) / sum - (c == labels64[n])) / double(N);
      dcos[n * C + c] = scale * g * (c == labels64[n] ? target_derivative : 1.0);
    }
  }
  want_loss /= double(N);
  if (opposite && past_pi != N && fails++ < 20) std::printf("arcface %s: only %d of %ld targets past pi\n", dims, past_pi, (long)N);
  std::vector<double> de_hat(N * D), dw_hat(C * D);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t d = 0; d < D; ++d) {
        de_hat[n * D + d] += dcos[n * C + c] * wn.y[c * D + d];
        dw_hat[c * D + d] += dcos[n * C + c] * en.y[n * D + d];
      }
  const std::vector<double> want_de = normalise_backward(de_hat, en, N, D, eps);
  std::vector<double> want_dw = normalise_backward(dw_hat, wn, C, D, eps);

  std::normal_distribution<double> prior_values;
  for (bool int32 : {false, true}) {
    Guarded<T> de(N * D, 64), dw(C * D, 64);
    std::vector<double> want_dw_sum(want_dw);
    for (size_t i = 0; i < dw.size(); ++i) dw[i] = static_cast<T>(prior_values(rng)), want_dw_sum[i] += double(dw[i]);
    const LossResult res = int32 ? arcface_loss(e.data(), w.data(), labels32.data(), p, de.data(), dw.data(), s, exec)
                                 : arcface_loss(e.data(), w.data(), labels64.data(), p, de.data(), dw.data(), s, exec);
    const std::vector<double> loss{want_loss};
    if (count_mismatches(dims, &res.loss, loss, std::is_same_v<T, double> ? 1e-10 : 1e-4, 0.0) || res.first_invalid != -1)
      fails++;
    expect(int32 ? "arcface_loss grad_embeddings (int32 labels)" : "arcface_loss grad_embeddings", dims, de, want_de, rtol);
    expect("arcface_loss grad_weight (accumulated)", dims, dw, want_dw_sum, rtol);
  }
  // Each gradient alone, and none.
  Guarded<T> de(N * D, 64), dw(C * D, 64);
  for (size_t i = 0; i < dw.size(); ++i) dw[i] = T(0);
  arcface_loss(e.data(), w.data(), labels64.data(), p, static_cast<T*>(nullptr), dw.data(), s, exec);
  expect("arcface_loss grad_weight alone", dims, dw, want_dw, rtol);
  arcface_loss(e.data(), w.data(), labels64.data(), p, de.data(), static_cast<T*>(nullptr), s, exec);
  expect("arcface_loss grad_embeddings alone", dims, de, want_de, rtol);
  const LossResult no_grad = arcface_loss(e.data(), w.data(), labels64.data(), p, static_cast<T*>(nullptr),
                                          static_cast<T*>(nullptr), s, exec);
  if (count_mismatches(dims, &no_grad.loss, std::vector<double>{want_loss}, std::is_same_v<T, double> ? 1e-10 : 1e-4, 0.0))
    fails++;

  // Bad labels in the last row and in row 1: row 1 is reported, nothing is written.
  std::vector<int64_t> bad(labels64);
  bad[N - 1] = C;
  if (N > 2) bad[1] = -1;
  Guarded<T> untouched_de(N * D, 64), untouched_dw(C * D, 64);
  for (size_t i = 0; i < untouched_dw.size(); ++i) untouched_dw[i] = T(7);
  const LossResult res = arcface_loss(e.data(), w.data(), bad.data(), p, untouched_de.data(), untouched_dw.data(), s, exec);
  bool ok = res.first_invalid == (N > 2 ? 1 : N - 1);
  for (size_t i = 0; i < untouched_de.size(); ++i) ok &= std::isnan(double(untouched_de[i]));
  for (size_t i = 0; i < untouched_dw.size(); ++i) ok &= untouched_dw[i] == T(7);
  if (!ok && fails++ < 20) std::printf("arcface_loss %s with bad labels: first_invalid %ld\n", dims, (long)res.first_invalid);
}

int main() {
  std::mt19937 rng(11);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 40}, {19, 33}, {9, 70}}) {
    check_l2<float>(rows, cols, rng);
    check_l2<double>(rows, cols, rng);
  }
  struct Case {
    int64_t N, D, C;
    double scale, margin;
    bool opposite;
  };
  for (const Case& c : {Case{1, 1, 1, 30.0, 0.5, false}, Case{5, 1, 2, 16.0, 0.5, false}, Case{9, 40, 37, 30.0, 0.5, false},
                        Case{19, 7, 3, 8.0, 1.2, false}, Case{11, 24, 5, 30.0, 0.5, true}}) {
    check_arcface<float>(c.N, c.D, c.C, c.scale, c.margin, c.opposite, rng);
    check_arcface<double>(c.N, c.D, c.C, c.scale, c.margin, c.opposite, rng);
  }
  std::printf(fails ? "FAILED (%d)\n" : "arcface and l2_normalize entry points, emulated: ok\n", fails);
  return fails != 0;
}
