// Row L2 normalisation on the GPU; the math of cpu/l2_normalize.h over x (N, D) row-major:
//   y[n] = x[n] / max(||x[n]||, eps)
//   dx[n] = (dy[n] - y[n] <dy[n], y[n]>) / ||x[n]|| where ||x[n]|| > eps, else dy[n] / eps
// One warp per row: lanes stride over the columns and combine norms and dot products (in double)
// with shuffles. Input gradients are written; the fused callers' parameter gradients are added.
#pragma once

#include <cstdint>

#include "common/shapes/rows.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

template <class T>
void l2_normalize_forward(const T* x, T* y, double eps, const RowsShape& s, const Exec& exec);

template <class T>
void l2_normalize_backward(const T* dy, const T* x, T* dx, double eps, const RowsShape& s, const Exec& exec);

// The pieces a fused op builds on (as in cpu/l2_normalize.h): the forward keeping each row's
// ||x[n]|| in `norms` (N,), and the backward from y and those norms, writing dx or, with
// `accumulate`, adding into it. dx may be dy itself when not accumulating.
template <class T>
void l2_normalize_rows(const T* x, T* y, double* norms, double eps, const RowsShape& s, const Exec& exec);

template <class T>
void l2_normalize_rows_backward(const T* dy, const T* y, const double* norms, T* dx, double eps,
                                bool accumulate, const RowsShape& s, const Exec& exec);

}  // namespace fastnn::cuda
