// Row-wise softmax family over (N, C) arrays, and the fused softmax cross-entropy loss.
//   softmax(x)[n, c]     = exp(x[n, c] - m_n) / sum_k exp(x[n, k] - m_n),  m_n = max_k x[n, k]
//   log_softmax(x)[n, c] = x[n, c] - m_n - log sum_k exp(x[n, k] - m_n)
//   softmax backward:     dx = y * (dy - sum_c dy * y)          (y = softmax output)
//   log_softmax backward: dx = dy - exp(y) * sum_c dy           (y = log_softmax output)
// Subtracting the row max keeps every exp in (0, 1]: no overflow for any finite input.
//
// Cross-entropy with label smoothing eps (PyTorch's definition), labels y_n in [0, C):
//   q[n, c] = (1 - eps) * [c == y_n] + eps / C
//   loss    = (1 / N) * sum_n sum_c -q[n, c] * log_softmax(x)[n, c]
//   dloss/dx[n, c] = (softmax(x)[n, c] - q[n, c]) / N     (written to grad when not null)
#pragma once

#include <cstdint>

#include "common/shapes/rows.h"
#include "common/loss_result.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
void softmax_forward(const T* x, T* y, const RowsShape& s, const Exec&);
template <class T>
void log_softmax_forward(const T* x, T* y, const RowsShape& s, const Exec&);
template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec&);
template <class T>
void log_softmax_backward(const T* y, const T* dy, T* dx, const RowsShape& s, const Exec&);

// Returns the mean loss (accumulated in double); labels are int32 or int64, already checked to
// lie in [0, C).
template <class T, class Label>
LossResult softmax_cross_entropy(const T* logits, const Label* labels, T label_smoothing,
                             T* grad /* nullable */, const RowsShape& s, const Exec&);

}  // namespace fastnn::cpu
