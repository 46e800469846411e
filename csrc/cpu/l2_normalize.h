// L2 normalisation of the rows of x (N, D), row-major (PyTorch's F.normalize(x, p=2, dim=1)):
//   forward:  y[n] = x[n] / max(||x[n]||, eps)
//   backward: dx[n] = (dy[n] - y[n] <dy[n], y[n]>) / ||x[n]||    where ||x[n]|| > eps
//             dx[n] = dy[n] / eps                                 otherwise (y = x / eps: linear)
// Norms and dot products are summed in double. Input gradients are written; the fused callers'
// parameter gradients (arcface's class centres) are added (`accumulate`).
#pragma once

#include <cstdint>

#include "common/shapes/rows.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
void l2_normalize_forward(const T* x, T* y, double eps, const RowsShape& s, const Exec&);

template <class T>
void l2_normalize_backward(const T* dy, const T* x, T* dx, double eps, const RowsShape& s, const Exec&);

// The pieces a fused op builds on: the forward keeping each row's ||x[n]|| in `norms` (N,), and
// the backward from y and those norms (no x needed), writing dx or, with `accumulate`, adding
// into it. dx may be dy itself when not accumulating.
template <class T>
void l2_normalize_rows(const T* x, T* y, double* norms, double eps, const RowsShape& s, const Exec&);

template <class T>
void l2_normalize_rows_backward(const T* dy, const T* y, const double* norms, T* dx, double eps,
                                bool accumulate, const RowsShape& s, const Exec&);

}  // namespace fastnn::cpu
