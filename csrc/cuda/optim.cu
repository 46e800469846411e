// Multi-tensor SGD / Adam / AdamW updates; see optim.h for the layout, cpu/optim.h for the math.
#include "cuda/optim.h"

#include <cmath>

#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

constexpr int kMaxTensors = 48;
constexpr int kMaxBlocks = 320;
constexpr int64_t kChunk = 65536;
constexpr int kThreads = 256;

// The kernel argument: which tensors, and which (tensor, chunk) each block updates.
template <class T>
struct ChunkTable {
  T* param[kMaxTensors];
  const T* grad[kMaxTensors];
  T* state0[kMaxTensors];
  T* state1[kMaxTensors];
  int64_t numel[kMaxTensors];
  unsigned char block_tensor[kMaxBlocks];
  int block_chunk[kMaxBlocks];
};
static_assert(sizeof(ChunkTable<double>) <= 4096, "kernel arguments must stay under 4 KiB");

// The element range [begin, end) of this block's chunk, and the tensor it belongs to.
template <class T>
__device__ inline int block_chunk_range(const ChunkTable<T>& table, int64_t* begin, int64_t* end) {
  const int t = table.block_tensor[blockIdx.x];
  *begin = static_cast<int64_t>(table.block_chunk[blockIdx.x]) * kChunk;
  *end = min(table.numel[t], *begin + kChunk);
  return t;
}

template <class T>
struct SgdRule {
  T lr, mu, wd, damp;
  bool use_momentum, nesterov, first;
  __device__ void operator()(T* p, const T* grad, T* buf, T*, int64_t i) const {
    T g = grad[i] + wd * p[i];
    if (use_momentum) {
      const T b = first ? g : mu * buf[i] + damp * g;
      buf[i] = b;
      g = nesterov ? g + mu * b : b;
    }
    p[i] -= lr * g;
  }
};

template <class T>
struct AdamRule {
  T b1, b2, step_size, inv_sqrt_bias2, eps, l2, decay;
  __device__ void operator()(T* p, const T* grad, T* m, T* v, int64_t i) const {
    const T pi = p[i] * decay;
    const T g = grad[i] + l2 * pi;
    const T mi = b1 * m[i] + (T(1) - b1) * g;
    const T vi = b2 * v[i] + (T(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * mi / (math::sqrt(vi) * inv_sqrt_bias2 + eps);
  }
};

template <class T, class Rule>
__global__ void __launch_bounds__(kThreads) multi_tensor_kernel(ChunkTable<T> table, Rule rule) {
  int64_t begin, end;
  const int t = block_chunk_range(table, &begin, &end);
  T* p = table.param[t];
  const T* g = table.grad[t];
  T* s0 = table.state0[t];
  T* s1 = table.state1[t];
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) rule(p, g, s0, s1, i);
}

// Fills chunk tables from the tensor list and launches one kernel per full table.
template <class T, class Rule>
void multi_tensor_apply(const std::vector<OptimTensor<T>>& tensors, const Rule& rule,
                        const char* kernel, const Exec& exec) {
  ChunkTable<T> table;
  int n_tensors = 0, n_blocks = 0;
  auto launch = [&] {
    if (n_blocks == 0) return;
    FASTNN_LAUNCH(n_blocks, kThreads, 0, exec.stream, multi_tensor_kernel<T, Rule>)(table, rule);
    check_launch(kernel);
    n_blocks = 0;
  };
  for (const OptimTensor<T>& tensor : tensors) {
    if (tensor.numel == 0) continue;
    const int64_t chunks = (tensor.numel + kChunk - 1) / kChunk;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      if (chunk == 0 || n_tensors == 0) {
        // Start this tensor's entry (again, when the previous table filled up mid-tensor).
        if (n_tensors == kMaxTensors) {
          launch();
          n_tensors = 0;
        }
        table.param[n_tensors] = tensor.param;
        table.grad[n_tensors] = tensor.grad;
        table.state0[n_tensors] = tensor.state0;
        table.state1[n_tensors] = tensor.state1;
        table.numel[n_tensors] = tensor.numel;
        ++n_tensors;
      }
      table.block_tensor[n_blocks] = static_cast<unsigned char>(n_tensors - 1);
      table.block_chunk[n_blocks] = static_cast<int>(chunk);
      if (++n_blocks == kMaxBlocks) {
        launch();
        n_tensors = 0;  // the next chunk re-registers its tensor in a fresh table
      }
    }
  }
  launch();
}

}  // namespace

template <class T>
void sgd_step(const std::vector<OptimTensor<T>>& tensors, const SgdConfig& cfg, const Exec& exec) {
  const SgdRule<T> rule{static_cast<T>(cfg.lr),           static_cast<T>(cfg.momentum),
                        static_cast<T>(cfg.weight_decay), T(1) - static_cast<T>(cfg.dampening),
                        cfg.momentum != 0.0,              cfg.nesterov,
                        cfg.first_step};
  multi_tensor_apply(tensors, rule, "sgd_step", exec);
}

template <class T>
void adam_step(const std::vector<OptimTensor<T>>& tensors, const AdamConfig& cfg, const Exec& exec) {
  const double bias1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(cfg.step));
  const double bias2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(cfg.step));
  const AdamRule<T> rule{
      static_cast<T>(cfg.beta1),
      static_cast<T>(cfg.beta2),
      static_cast<T>(cfg.lr / bias1),
      static_cast<T>(1.0 / std::sqrt(bias2)),
      static_cast<T>(cfg.eps),
      cfg.decoupled_weight_decay ? T(0) : static_cast<T>(cfg.weight_decay),
      cfg.decoupled_weight_decay ? static_cast<T>(1.0 - cfg.lr * cfg.weight_decay) : T(1)};
  multi_tensor_apply(tensors, rule, cfg.decoupled_weight_decay ? "adamw_step" : "adam_step", exec);
}

template void sgd_step<float>(const std::vector<OptimTensor<float>>&, const SgdConfig&, const Exec&);
template void sgd_step<double>(const std::vector<OptimTensor<double>>&, const SgdConfig&, const Exec&);
template void adam_step<float>(const std::vector<OptimTensor<float>>&, const AdamConfig&, const Exec&);
template void adam_step<double>(const std::vector<OptimTensor<double>>&, const AdamConfig&, const Exec&);

}  // namespace fastnn::cuda
