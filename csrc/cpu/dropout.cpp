// Inverted dropout; see dropout.h. Elementwise, so threads may split the elements any way:
// each element's draw depends only on (seed, index).
#include "cpu/dropout.h"

#include "common/threading.h"

namespace fastnn::cpu {

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double p, uint64_t seed, const Exec&) {
  const uint64_t key = dropout_key(seed);
  const uint64_t threshold = dropout_drop_threshold(p);
  const T scale = static_cast<T>(dropout_keep_scale(p));
  const int nt = threads_for(n, 8192);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_keep_bits_keyed(key, static_cast<uint64_t>(i)) >= threshold;
    mask[i] = keep ? 1 : 0;
    y[i] = keep ? x[i] * scale : T(0);
  }
}

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double p, const Exec&) {
  const T scale = static_cast<T>(dropout_keep_scale(p));
  const int nt = threads_for(n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = mask[i] ? dy[i] * scale : T(0);
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, double, uint64_t, const Exec&);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, double, uint64_t, const Exec&);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, double, const Exec&);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, double, const Exec&);

}  // namespace fastnn::cpu
