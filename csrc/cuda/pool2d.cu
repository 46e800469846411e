// Pooling kernels; see pool2d.h for the rules and pool2d_maps.cuh for the index maps.
#include "cuda/pool2d.h"

#include <climits>

#include "cuda/device.cuh"
#include "cuda/pool2d_maps.cuh"

namespace fastnn::cuda {
namespace {

using pool_maps::PoolDims;

constexpr int kThreads = 256;

// (plane, position within the plane) of flat index i over planes of `plane_size`.
struct PlaneIndex {
  int64_t plane, offset;
};
__device__ inline PlaneIndex split(int64_t i, int64_t plane_size) {
  const int64_t plane = i / plane_size;
  return {plane, i - plane * plane_size};
}

template <class T, class Index>
__global__ void max_pool2d_forward_kernel(const T* x, T* y, Index* indices, PoolDims d, int64_t total) {
  const int64_t out_plane = d.Ho * d.Wo;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < total; i += gs.stride) {
    const PlaneIndex at = split(i, out_plane);
    const int64_t oh = at.offset / d.Wo, ow = at.offset - oh * d.Wo;
    const pool_maps::ArgMax<T> best = pool_maps::max_in_window(d, x + at.plane * d.H * d.W, oh, ow);
    y[i] = best.value;
    indices[i] = static_cast<Index>(best.index);
  }
}

template <class T, class Index>
__global__ void max_pool2d_backward_kernel(const T* dy, const Index* indices, T* dx, PoolDims d,
                                           int64_t total) {
  const int64_t in_plane = d.H * d.W, out_plane = d.Ho * d.Wo;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < total; i += gs.stride) {
    const PlaneIndex at = split(i, in_plane);
    const int64_t h = at.offset / d.W, w = at.offset - h * d.W;
    dx[i] = pool_maps::max_pool_gather(d, dy + at.plane * out_plane, indices + at.plane * out_plane, h, w);
  }
}

// One thread per plane, as the CPU: zero the plane, add each output's gradient in output order.
template <class T, class Index>
__global__ void max_pool2d_backward_scatter_kernel(const T* dy, const Index* indices, T* dx, int64_t planes,
                                                   int64_t in_plane, int64_t out_plane,
                                                   unsigned long long* first_invalid) {
  const GridStride gs = grid_stride();
  for (int64_t p = gs.first; p < planes; p += gs.stride) {
    T* dxp = dx + p * in_plane;
    for (int64_t k = 0; k < in_plane; ++k) dxp[k] = T(0);
    for (int64_t o = 0; o < out_plane; ++o) {
      const int64_t target = static_cast<int64_t>(indices[p * out_plane + o]);
      if (target < 0 || target >= in_plane) {
        atomicMin(first_invalid, static_cast<unsigned long long>(p * out_plane + o));
        continue;
      }
      dxp[target] += dy[p * out_plane + o];
    }
  }
}

template <class T>
__global__ void avg_pool2d_forward_kernel(const T* x, T* y, PoolDims d, T inv_area, int64_t total) {
  const int64_t out_plane = d.Ho * d.Wo;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < total; i += gs.stride) {
    const PlaneIndex at = split(i, out_plane);
    const int64_t oh = at.offset / d.Wo, ow = at.offset - oh * d.Wo;
    y[i] = pool_maps::window_sum(d, x + at.plane * d.H * d.W, oh, ow) * inv_area;
  }
}

template <class T>
__global__ void avg_pool2d_backward_kernel(const T* dy, T* dx, PoolDims d, T inv_area, int64_t total) {
  const int64_t in_plane = d.H * d.W, out_plane = d.Ho * d.Wo;
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < total; i += gs.stride) {
    const PlaneIndex at = split(i, in_plane);
    const int64_t h = at.offset / d.W, w = at.offset - h * d.W;
    dx[i] = pool_maps::avg_pool_gather(d, dy + at.plane * out_plane, inv_area, h, w);
  }
}

// One warp per plane: lanes sum strided elements in double, then a butterfly adds the lanes.
template <class T>
__global__ void global_avg_pool2d_forward_kernel(const T* x, T* y, int64_t planes, int64_t plane_size) {
  const int64_t warps_per_block = blockDim.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / kWarpSize;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * warps_per_block;
  for (int64_t p = first; p < planes; p += stride) {  // uniform per warp: the shuffle sees all lanes
    const T* xp = x + p * plane_size;
    double sum = 0;
    for (int64_t k = lane; k < plane_size; k += kWarpSize) sum += static_cast<double>(xp[k]);
    sum = warp_sum(sum);
    if (lane == 0) y[p] = static_cast<T>(sum / static_cast<double>(plane_size));
  }
}

template <class T>
__global__ void global_avg_pool2d_backward_kernel(const T* dy, T* dx, int64_t plane_size, T inv_size,
                                                  int64_t total) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < total; i += gs.stride) dx[i] = dy[i / plane_size] * inv_size;
}

template <class T>
T inverse_area(const Pool2dShape& s) {
  return T(1) / static_cast<T>(s.kernel_h * s.kernel_w);
}

}  // namespace

template <class T, class Index>
void max_pool2d_forward(const T* x, T* y, Index* indices, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.out_plane();
  if (total == 0) return;
  max_pool2d_forward_kernel<T, Index><<<blocks_for(total, kThreads), kThreads, 0, exec.stream>>>(
      x, y, indices, PoolDims::of(s), total);
  check_launch("max_pool2d_forward");
}

template <class T, class Index>
void max_pool2d_backward(const T* dy, const Index* indices, T* dx, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.in_plane();
  if (total == 0) return;
  max_pool2d_backward_kernel<T, Index><<<blocks_for(total, kThreads), kThreads, 0, exec.stream>>>(
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
  max_pool2d_backward_scatter_kernel<T, Index><<<blocks_for(planes, kThreads), kThreads, 0, exec.stream>>>(
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
  avg_pool2d_forward_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, exec.stream>>>(
      x, y, PoolDims::of(s), inverse_area<T>(s), total);
  check_launch("avg_pool2d_forward");
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.in_plane();
  if (total == 0) return;
  avg_pool2d_backward_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, exec.stream>>>(
      dy, dx, PoolDims::of(s), inverse_area<T>(s), total);
  check_launch("avg_pool2d_backward");
}

template <class T>
void global_avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec& exec) {
  const int64_t planes = s.planes();
  if (planes == 0) return;
  global_avg_pool2d_forward_kernel<T><<<blocks_for(planes * kWarpSize, kThreads), kThreads, 0, exec.stream>>>(
      x, y, planes, s.in_plane());
  check_launch("global_avg_pool2d_forward");
}

template <class T>
void global_avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec& exec) {
  const int64_t total = s.planes() * s.in_plane();
  if (total == 0) return;
  global_avg_pool2d_backward_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, exec.stream>>>(
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
