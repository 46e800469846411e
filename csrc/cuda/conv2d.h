// 2-D convolution on the GPU (PyTorch's conv2d: cross-correlation, NCHW, stride, zero padding,
// dilation, groups); the math and gradient rule of cpu/conv2d.h:
//   y[n, o, i, j] = bias[o] + sum_{c, p, q} weight[o, c, p, q] * x[n, g*Cg + c, i*sh - ph + p*dh, j*sw - pw + q*dw]
//   with `relu`, forward writes max(y, 0) instead (NaN stays NaN), as the CPU epilogue does
//   dx (written), dweight (+)= and dbias (+)= as there (accumulate flag).
//
// Method: implicit GEMM — the products of cpu/conv2d.cpp with the im2col matrix never stored.
// Per group g (Og = C_out/G, Cg = C_in/G, KK = kh*kw, P = H_out*W_out), on the tiled main loop
// of gemm_tiles.cuh, whose operand loaders gather from the tensors directly:
//   forward          y[:, g]     = relu?(weight[g] (Og, Cg*KK) @ cols(x) (Cg*KK, N*P) + bias)
//   backward input   dx[:, g]    = weight[g]^T (Cg, Og*KK) gathered @ taps(dy) (Og*KK, N*H*W)
//                    (each input pixel gathers the output positions that read it: no scatter,
//                    no atomics)
//   backward weight  dweight[g] (+)= dy[:, g] (Og, N*P) @ cols(x)^T (N*P, Cg*KK), split over
//                    N*P with partial products summed in split order
//   backward bias    dbias[o] (+)= sum over images and pixels, in bands summed in order.
// Deterministic on a given GPU.
#pragma once

#include "common/shapes/conv2d.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias /* nullable */, T* y,
                    const Conv2dShape& s, bool relu, const Exec& exec);

template <class T>
void conv2d_backward_input(const T* dy, const T* weight, T* dx, const Conv2dShape& s,
                           const Exec& exec);

template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const Conv2dShape& s, const Exec& exec);

template <class T>
void conv2d_backward_bias(const T* dy, T* dbias, bool accumulate, const Conv2dShape& s,
                          const Exec& exec);

}  // namespace fastnn::cuda
