// Row-wise softmax family and fused softmax cross-entropy on the GPU; the math of
// cpu/softmax_xent.h over (N, C) row-major arrays:
//   softmax(x) = exp(x - m) / sum exp(x - m),  log_softmax(x) = x - m - log sum exp(x - m)
//   softmax backward dx = y * (dy - <dy, y>),   log_softmax backward dx = dy - exp(y) * sum dy
//   cross-entropy with label smoothing eps: loss = mean_n sum_c -q[n, c] log_softmax(x)[n, c],
//   dloss/dx = (softmax(x) - q) / N,  q = (1 - eps) * onehot(label) + eps / C
// One warp per row: lanes stride over the columns and combine with shuffles (max, sums). As on
// the CPU, log-sum-exp, dot products and loss terms are formed in double.
#pragma once

#include <cstdint>

#include "common/shapes/rows.h"
#include "cuda/launch.h"
#include "cuda/loss_result.h"

namespace fastnn::cuda {

template <class T>
void softmax_forward(const T* x, T* y, const RowsShape& s, const Exec& exec);
template <class T>
void log_softmax_forward(const T* x, T* y, const RowsShape& s, const Exec& exec);
template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec& exec);
template <class T>
void log_softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec& exec);

// Mean loss over rows (waits for the stream). Labels outside [0, C) are not read through: the
// result's first_invalid names the first such row and the caller raises.
template <class T, class Label>
LossResult softmax_cross_entropy(const T* logits, const Label* labels, T label_smoothing,
                                 T* grad /* nullable */, const RowsShape& s, const Exec& exec);

}  // namespace fastnn::cuda
