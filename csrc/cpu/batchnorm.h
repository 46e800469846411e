// Batch normalisation (PyTorch's BatchNorm1d / BatchNorm2d) over x viewed as (N, C, S); see
// common/shapes/batchnorm.h. Per channel c, over the M = N * S values x[:, c, :]:
//   training:  mean = sum x / M,   var = sum (x - mean)^2 / M          (biased, normalises)
//              (computed in one pass as K + sum d / M and sum d^2 / M - (sum d / M)^2 with
//              d = x - K, K the channel's first value, in double)
//              inv_std = 1 / sqrt(var + eps)
//              y = (x - mean) * inv_std * weight + bias
//              running_mean = (1 - momentum) * running_mean + momentum * mean
//              running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
//                                                                    (unbiased, in place)
//              mean and inv_std are saved for backward.
//   eval:      y = (x - running_mean) / sqrt(running_var + eps) * weight + bias
//   relu (either mode): y = max(y, 0) in the same pass (NaN stays NaN).
//   backward, with xhat = (x - mean) * inv_std (mean, inv_std: saved batch statistics in
//   training, running statistics in eval):
//              dbias   (+)= sum dy                     dweight (+)= sum dy * xhat
//              training: dx = weight * inv_std * (dy - sum dy / M - xhat * sum(dy * xhat) / M)
//              eval:     dx = weight * inv_std * dy                 (the statistics are constants)
//   fused ReLU backward (relu): dy above is replaced by dy * (y > 0) for the relu forward's y,
//   whose sign is recomputed from x with the forward's own expression (cpu/batchnorm_rows.h),
//   so mean / inv_std / weight / bias must be the ones that forward normalised with.
// weight / bias may be null (affine=False: weight 1, bias 0). Per-channel sums accumulate in
// double, each channel in a fixed order by one thread: results do not depend on the thread
// count. Gradient rule: dweight / dbias accumulate when `accumulate` is true; dx is written.
#pragma once

#include <cstdint>

#include "common/shapes/batchnorm.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

// x, y: (N, C, S)  weight, bias, save_mean, save_inv_std, running_mean, running_var: (C,).
// running_mean / running_var are nullable together (no running estimate kept).
template <class T>
void batch_norm_train_forward(const T* x, const T* weight, const T* bias, T* y, T* save_mean,
                              T* save_inv_std, T* running_mean, T* running_var, double momentum,
                              double eps, bool relu, const BatchNormShape& s, const Exec&);

template <class T>
void batch_norm_eval_forward(const T* x, const T* weight, const T* bias, const T* running_mean,
                             const T* running_var, T* y, double eps, bool relu,
                             const BatchNormShape& s, const Exec&);

// mean, inv_std: (C,), as saved by the training forward (or running statistics in eval).
// dx, dweight, dbias are each nullable (not computed). bias (nullable: 0) is read only when
// relu: dy is then the gradient of the relu output.
template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* weight, const T* bias, const T* mean,
                         const T* inv_std, T* dx, T* dweight, T* dbias, bool accumulate,
                         bool training, bool relu, const BatchNormShape& s, const Exec&);

}  // namespace fastnn::cpu
