// See launch.h.
#include "cuda/launch.h"

#include <algorithm>
#include <atomic>

#include "common/errors.h"

namespace fastnn::cuda {

void* Exec::scratch(size_t bytes, const char* what) const {
  if (bytes == 0) return nullptr;
  if (!workspace) throw CudaError(cat("fastnn CUDA: ", what, " needs scratch memory but no workspace was given"));
  return workspace->allocate(bytes);
}

void check_cuda(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  throw CudaError(cat("fastnn CUDA: ", what, " failed: ", cudaGetErrorName(status), ": ",
                      cudaGetErrorString(status)));
}

void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return;
  throw CudaError(cat("fastnn CUDA kernel '", kernel, "' failed: ", cudaGetErrorName(status), ": ",
                      cudaGetErrorString(status)));
}

int current_device() {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

namespace {

constexpr int kMaxDevices = 64;

int device_attribute(int device, cudaDeviceAttr attr, const char* what) {
  int value = 0;
  check_cuda(cudaDeviceGetAttribute(&value, attr, device), what);
  return value;
}

// One lazily filled slot per device; 0 means "not read yet" (the values cached are never 0).
template <class Read>
int cached_per_device(std::atomic<int> (&cache)[kMaxDevices], Read read) {
  const int device = current_device();
  if (device < 0 || device >= kMaxDevices) return read(device);
  int value = cache[device].load(std::memory_order_relaxed);
  if (value == 0) {
    value = read(device);
    cache[device].store(value, std::memory_order_relaxed);
  }
  return value;
}

std::atomic<int> sm_count_cache[kMaxDevices];
std::atomic<int> capability_cache[kMaxDevices];

}  // namespace

int multiprocessor_count() {
  return cached_per_device(sm_count_cache, [](int device) {
    return device_attribute(device, cudaDevAttrMultiProcessorCount, "reading the multiprocessor count");
  });
}

int compute_capability() {
  return cached_per_device(capability_cache, [](int device) {
    return 10 * device_attribute(device, cudaDevAttrComputeCapabilityMajor, "reading the compute capability") +
           device_attribute(device, cudaDevAttrComputeCapabilityMinor, "reading the compute capability");
  });
}

unsigned int blocks_for(int64_t n, int threads_per_block) {
  const int64_t needed = (n + threads_per_block - 1) / threads_per_block;
  // A few waves of resident blocks saturate the GPU; grid-stride loops cover the rest.
  const int64_t cap = static_cast<int64_t>(multiprocessor_count()) * 16;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min(needed, cap)));
}

}  // namespace fastnn::cuda
