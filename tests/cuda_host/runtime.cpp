// The few CUDA runtime calls the launchers in csrc/cuda make (through launch.cu, loss_result.cu,
// pool2d.cu, gemm_tf32.cu), for the host emulation of emulate.h: device memory is host memory and
// every launch has finished when it returns, so copies and memsets act at once and synchronising
// is a no-op. Two emulated GPUs of compute capability 9.0 (emu::current_device picks one):
// device 0 has one multiprocessor, so that the launchers' split-K and banding plans (which split
// work to fill the GPU) split the small test shapes and blocks_for caps grids low enough for
// grid-stride loops to wrap; device 1 has an H100's 132.
#include "emulate.h"

#include <cstring>

cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorName(cudaError_t) { return "cudaErrorEmulated"; }
const char* cudaGetErrorString(cudaError_t) { return "error in the host emulation"; }
cudaError_t cudaGetDevice(int* device) {
  *device = emu::current_device;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = device == 0 ? 1 : 132; break;
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
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
