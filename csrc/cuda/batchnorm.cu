// Batch normalisation kernels; see batchnorm.h for the method and cpu/batchnorm.h for the math.
#include "cuda/batchnorm.h"

#include <algorithm>

#include "cuda/band_sums.h"
#include "cuda/device.cuh"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 256;

// The (N, C, S) layout as kernels index it.
struct BnDims {
  int64_t N, C, S;
  __host__ __device__ int64_t count() const { return N * S; }
  // Offset of the m-th value (m = n * S + i) of channel c.
  __device__ int64_t offset(int64_t c, int64_t m) const {
    const int64_t n = m / S;
    return (n * C + c) * S + (m - n * S);
  }
  // Channel of flat element k.
  __device__ int64_t channel(int64_t k) const { return (k / S) % C; }
};

struct Sums {
  double first, second;
};

// Block (c, band) sums term(offset, c) over the band's values of channel c; partial sums go to
// partial[(c * bands + band) * 2 + {0, 1}]. Blocks are numbered c * bands + band.
template <class Term>
__global__ void channel_band_sums_kernel(BnDims d, int64_t bands, int64_t band_length, Term term,
                                         double* partial) {
  __shared__ double shared[kWarpSize];
  const int64_t c = blockIdx.x / bands, band = blockIdx.x - c * bands;
  const int64_t begin = band * band_length;
  const int64_t end = begin + band_length < d.count() ? begin + band_length : d.count();
  Sums s{0, 0};
  for (int64_t m = begin + threadIdx.x; m < end; m += blockDim.x) {
    const Sums t = term(d.offset(c, m), c);
    s.first += t.first, s.second += t.second;
  }
  s.first = block_sum(s.first, shared);
  s.second = block_sum(s.second, shared);
  if (threadIdx.x == 0) {
    partial[(c * bands + band) * 2] = s.first;
    partial[(c * bands + band) * 2 + 1] = s.second;
  }
}

// The bands of channel c added in band order.
__device__ inline Sums channel_total(const double* partial, int64_t bands, int64_t c) {
  Sums s{0, 0};
  for (int64_t b = 0; b < bands; ++b) s.first += partial[(c * bands + b) * 2], s.second += partial[(c * bands + b) * 2 + 1];
  return s;
}

// Bands per channel and their length: enough blocks to fill the GPU, bands of >= 4 blocks' worth.
struct Banding {
  int64_t bands, length;
};
Banding banding(const BnDims& d) {
  const int64_t wanted = reduction_bands(d.count(), d.C, 4 * kThreads);
  const int64_t length = std::max<int64_t>(1, (d.count() + wanted - 1) / wanted);
  return {(d.count() + length - 1) / length, length};
}

template <class Term>
double* channel_band_sums(const BnDims& d, const Banding& b, Term term, const char* name, const Exec& exec) {
  auto* partial = static_cast<double*>(exec.scratch(d.C * b.bands * 2 * sizeof(double), name));
  FASTNN_LAUNCH(static_cast<unsigned>(d.C * b.bands), kThreads, 0, exec.stream,
                channel_band_sums_kernel<Term>)(
      d, b.bands, b.length, term, partial);
  check_launch(name);
  return partial;
}

// The channel's first value x[0, c, 0]: the shift of the one-pass statistics.
template <class T>
__device__ inline double channel_shift(const T* x, const BnDims& d, int64_t c) {
  return static_cast<double>(x[c * d.S]);
}

template <class T>
struct ShiftedTerms {  // d and d^2, d = x - the channel's first value (see cpu/batchnorm.cpp)
  const T* x;
  BnDims d;
  __device__ Sums operator()(int64_t k, int64_t c) const {
    const double v = static_cast<double>(x[k]) - channel_shift(x, d, c);
    return {v, v * v};
  }
};

// The channel's affine map y = (x - mean) * scale + shift, built and applied by one function
// for the forward and for the fused ReLU backward's mask (the same sign as the stored y).
template <class T>
struct ChannelMap {
  T mean, scale, shift;
};

template <class T>
__device__ inline ChannelMap<T> channel_map(const T* weight, const T* bias, const T* mean, const T* inv_std,
                                            int64_t c) {
  return {mean[c], inv_std[c] * (weight ? weight[c] : T(1)), bias ? bias[c] : T(0)};
}

template <class T>
__device__ inline T normalized(T x, const ChannelMap<T>& m) {
  return (x - m.mean) * m.scale + m.shift;
}

// What the ReLU passes back to the batch norm: dy where the forward's y > 0, else 0.
template <class T>
struct ReluMask {
  const T *weight, *bias, *mean, *inv_std;  // mean null: no ReLU, dy passes unmasked
  __device__ T operator()(T dy, T x, int64_t c) const {
    if (!mean) return dy;
    return normalized(x, channel_map(weight, bias, mean, inv_std, c)) > T(0) ? dy : T(0);
  }
};

template <class T>
struct GradTerms {  // g and g * (x - mean), g the (masked) dy
  const T *dy, *x, *mean;
  ReluMask<T> mask;
  __device__ Sums operator()(int64_t k, int64_t c) const {
    const double g = static_cast<double>(mask(dy[k], x[k], c));
    return {g, g * (static_cast<double>(x[k]) - static_cast<double>(mean[c]))};
  }
};

// The CPU's per-channel step: statistics saved (rounded to T), running estimates moved.
template <class T>
__global__ void finish_train_stats_kernel(const double* partial, int64_t bands, BnDims d, const T* x,
                                          double momentum, double eps, T* save_mean, T* save_inv_std,
                                          T* running_mean, T* running_var) {
  const GridStride gs = grid_stride();
  const double count = static_cast<double>(d.count());
  for (int64_t c = gs.first; c < d.C; c += gs.stride) {
    const Sums s = channel_total(partial, bands, c);
    const double mean_d = s.first / count, raw_var = s.second / count - mean_d * mean_d;
    const double var = raw_var < 0.0 ? 0.0 : raw_var;  // rounding can dip below 0; NaN stays
    const double mean = channel_shift(x, d, c) + mean_d;
    save_mean[c] = static_cast<T>(mean);
    save_inv_std[c] = static_cast<T>(1.0 / sqrt(var + eps));
    if (running_mean) {
      const double unbiased_var = var * count / (count - 1.0);
      running_mean[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[c]) + momentum * mean);
      running_var[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[c]) + momentum * unbiased_var);
    }
  }
}

template <class T>
__global__ void eval_inv_std_kernel(const T* running_var, double eps, int64_t channels, T* inv_std) {
  const GridStride gs = grid_stride();
  for (int64_t c = gs.first; c < channels; c += gs.stride)
    inv_std[c] = static_cast<T>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
}

// y = (x - mean[c]) * (inv_std[c] * weight[c]) + bias[c], as the CPU's normalize_channel, then
// max(y, 0) when relu (NaN stays NaN).
template <class T>
__global__ void normalize_kernel(const T* x, const T* weight, const T* bias, const T* mean, const T* inv_std,
                                 T* y, BnDims d, int64_t total, bool relu) {
  const GridStride gs = grid_stride();
  for (int64_t k = gs.first; k < total; k += gs.stride) {
    const T v = normalized(x[k], channel_map(weight, bias, mean, inv_std, d.channel(k)));
    y[k] = relu && v < T(0) ? T(0) : v;
  }
}

// Per channel: the parameter gradients, and dx's coefficients dx = a * dy + b * (x - mean) + k.
template <class T>
__global__ void finish_backward_kernel(const double* partial, int64_t bands, int64_t channels, double count,
                                       const T* weight, const T* inv_std, bool training, bool accumulate,
                                       T* dweight, T* dbias, T* coefficients /* 3 * channels, nullable */) {
  const GridStride gs = grid_stride();
  for (int64_t c = gs.first; c < channels; c += gs.stride) {
    const Sums s = partial ? channel_total(partial, bands, c) : Sums{0, 0};
    const double rstd = static_cast<double>(inv_std[c]);
    const double sum_dy = s.first, sum_dy_xhat = s.second * rstd;
    if (dbias) dbias[c] = static_cast<T>((accumulate ? static_cast<double>(dbias[c]) : 0.0) + sum_dy);
    if (dweight) dweight[c] = static_cast<T>((accumulate ? static_cast<double>(dweight[c]) : 0.0) + sum_dy_xhat);
    if (!coefficients) continue;
    const double dy_scale = (weight ? static_cast<double>(weight[c]) : 1.0) * rstd;
    coefficients[c] = static_cast<T>(dy_scale);
    coefficients[channels + c] = static_cast<T>(training ? -dy_scale * rstd * sum_dy_xhat / count : 0.0);
    coefficients[2 * channels + c] = static_cast<T>(training ? -dy_scale * sum_dy / count : 0.0);
  }
}

template <class T>
__global__ void backward_input_kernel(const T* dy, const T* x, const T* mean, const T* coefficients, T* dx,
                                      BnDims d, int64_t total, ReluMask<T> mask) {
  const GridStride gs = grid_stride();
  for (int64_t k = gs.first; k < total; k += gs.stride) {
    const int64_t c = d.channel(k);
    const T g = mask(dy[k], x[k], c);
    dx[k] = coefficients[c] * g + coefficients[d.C + c] * (x[k] - mean[c]) + coefficients[2 * d.C + c];
  }
}

BnDims dims_of(const BatchNormShape& s) { return {s.batch, s.channels, s.spatial}; }

template <class T>
void normalize(const T* x, const T* weight, const T* bias, const T* mean, const T* inv_std, T* y,
               const BnDims& d, bool relu, const Exec& exec) {
  const int64_t total = d.N * d.C * d.S;
  if (total == 0) return;
  FASTNN_LAUNCH(blocks_for(total, kThreads), kThreads, 0, exec.stream, normalize_kernel<T>)(
      x, weight, bias, mean, inv_std, y, d, total, relu);
  check_launch("batch_norm_normalize");
}

}  // namespace

template <class T>
void batch_norm_train_forward(const T* x, const T* weight, const T* bias, T* y, T* save_mean,
                              T* save_inv_std, T* running_mean, T* running_var, double momentum,
                              double eps, bool relu, const BatchNormShape& s, const Exec& exec) {
  const BnDims d = dims_of(s);
  const Banding b = banding(d);
  const double* sums = channel_band_sums(d, b, ShiftedTerms<T>{x, d}, "batch_norm_statistics", exec);
  FASTNN_LAUNCH(blocks_for(d.C, kThreads), kThreads, 0, exec.stream, finish_train_stats_kernel<T>)(
      sums, b.bands, d, x, momentum, eps, save_mean, save_inv_std, running_mean, running_var);
  check_launch("batch_norm_finish_stats");
  // Normalise with the saved (rounded) statistics, the ones backward will see.
  normalize(x, weight, bias, save_mean, save_inv_std, y, d, relu, exec);
}

template <class T>
void batch_norm_eval_forward(const T* x, const T* weight, const T* bias, const T* running_mean,
                             const T* running_var, T* y, double eps, bool relu,
                             const BatchNormShape& s, const Exec& exec) {
  const BnDims d = dims_of(s);
  auto* inv_std = static_cast<T*>(exec.scratch(d.C * sizeof(T), "batch_norm_eval"));
  FASTNN_LAUNCH(blocks_for(d.C, kThreads), kThreads, 0, exec.stream, eval_inv_std_kernel<T>)(
      running_var, eps, d.C, inv_std);
  check_launch("batch_norm_eval_inv_std");
  normalize(x, weight, bias, running_mean, inv_std, y, d, relu, exec);
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* weight, const T* bias, const T* mean,
                         const T* inv_std, T* dx, T* dweight, T* dbias, bool accumulate, bool training,
                         bool relu, const BatchNormShape& s, const Exec& exec) {
  const BnDims d = dims_of(s);
  const ReluMask<T> mask{weight, bias, relu ? mean : nullptr, inv_std};
  const bool need_sums = training || dweight || dbias;
  if (!need_sums && !dx) return;
  const Banding b = banding(d);
  const double* sums =
      need_sums && d.count() > 0 ? channel_band_sums(d, b, GradTerms<T>{dy, x, mean, mask}, "batch_norm_backward_sums", exec)
                                 : nullptr;
  T* coefficients = dx ? static_cast<T*>(exec.scratch(3 * d.C * sizeof(T), "batch_norm_backward")) : nullptr;
  FASTNN_LAUNCH(blocks_for(d.C, kThreads), kThreads, 0, exec.stream, finish_backward_kernel<T>)(
      sums, b.bands, d.C, static_cast<double>(d.count()), weight, inv_std, training, accumulate, dweight, dbias,
      coefficients);
  check_launch("batch_norm_finish_backward");
  const int64_t total = d.N * d.C * d.S;
  if (!dx || total == 0) return;
  FASTNN_LAUNCH(blocks_for(total, kThreads), kThreads, 0, exec.stream, backward_input_kernel<T>)(
      dy, x, mean, coefficients, dx, d, total, mask);
  check_launch("batch_norm_backward_input");
}

#define FASTNN_INSTANTIATE(T)                                                                               \
  template void batch_norm_train_forward<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, double, double, \
                                            bool, const BatchNormShape&, const Exec&);                       \
  template void batch_norm_eval_forward<T>(const T*, const T*, const T*, const T*, const T*, T*, double,     \
                                           bool, const BatchNormShape&, const Exec&);                        \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*,  \
                                       T*, bool, bool, bool, const BatchNormShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cuda
