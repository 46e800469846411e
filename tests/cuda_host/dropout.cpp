// csrc/cuda/dropout.cu run whole on the host by emulate.h, through dropout_forward and
// dropout_backward: the grid-stride loop (sizes past the emulated GPU's 16 blocks of 256
// threads, so it wraps) must give element i the draw of index i. Compared with the definition
// (common/dropout_mask.h, the one the CPU kernel and fastnn.reference.dropout follow): the mask
// exactly, y = x / (1 - p) where kept and 0 elsewhere, dx likewise from dy, for p = 0, 0.3, 0.5
// and 1 (nothing kept). Values: kept elements x * float(1 / (1 - p)) rounded once, so they must
// match the same product in T exactly.
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "common/dropout_mask.h"
#include "cuda/dropout.h"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;

int fails = 0;

template <class T>
void check(int64_t n, double p, uint64_t seed, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  std::vector<T> x(n), dy(n), y(n), dx(n);
  std::vector<uint8_t> mask(n, 7);
  for (auto& v : x) v = static_cast<T>(normal(rng));
  for (auto& v : dy) v = static_cast<T>(normal(rng));
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  dropout_forward(x.data(), y.data(), mask.data(), n, p, seed, exec);
  dropout_backward(dy.data(), mask.data(), dx.data(), n, p, exec);
  const uint64_t threshold = dropout_drop_threshold(p);
  const T scale = static_cast<T>(dropout_keep_scale(p));
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_keep_bits(seed, static_cast<uint64_t>(i)) >= threshold;
    const T want_y = keep ? x[i] * scale : T(0), want_dx = keep ? dy[i] * scale : T(0);
    if ((mask[i] != (keep ? 1 : 0) || y[i] != want_y || dx[i] != want_dx) && bad++ < 3)
      std::printf("dropout %s n %ld p %g: element %ld mask %d y %g dx %g, want %d %g %g\n",
                  std::is_same_v<T, double> ? "float64" : "float32", (long)n, p, (long)i, mask[i], double(y[i]),
                  double(dx[i]), keep, double(want_y), double(want_dx));
  }
  fails += bad != 0;
}

int main() {
  std::mt19937 rng(19);
  for (int64_t n : {1, 9, 5000})
    for (double p : {0.0, 0.3, 0.5, 1.0}) {
      check<float>(n, p, 1234567, rng);
      check<double>(n, p, 42, rng);
    }
  std::printf(fails ? "FAILED (%d)\n" : "dropout entry points, emulated: ok\n", fails);
  return fails != 0;
}
