// The launch layout of the row-wise kernels (softmax_xent, l2_normalize, arcface): one warp per
// row of an (N, C) array, kWarpsPerBlock rows per block; lanes stride over the row's columns and
// combine with shuffles (device.cuh).
#pragma once

#include <cstdint>

#include "cuda/device.cuh"

namespace fastnn::cuda {

constexpr int kWarpsPerBlock = 8;
constexpr int kRowBlockThreads = kWarpsPerBlock * kWarpSize;

inline unsigned int row_blocks(int64_t rows) {
  return static_cast<unsigned int>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

// This warp's row, or -1 past the end (the whole warp leaves together).
__device__ inline int64_t warp_row(int64_t rows) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
  return row < rows ? row : -1;
}

}  // namespace fastnn::cuda
