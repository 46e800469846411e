// The method each pass of a convolution takes (conv2d.h has the math), chosen from the shape
// alone, with the element type and SIMD level picking among the kernels:
//
//   forward      direct          conv2d_direct.h kernels: few output over few input channels
//                channel_major   y[n, g] = weight[g] @ col[g], written in place: few taps
//                indirect        stride 1: prod (pixels, C_out) = taps @ weight^T, the taps read
//                                straight from a padded image through per-tap offsets
//                columns         the same product over an im2col column matrix
//                input_as_columns  1x1, stride 1, no padding: the image is its own columns
//                winograd        3x3, stride 1, float32: F(4x4, 3x3) tiles, a*a GEMMs over
//                                transformed tiles (conv2d_winograd.h)
//                rows            strided, no groups: prod (pixels, C_out) = R @ W'^T over pixel
//                                rows R (channels last, K = (p, q, c): conv2d_rows.h), read in
//                                place
//   input grad   convolution     stride 1: dy convolved with the flipped kernel, by whichever
//                                forward method fits that shape
//                col2im          dcol = weight[g]^T @ dy[n, g], added back into dx
//                input_as_columns_col2im  the same, the GEMM writing dx in place
//                rows            strided, no groups: dR = dy[n]^T @ W', its taps added back
//                                into a channels-last padded dx (conv2d_rows.h)
//   weight grad  direct          conv2d_direct.h kernels: few taps
//                tap_views       stride 1: one product per tap over the shifted padded image
//                columns / input_as_columns  dweight^T[g] (+)= col[g] @ dy[n, g]^T
//                winograd        3x3, stride 1, float32: M[xi] = sum over tiles of the
//                                transformed dy^T @ transformed x, then G^T M G (conv2d_winograd.h)
//                rows            strided, no groups: dW'^T (+)= R^T @ dy^T over the pixel rows
//                                (conv2d_rows.h), in chunks of the batch fixed by the shape
//
// Every heuristic that chooses a method lives in conv2d_plan.cpp. The passes (conv2d.cpp,
// conv2d_backward.cpp) switch on the plan and choose no method themselves (they only size
// blocks of images and thread shares, conv2d_columns.h), so conv2d_plan() (conv2d.h), which names
// this same plan for tests and benchmarks, describes the code that runs.
#pragma once

#include "common/shapes/conv2d.h"

namespace fastnn::cpu::conv2d_detail {

enum class ForwardMethod {
  direct,
  channel_major,
  indirect,
  columns,
  input_as_columns,
  winograd,
  rows
};
enum class InputGradMethod { convolution, col2im, input_as_columns_col2im, rows };
enum class WeightGradMethod { direct, tap_views, columns, input_as_columns, winograd, rows };

// How the direct kernels run a shape (Conv2dDirectKernels, conv2d_direct.h).
struct DirectPlan {
  int block = 0;             // index into Conv2dDirectKernels::blocks: 8 or 6 output channels
  bool pixel_major = false;  // forward only: the output channels in the lanes
};

struct ForwardPlan {
  ForwardMethod method = ForwardMethod::columns;
  DirectPlan direct;        // method == direct
  bool row_tiles = false;   // method == indirect: one GEMM row tile per output row, else wide rows
};

struct InputGradPlan {
  InputGradMethod method = InputGradMethod::col2im;
  Conv2dShape convolution;  // method == convolution: its shape (dy in, dx out) ...
  ForwardPlan forward;      // ... and how it runs
};

struct WeightGradPlan {
  WeightGradMethod method = WeightGradMethod::columns;
  DirectPlan direct;        // method == direct
};

// Each pass asks for its own plan only; plan() is the three together.
template <class T>
ForwardPlan plan_forward(const Conv2dShape& s);
template <class T>
InputGradPlan plan_input_grad(const Conv2dShape& s);
template <class T>
WeightGradPlan plan_weight_grad(const Conv2dShape& s);

struct Plan {
  ForwardPlan forward;
  InputGradPlan input_grad;
  WeightGradPlan weight_grad;
};
template <class T>
Plan plan(const Conv2dShape& s) {
  return {plan_forward<T>(s), plan_input_grad<T>(s), plan_weight_grad<T>(s)};
}

// The forward pass as planned (conv2d.cpp); the input gradient's convolution runs it too.
template <class T>
void run_forward(const T* x, const T* weight, const T* bias /* nullable */, T* y, bool relu,
                 const Conv2dShape& s, const ForwardPlan& plan);

}  // namespace fastnn::cpu::conv2d_detail
