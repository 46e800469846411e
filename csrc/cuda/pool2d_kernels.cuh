// The pooling kernels launched by pool2d.cu: grid-stride loops over outputs (forward) or input
// elements (backward, gathered through pool2d_maps.cuh), the one-thread-per-plane scatter that
// checks argmax indices, and the warp-per-plane global average. Kept apart from the launchers
// (which use <<<>>>) so that tests/cuda_host can compile these very kernels as host code and run
// whole launches.
#pragma once

#include <cstdint>

#include "cuda/device.cuh"
#include "cuda/pool2d_maps.cuh"

namespace fastnn::cuda::pool_kernels {

using pool_maps::PoolDims;

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

}  // namespace fastnn::cuda::pool_kernels
