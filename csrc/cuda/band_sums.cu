// See band_sums.h.
#include "cuda/band_sums.h"

#include <algorithm>

#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

template <class T>
__global__ void add_band_sums_kernel(const T* band_sums, int64_t bands, int64_t features,
                                     const T* prior, T* out) {
  const GridStride gs = grid_stride();
  for (int64_t f = gs.first; f < features; f += gs.stride) {
    T total = prior ? prior[f] : T(0);
    for (int64_t b = 0; b < bands; ++b) total += band_sums[b * features + f];
    out[f] = total;
  }
}

}  // namespace

template <class T>
void add_band_sums(const T* band_sums, int64_t bands, int64_t features, const T* prior, T* out,
                   const Exec& exec) {
  constexpr int threads = 256;
  FASTNN_LAUNCH(blocks_for(features, threads), threads, 0, exec.stream, add_band_sums_kernel<T>)(
      band_sums, bands, features, prior, out);
  check_launch("add_band_sums");
}

int64_t reduction_bands(int64_t length, int64_t feature_blocks, int64_t min_band) {
  const int64_t wanted = 4 * static_cast<int64_t>(multiprocessor_count());
  const int64_t most = std::max<int64_t>(1, length / min_band);
  return std::min<int64_t>(std::clamp<int64_t>(wanted / std::max<int64_t>(feature_blocks, 1), 1, most), 65535);
}

template void add_band_sums<float>(const float*, int64_t, int64_t, const float*, float*, const Exec&);
template void add_band_sums<double>(const double*, int64_t, int64_t, const double*, double*, const Exec&);

}  // namespace fastnn::cuda
