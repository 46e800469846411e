// csrc/cuda/similarity.cu (+ gemm.cu) run whole on the host by emulate.h, through its entry
// points: pairwise_similarity for the three metrics (row norms by warps, the operand copies,
// the GEMM with sqeuclidean's epilogue), its backward (the GEMMs, the normalisation's row pass,
// the clamp mask, row and column sums), topk (one block per row, k rounds of block reductions)
// with ties, NaN and k = 1 / k = cols, and similarity_topk in several chunks (a small scratch
// budget) and in one. Compared with float64 loops over the definitions (common/shapes/
// similarity.h). Tolerances: relative Frobenius error <= 1e-12 (float64) and 1e-5 (float32; sums
// of at most 40 products and a normalisation); top-k indices exactly where the inputs are the
// same values (topk), and for similarity_topk the returned values within tolerance of the
// float64 similarity at the returned columns, in ranking order, with nothing left out that ranks
// clearly better.
// Built and run by tests/test_cuda_index_maps.py.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/similarity.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

template <class T>
double rtol() {
  return std::is_same_v<T, double> ? 1e-12 : 1e-5;
}

// ||got - want|| / ||scale|| (scale: want itself, or the terms want is made of where they cancel).
template <class T>
void expect_close(const char* what, const T* got, const std::vector<double>& want, double tol,
                  const std::vector<double>* scale = nullptr) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += scale ? (*scale)[i] * (*scale)[i] : want[i] * want[i];
  }
  const double err = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  if (!(err <= tol) && fails++ < 20) std::printf("%s: relative error %.3g > %.3g\n", what, err, tol);
}

// cosine's gradients cancel (for D = 1 they are 0): their errors are measured against
// d x_hat / |x|, the size of the terms.
struct Reference {
  std::vector<double> s, da, db, da_scale, db_scale;
};

// The definitions, in float64: similarity and, for grad g, both gradients.
template <class T>
Reference reference(const std::vector<T>& a, const std::vector<T>& b, const std::vector<T>& g, int64_t N, int64_t M,
                    int64_t D, Metric metric) {
  auto row = [D](const std::vector<T>& x, int64_t r) {
    std::vector<double> v(x.begin() + r * D, x.begin() + (r + 1) * D);
    return v;
  };
  auto dot = [](const std::vector<double>& u, const std::vector<double>& v) {
    return std::inner_product(u.begin(), u.end(), v.begin(), 0.0);
  };
  std::vector<std::vector<double>> ar(N), br(M), ah(N), bh(M);
  std::vector<double> an(N), bn(M);
  for (int64_t i = 0; i < N; ++i) ar[i] = row(a, i), an[i] = std::sqrt(dot(ar[i], ar[i]));
  for (int64_t j = 0; j < M; ++j) br[j] = row(b, j), bn[j] = std::sqrt(dot(br[j], br[j]));
  for (int64_t i = 0; i < N; ++i) {
    ah[i] = ar[i];
    for (double& v : ah[i]) v /= std::max(an[i], kCosineEps);
  }
  for (int64_t j = 0; j < M; ++j) {
    bh[j] = br[j];
    for (double& v : bh[j]) v /= std::max(bn[j], kCosineEps);
  }
  Reference r{std::vector<double>(N * M), std::vector<double>(N * D, 0.0), std::vector<double>(M * D, 0.0)};
  std::vector<double> dah(N * D, 0.0), dbh(M * D, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < M; ++j) {
      const double gij = g[i * M + j];
      if (metric == Metric::dot) {
        r.s[i * M + j] = dot(ar[i], br[j]);
        for (int64_t d = 0; d < D; ++d) r.da[i * D + d] += gij * br[j][d], r.db[j * D + d] += gij * ar[i][d];
      } else if (metric == Metric::cosine) {
        r.s[i * M + j] = dot(ah[i], bh[j]);
        for (int64_t d = 0; d < D; ++d) dah[i * D + d] += gij * bh[j][d], dbh[j * D + d] += gij * ah[i][d];
      } else {
        const double unclamped = an[i] * an[i] + bn[j] * bn[j] - 2 * dot(ar[i], br[j]);
        r.s[i * M + j] = std::max(unclamped, 0.0);
        const double h = unclamped > 0 ? gij : 0.0;
        for (int64_t d = 0; d < D; ++d) {
          r.da[i * D + d] += 2 * h * (ar[i][d] - br[j][d]);
          r.db[j * D + d] += 2 * h * (br[j][d] - ar[i][d]);
        }
      }
    }
  if (metric == Metric::cosine) {
    auto through = [D](std::vector<double>& dx, const std::vector<double>& dxh, const std::vector<std::vector<double>>& xh,
                       const std::vector<double>& norm) {
      for (size_t r = 0; r < xh.size(); ++r) {
        double p = 0;
        for (int64_t d = 0; d < D; ++d) p += xh[r][d] * dxh[r * D + d];
        for (int64_t d = 0; d < D; ++d)
          dx[r * D + d] = norm[r] > kCosineEps ? (dxh[r * D + d] - xh[r][d] * p) / norm[r] : dxh[r * D + d] / kCosineEps;
      }
    };
    through(r.da, dah, ah, an);
    through(r.db, dbh, bh, bn);
    r.da_scale = dah, r.db_scale = dbh;
    for (int64_t i = 0; i < N * D; ++i) r.da_scale[i] /= std::max(an[i / D], kCosineEps);
    for (int64_t j = 0; j < M * D; ++j) r.db_scale[j] /= std::max(bn[j / D], kCosineEps);
  }
  return r;
}

// The k best of each row of x (rows, cols), by the ranking rule, in float64.
template <class V>
std::vector<int64_t> select(const std::vector<V>& x, int64_t rows, int64_t cols, int64_t k, bool largest) {
  std::vector<int64_t> out;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> order(cols);
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
      return ranks_before(double(x[r * cols + i]), i, double(x[r * cols + j]), j, largest);
    });
    out.insert(out.end(), order.begin(), order.begin() + k);
  }
  return out;
}

template <class T>
void check(int64_t N, int64_t M, int64_t D, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  std::vector<T> a(N * D), b(M * D), g(N * M);
  for (auto* v : {&a, &b, &g})
    for (T& x : *v) x = static_cast<T>(normal(rng));
  if (N > 1) std::fill(a.begin() + D, a.begin() + 2 * D, T(0));  // a zero row: cosine's clamped norm
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  char what[160];
  for (Metric metric : {Metric::cosine, Metric::dot, Metric::sqeuclidean}) {
    const SimilarityShape s{N, M, D, metric};
    const Reference ref = reference(a, b, g, N, M, D, metric);
    const char* type = std::is_same_v<T, double> ? "float64" : "float32";
    std::snprintf(what, sizeof what, "%s metric %d N %ld M %ld D %ld", type, int(metric), (long)N, (long)M, (long)D);
    Guarded<T> out(N * M, 64), da(N * D, 64), db(M * D, 64);
    pairwise_similarity(a.data(), b.data(), out.data(), s, exec);
    expect_close((std::string("pairwise_similarity ") + what).c_str(), out.data(), ref.s, rtol<T>());
    pairwise_similarity_backward(g.data(), a.data(), b.data(), da.data(), db.data(), s, exec);
    const bool cancel = metric == Metric::cosine;
    expect_close((std::string("backward da ") + what).c_str(), da.data(), ref.da, rtol<T>(), cancel ? &ref.da_scale : nullptr);
    expect_close((std::string("backward db ") + what).c_str(), db.data(), ref.db, rtol<T>(), cancel ? &ref.db_scale : nullptr);
    if (!out.guards_intact() || !da.guards_intact() || !db.guards_intact())
      fails++, std::printf("%s: wrote outside its output\n", what);

    // similarity_topk in chunks of 3 rows (a 3-row scratch budget) and in one chunk.
    const bool largest = metric_prefers_largest(metric);
    for (int64_t k : {int64_t{1}, std::min<int64_t>(M, 4), M}) {
      const TopKShape t{N, M, k, largest};
      // (With 3 rows or fewer the 3-row budget is one chunk too: the second pass would repeat it.)
      for (int64_t budget : {3 * M * int64_t(sizeof(T)), kSimilarityChunkBytes}) {
        if (N <= 3 && budget != kSimilarityChunkBytes) continue;
        std::vector<T> values(N * k);
        std::vector<int64_t> indices(N * k);
        similarity_topk_chunked(a.data(), b.data(), values.data(), indices.data(), s, t, budget, exec);
        const std::vector<int64_t> want = select(ref.s, N, M, k, largest);
        int bad = 0;
        for (int64_t r = 0; r < N; ++r) {
          double scale = 0;
          for (int64_t j = 0; j < M; ++j) scale = std::max(scale, std::fabs(ref.s[r * M + j]));
          const double tol = 100 * rtol<T>() * std::max(scale, 1.0);
          for (int64_t q = 0; q < k; ++q) {
            const int64_t got = indices[r * k + q];
            const bool in_range = got >= 0 && got < M;
            // The value is the similarity at its column; it ranks no worse than the float64
            // selection's q-th minus the tolerance (near-ties may swap), and no column repeats.
            bool ok = in_range && std::fabs(double(values[r * k + q]) - ref.s[r * M + got]) <= tol;
            const double want_value = ref.s[r * M + want[r * k + q]];
            ok = ok && (largest ? ref.s[r * M + got] >= want_value - tol : ref.s[r * M + got] <= want_value + tol);
            for (int64_t p = 0; p < q; ++p) ok = ok && indices[r * k + p] != got;
            if (!ok && bad++ < 3)
              std::printf("similarity_topk %s k %ld budget %ld: row %ld rank %ld is column %ld (%.9g), float64 says %ld\n",
                          what, (long)k, (long)budget, (long)r, (long)q, (long)got, double(values[r * k + q]),
                          (long)want[r * k + q]);
          }
        }
        fails += bad != 0;
      }
    }
  }
}

// topk on scores with ties and NaN: exactly the float64 selection (same values, same rule).
template <class T>
void check_topk(int64_t rows, int64_t cols, std::mt19937& rng) {
  std::uniform_int_distribution<int> small(0, 4);
  std::vector<T> x(rows * cols);
  for (T& v : x) v = static_cast<T>(small(rng));  // many ties
  for (int64_t i = 0; i < rows * cols; i += 7) x[i] = static_cast<T>(NAN);
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  for (bool largest : {true, false})
    for (int64_t k : {int64_t{1}, std::min<int64_t>(cols, 3), cols}) {
      std::vector<T> values(rows * k);
      std::vector<int64_t> indices(rows * k);
      topk(x.data(), values.data(), indices.data(), TopKShape{rows, cols, k, largest}, exec);
      const std::vector<int64_t> want = select(x, rows, cols, k, largest);
      int bad = 0;
      for (int64_t i = 0; i < rows * k; ++i) {
        const T expected = x[(i / k) * cols + want[i]];
        const bool same_value = std::isnan(double(expected)) ? std::isnan(double(values[i])) : values[i] == expected;
        if ((indices[i] != want[i] || !same_value) && bad++ < 3)
          std::printf("topk %s rows %ld cols %ld k %ld largest %d: element %ld is column %ld, want %ld\n",
                      std::is_same_v<T, double> ? "float64" : "float32", (long)rows, (long)cols, (long)k, largest,
                      (long)i, (long)indices[i], (long)want[i]);
      }
      fails += bad != 0;
    }
}

int main() {
  std::mt19937 rng(17);
  for (auto [N, M, D] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 5, 3}, {10, 33, 40}, {3, 300, 1}}) {
    check<float>(N, M, D, rng);
    check<double>(N, M, D, rng);
  }
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {2, 300}}) {
    check_topk<float>(rows, cols, rng);
    check_topk<double>(rows, cols, rng);
  }
  std::printf(fails ? "FAILED (%d)\n" : "similarity entry points, emulated: ok\n", fails);
  return fails != 0;
}
