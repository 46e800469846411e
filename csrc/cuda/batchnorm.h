// Batch normalisation on the GPU: the math, statistics and gradient rule of cpu/batchnorm.h
// (biased batch variance for normalising, unbiased for the running estimate, computed in double
// exactly as there; dweight / dbias accumulate when `accumulate`, dx is written).
//
// Per-channel sums run in double in two stages, both in a fixed order (deterministic): blocks
// reduce bands of a channel's N * S values (grid-stride within the band, then warp shuffles and
// warps in order), and one thread per channel adds the bands in band order. The training forward
// takes its statistics in one pass, as the CPU does (sums of x - K and its square, K the
// channel's first value, so a large mean cannot cancel the variance); elementwise kernels then
// normalise (and apply the fused ReLU) or form dx from per-channel coefficients (the fused
// ReLU's mask recomputed from x with the forward's expression).
#pragma once

#include "common/shapes/batchnorm.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

// x, y: (N, C, S)  weight, bias, save_mean, save_inv_std, running_mean, running_var: (C,).
// weight / bias nullable (1 / 0); running_mean / running_var nullable together.
template <class T>
void batch_norm_train_forward(const T* x, const T* weight, const T* bias, T* y, T* save_mean,
                              T* save_inv_std, T* running_mean, T* running_var, double momentum,
                              double eps, bool relu, const BatchNormShape& s, const Exec& exec);

template <class T>
void batch_norm_eval_forward(const T* x, const T* weight, const T* bias, const T* running_mean,
                             const T* running_var, T* y, double eps, bool relu,
                             const BatchNormShape& s, const Exec& exec);

// mean, inv_std: (C,) as saved by the training forward (running statistics in eval).
// dx, dweight, dbias each nullable (not computed); bias (nullable) read only when relu.
template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* weight, const T* bias, const T* mean,
                         const T* inv_std, T* dx, T* dweight, T* dbias, bool accumulate, bool training,
                         bool relu, const BatchNormShape& s, const Exec& exec);

}  // namespace fastnn::cuda
