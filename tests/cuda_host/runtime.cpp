// The few CUDA runtime calls the launchers in csrc/cuda make (through launch.cu, loss_result.cu,
// pool2d.cu), for the host emulation of emulate.h: device memory is host memory and every launch
// has finished when it returns, so copies and memsets act at once and synchronising is a no-op.
// The emulated GPU has kMultiprocessors multiprocessors: few, so that the launchers' split-K
// and banding plans (which split work to fill the GPU) split the small test shapes, and
// blocks_for caps grids low enough for grid-stride loops to wrap.
// The TF32 GEMM (inline PTX) has no host version: gemm_tf32 declines, as it does on GPUs older
// than sm_80, and the exact kernel runs.
#include "emulate.h"

#include <cstring>

#include "cuda/gemm_kernel.cuh"

namespace {
constexpr int kMultiprocessors = 1;
}

cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorName(cudaError_t) { return "cudaErrorEmulated"; }
const char* cudaGetErrorString(cudaError_t) { return "error in the host emulation"; }
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = kMultiprocessors; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) {
  std::memset(ptr, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind, cudaStream_t) {
  std::memmove(dst, src, count);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

namespace fastnn::cuda::detail {
bool gemm_tf32(const GemmParams<float>&, bool, bool, const Exec&) { return false; }
}  // namespace fastnn::cuda::detail
