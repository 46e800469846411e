// Pooling launchers; see pool2d.h for the rules, pool2d_kernels.cuh for the kernels and
// pool2d_maps.cuh for the index maps.
#include "cuda/pool2d.h"

#include <climits>

#include "cuda/pool2d_kernels.cuh"

namespace fastnn::cuda {
namespace {

using pool_maps::PoolDims;
using namespace pool_kernels;

constexpr int kThreads = 256;

template <class T>
T inverse_area(const Pool2dShape& s) {
  return T(1) / static_cast<T>(s.kernel_h * s.kernel_w);
}

}  // namespace

template <class T, class Index>
void max_pool2d_forward(const T* x, T* y, Index* indices, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.out_plane();
  if (total == 0) return;
  FASTNN_LAUNCH(blocks_for(total, kThreads), kThreads, 0, exec.stream, max_pool2d_forward_kernel<T, Index>)(
      x, y, indices, PoolDims::of(s), total);
  check_launch("max_pool2d_forward");
}

template <class T, class Index>
void max_pool2d_backward(const T* dy, const Index* indices, T* dx, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.in_plane();
  if (total == 0) return;
  FASTNN_LAUNCH(blocks_for(total, kThreads), kThreads, 0, exec.stream, max_pool2d_backward_kernel<T, Index>)(
      dy, indices, dx, PoolDims::of(s), total);
  check_launch("max_pool2d_backward");
}

template <class T, class Index>
int64_t max_pool2d_backward_scatter(const T* dy, const Index* indices, T* dx, int64_t planes,
                                    int64_t in_plane, int64_t out_plane, const Exec& exec) {
  if (planes == 0 || in_plane == 0) return -1;
  auto* first_invalid = static_cast<unsigned long long*>(exec.scratch(sizeof(unsigned long long), "max_pool2d_backward"));
  check_cuda(cudaMemsetAsync(first_invalid, 0xff, sizeof(unsigned long long), exec.stream),
             "clearing max_pool2d_backward's index check");
  FASTNN_LAUNCH(blocks_for(planes, kThreads), kThreads, 0, exec.stream,
                max_pool2d_backward_scatter_kernel<T, Index>)(
      dy, indices, dx, planes, in_plane, out_plane, first_invalid);
  check_launch("max_pool2d_backward_scatter");
  unsigned long long host = 0;
  check_cuda(cudaMemcpyAsync(&host, first_invalid, sizeof(host), cudaMemcpyDeviceToHost, exec.stream),
             "copying max_pool2d_backward's index check");
  check_cuda(cudaStreamSynchronize(exec.stream), "waiting for max_pool2d_backward");
  return host == ULLONG_MAX ? -1 : static_cast<int64_t>(host);
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.out_plane();
  if (total == 0) return;
  FASTNN_LAUNCH(blocks_for(total, kThreads), kThreads, 0, exec.stream, avg_pool2d_forward_kernel<T>)(
      x, y, PoolDims::of(s), inverse_area<T>(s), total);
  check_launch("avg_pool2d_forward");
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.in_plane();
  if (total == 0) return;
  FASTNN_LAUNCH(blocks_for(total, kThreads), kThreads, 0, exec.stream, avg_pool2d_backward_kernel<T>)(
      dy, dx, PoolDims::of(s), inverse_area<T>(s), total);
  check_launch("avg_pool2d_backward");
}

template <class T>
void global_avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec& exec) {
  const int64_t planes = s.planes();
  if (planes == 0) return;
  FASTNN_LAUNCH(blocks_for(planes * kWarpSize, kThreads), kThreads, 0, exec.stream,
                global_avg_pool2d_forward_kernel<T>)(
      x, y, planes, s.in_plane());
  check_launch("global_avg_pool2d_forward");
}

template <class T>
void global_avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.in_plane();
  if (total == 0) return;
  FASTNN_LAUNCH(blocks_for(total, kThreads), kThreads, 0, exec.stream, global_avg_pool2d_backward_kernel<T>)(
      dy, dx, s.in_plane(), T(1) / static_cast<T>(s.in_plane()), total);
  check_launch("global_avg_pool2d_backward");
}

#define FASTNN_INSTANTIATE_MAX(T, Index)                                                                    \
  template void max_pool2d_forward<T, Index>(const T*, T*, Index*, const Pool2dShape&, const Exec&);        \
  template void max_pool2d_backward<T, Index>(const T*, const Index*, T*, const Pool2dShape&, const Exec&); \
  template int64_t max_pool2d_backward_scatter<T, Index>(const T*, const Index*, T*, int64_t, int64_t,     \
                                                         int64_t, const Exec&);
#define FASTNN_INSTANTIATE(T)                                                                \
  FASTNN_INSTANTIATE_MAX(T, int32_t)                                                         \
  FASTNN_INSTANTIATE_MAX(T, int64_t)                                                         \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&, const Exec&);        \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&, const Exec&);       \
  template void global_avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&, const Exec&); \
  template void global_avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE
#undef FASTNN_INSTANTIATE_MAX

}  // namespace fastnn::cuda
