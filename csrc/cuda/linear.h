// Fully connected layer on the GPU; the math and layout of cpu/linear.h:
//   forward:  y = relu?(x @ weight^T + bias)  x: (N, in)  weight: (out, in)  y: (N, out)
//   backward: dx = dy @ weight               (written)
//             dweight (+)= dy^T @ x          dbias (+)= sum_n dy[n, :]   (accumulate flag)
// Forward is one GEMM with the bias and the optional ReLU fused into its epilogue; backward is two GEMMs and a column
// sum (bias_backward_rows). All run on exec.stream.
#pragma once

#include "common/shapes/linear.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

template <class T>
void linear_forward(const T* x, const T* weight, const T* bias /* nullable */, T* y,
                    const LinearShape& s, bool relu, const Exec& exec);

template <class T>
void linear_backward_input(const T* dy, const T* weight, T* dx, const LinearShape& s,
                           const Exec& exec);

template <class T>
void linear_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const LinearShape& s, const Exec& exec);

// dbias[f] (+)= sum over rows of dy (rows, features), summed in a fixed order: deterministic.
template <class T>
void bias_backward_rows(const T* dy, T* dbias, int64_t rows, int64_t features, bool accumulate,
                        const Exec& exec);

}  // namespace fastnn::cuda
