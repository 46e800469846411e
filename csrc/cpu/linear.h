// Fully connected layer (PyTorch's Linear), row-major:
//   forward:  y = x @ weight^T + bias                  x: (N, in)  weight: (out, in)  y: (N, out)
//             (with `relu`, y = max(that, 0), applied while each tile is in registers; a NaN
//             stays NaN, the GEMM epilogue's rule)
//   backward: dx = dy @ weight                         dx: (N, in)      (written)
//             dweight (+)= dy^T @ x                    dweight: (out, in)
//             dbias   (+)= sum_n dy[n, :]              dbias: (out,)
// Gradient rule: parameter gradients accumulate when `accumulate` is true (the .grad
// convention); input gradients are always written.
#pragma once

#include "common/shapes/linear.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

template <class T>
void linear_forward(const T* x, const T* weight, const T* bias /* nullable */, T* y,
                    const LinearShape& s, bool relu, const Exec&);

template <class T>
void linear_backward_input(const T* dy, const T* weight, T* dx, const LinearShape& s, const Exec&);

template <class T>
void linear_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const LinearShape& s, const Exec&);

// dbias[o] (+)= sum over rows of dy (N, out): shared by every layer with a per-feature bias.
template <class T>
void bias_backward_rows(const T* dy, T* dbias, int64_t rows, int64_t features, bool accumulate, const Exec&);

}  // namespace fastnn::cpu
