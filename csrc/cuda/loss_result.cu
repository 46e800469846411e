// See loss_result.h.
#include "cuda/loss_result.h"

#include <climits>

#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 1024;

// One block: thread t sums terms t, t + 1024, ... in order, then the block tree adds the 1024
// partial sums in a fixed order.
__global__ void finish_loss_kernel(const double* terms, int64_t count, double divisor,
                                   LossScratch* out) {
  __shared__ double shared[kWarpSize];
  double sum = 0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) sum += terms[i];
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) out->loss = sum / divisor;
}

}  // namespace

LossScratch* new_loss_scratch(const Exec& exec) {
  auto* scratch = static_cast<LossScratch*>(exec.scratch(sizeof(LossScratch), "loss"));
  check_cuda(cudaMemsetAsync(scratch, 0xff, sizeof(LossScratch), exec.stream), "clearing the loss scratch");
  return scratch;
}

LossResult finish_loss(const double* terms, int64_t count, double divisor, LossScratch* scratch,
                       const Exec& exec) {
  FASTNN_LAUNCH(1, kThreads, 0, exec.stream, finish_loss_kernel)(terms, count, divisor, scratch);
  check_launch("finish_loss");
  LossScratch host;
  check_cuda(cudaMemcpyAsync(&host, scratch, sizeof(host), cudaMemcpyDeviceToHost, exec.stream),
             "copying the loss to the host");
  check_cuda(cudaStreamSynchronize(exec.stream), "waiting for the loss");
  LossResult result;
  result.loss = host.loss;
  result.first_invalid = host.first_invalid == ULLONG_MAX ? -1 : static_cast<int64_t>(host.first_invalid);
  return result;
}

}  // namespace fastnn::cuda
