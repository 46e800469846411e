// 2-D convolution (PyTorch's conv2d: a cross-correlation), NCHW, grouped, row-major:
//   x: (N, C_in, H, W)   weight: (C_out, C_in/G, kh, kw)   bias: (C_out,)
//   y: (N, C_out, H_out, W_out)
//   G groups; output channel o belongs to group g = o / (C_out/G) and reads input channels
//   g*C_in/G + c for c < C_in/G:
//     y[n, o, i, j] = bias[o] + sum_{c, p, q} weight[o, c, p, q]
//                                * x[n, g*C_in/G + c, i*sh - ph + p*dh, j*sw - pw + q*dw]
//   where x reads zero outside [0, H) x [0, W) (zero padding), s = stride, p = padding,
//   d = dilation, and H_out = (H + 2 ph - dh (kh - 1) - 1) / sh + 1 (W_out likewise).
//   With `relu`, forward writes max(y, 0) instead (the GEMM epilogue's ReLU: NaN stays NaN).
//   backward: dx[n, c', h, w] = sum over every (o, p, q, i, j) whose tap reads x[n, c', h, w]
//                               of weight[o, c, p, q] * dy[n, o, i, j]               (written)
//             dweight[o, c, p, q] (+)= sum_{n, i, j} dy[n, o, i, j]
//                                          * x[n, g*C_in/G + c, i*sh - ph + p*dh, j*sw - pw + q*dw]
//             dbias[o]            (+)= sum_{n, i, j} dy[n, o, i, j]
// Gradient rule: parameter gradients accumulate when `accumulate` is true (the .grad
// convention); input gradients are always written.
//
// Method: per pass, direct kernels (conv2d_direct.h), GEMMs over taps read in place, over
// column matrices or over pixel rows (conv2d_rows.h, strided layers), or Winograd's GEMMs over
// transformed tiles (conv2d_winograd.h, float32 3x3 stride 1), as conv2d_plan.h chooses
// (conv2d.cpp runs the forward, conv2d_backward.cpp the gradients). Shapes are validated by Conv2dShape::from before any call.
#pragma once

#include "common/shapes/conv2d.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

// The names of the methods each pass runs for a shape (conv2d_plan.h: the plan the passes
// switch on, chosen by shape alone): forward
// "direct" | "channel_major" | "indirect" | "columns" | "input_as_columns" | "winograd" |
// "rows"; input_grad: a forward method (stride 1: the flipped-kernel convolution) or "col2im" |
// "input_as_columns_col2im" | "rows"; weight_grad "direct" | "tap_views" | "columns" |
// "input_as_columns" | "winograd" | "rows". For tests and benchmarks, which must know every
// path they cover.
struct Conv2dPlan {
  const char* forward = "";
  const char* input_grad = "";
  const char* weight_grad = "";
};

template <class T>
Conv2dPlan conv2d_plan(const Conv2dShape& s);

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias /* nullable */, T* y,
                    const Conv2dShape& s, bool relu, const Exec&);

template <class T>
void conv2d_backward_input(const T* dy, const T* weight, T* dx, const Conv2dShape& s, const Exec&);

template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const Conv2dShape& s, const Exec&);

template <class T>
void conv2d_backward_bias(const T* dy, T* dbias, bool accumulate, const Conv2dShape& s, const Exec&);

}  // namespace fastnn::cpu
