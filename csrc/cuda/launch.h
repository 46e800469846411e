// Host-side plumbing shared by every CUDA op family: where an op runs (stream), where its scratch
// memory comes from (Workspace), launch checks that raise errors naming the kernel, and cached
// facts about the current device. Plain C++ over the CUDA runtime API: the bindings include it.
//
// Launch rule: every kernel launch is written FASTNN_LAUNCH(grid, block, shared_bytes, stream,
// kernel)(args...) and followed by check_launch("<kernel name>"), which raises CudaError
// (RuntimeError in Python) with the kernel's name and CUDA's message. Kernels run asynchronously
// on Exec::stream; an error inside a running kernel surfaces at the next check.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>

// kernel<<<grid, block, shared_bytes, stream>>>, spelt as a macro so that tests/cuda_host can
// compile the launchers as plain C++ and run the launches on the host (tests/cuda_host/emulate.h
// defines it first).
#ifndef FASTNN_LAUNCH
#define FASTNN_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>
#endif

namespace fastnn::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Scratch memory for one op call, handed out by the caller's allocator (the bindings take it from
// CuPy's memory pool). A block stays valid until the op returns, and may be reused afterwards
// only by work queued later on the same stream, so kernels queued by the op can still use it.
class Workspace {
 public:
  virtual ~Workspace() = default;
  virtual void* allocate(size_t bytes) = 0;
};

// Where an op runs: its stream and the allocator for its scratch memory (may be null for ops
// that need none).
struct Exec {
  cudaStream_t stream = nullptr;
  Workspace* workspace = nullptr;

  // `bytes` of scratch memory (nullptr for 0); CudaError when no workspace was provided.
  void* scratch(size_t bytes, const char* what) const;
};

// CudaError "fastnn CUDA: <what> failed: <error name>: <message>" unless status is cudaSuccess.
void check_cuda(cudaError_t status, const char* what);

// Call right after a launch: raises CudaError naming `kernel` when the launch failed (bad
// configuration, no kernel image for this GPU, an earlier asynchronous fault...).
void check_launch(const char* kernel);

// The current device (cudaGetDevice), its multiprocessor count and compute capability
// (major * 10 + minor); the latter two are cached per device.
int current_device();
int multiprocessor_count();
int compute_capability();

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never more than needed.
unsigned int blocks_for(int64_t n, int threads_per_block);

}  // namespace fastnn::cuda
