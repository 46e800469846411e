// Device-side helpers shared by the kernels: grid-stride loops and warp/block reductions.
//
// Reductions combine values in a fixed tree order (butterfly shuffles within a warp, then warp
// results in warp order), so a kernel's result depends only on its launch configuration, never
// on scheduling: the CUDA kernels are deterministic run to run on the same GPU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// for (i = first; i < n; i += stride) over the whole grid, with 64-bit indices.
struct GridStride {
  int64_t first, stride;
};
__device__ inline GridStride grid_stride() {
  return {static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
          static_cast<int64_t>(gridDim.x) * blockDim.x};
}

// Math of float and double under one name, so kernels templated on T call the right precision
// (expf for float, exp for double...). IEEE-accurate versions: no fast-math intrinsics.
namespace math {
__device__ inline float exp(float x) { return ::expf(x); }
__device__ inline double exp(double x) { return ::exp(x); }
__device__ inline float log(float x) { return ::logf(x); }
__device__ inline double log(double x) { return ::log(x); }
__device__ inline float log1p(float x) { return ::log1pf(x); }
__device__ inline double log1p(double x) { return ::log1p(x); }
__device__ inline float tanh(float x) { return ::tanhf(x); }
__device__ inline double tanh(double x) { return ::tanh(x); }
__device__ inline float erfc(float x) { return ::erfcf(x); }
__device__ inline double erfc(double x) { return ::erfc(x); }
__device__ inline float sqrt(float x) { return ::sqrtf(x); }
__device__ inline double sqrt(double x) { return ::sqrt(x); }
__device__ inline float abs(float x) { return ::fabsf(x); }
__device__ inline double abs(double x) { return ::fabs(x); }
}  // namespace math

template <class T>
__device__ inline T warp_sum(T v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

template <class T>
__device__ inline T warp_max(T v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const T other = __shfl_xor_sync(kFullMask, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `shared` holds 32 values; the function synchronises, so call it from all threads.
template <class T>
__device__ inline T block_sum(T v, T* shared) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(0);
  return warp_sum(v);
}

template <class T>
__device__ inline T block_max(T v, T* shared) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : shared[0];
  return warp_max(v);
}

}  // namespace fastnn::cuda
