// Pixel rows (im2row) for strided convolutions without groups (conv2d_plan.cpp says where they
// pay). A block of b images becomes the rows matrix, one row of K = kh*kw*C_in per output pixel:
//   R[m*P + i*W_out + j, (p*kw + q)*C_in + c] = xh_m[(i*sh + p*dh) * Wp + j*sw + q*dw, c]
// where xh_m is image n0 + m channels last with its padding (conv2d_columns.h), P = H_out*W_out
// and Wp = W + 2pw. Each tap is C_in contiguous values of xh (a whole kernel row, kw*C_in,
// when dw = 1), so R is built by short vector copies, where the columns' im2col gathers every
// stride-th value one by one. The weight's K is reordered to match, once per call:
//   W'[o, (p*kw + q)*C_in + c] = weight[o, c, p, q]
// and the passes (conv2d.cpp, conv2d_backward.cpp) are single products over R:
//   forward       prod (b*P, C_out) = R @ W'^T         R the row-major A, read in place
//   weight grad   dW'^T (K, C_out) (+)= R^T @ dy^T     dy transposed to pixel-major per block
//   input grad    dR (P, K) = dy[n]^T @ W'              per image, its taps then added back
//                                                       into a channels-last padded dx
#pragma once

#include <cstdint>
#include <vector>

#include "common/shapes/conv2d.h"

namespace fastnn::cpu::conv2d_detail {

// W' (C_out, K) from weight (C_out, C_in, kh, kw).
template <class T>
std::vector<T> rows_weight(const T* weight, const Conv2dShape& s);

// dweight (C_out, C_in, kh, kw) (+)= dW' read from its transpose dW'^T (K, C_out).
template <class T>
void add_rows_weight_grad(const T* dweight_rows_t, T* dweight, bool accumulate,
                          const Conv2dShape& s);

// R of images [n, n + images) in this thread's workspace (row stride K). `first`: the first
// block of a share (the channels-last copy's padding is zeroed then, conv2d_columns.h).
template <class T>
const T* block_rows(const T* x, int64_t n, int64_t images, const Conv2dShape& s, bool first,
                    int threads);

// dx[n] (C_in, H, W) = the sum of every entry of dR (P, K) over the pixel its tap read, in a
// fixed order, padding dropped.
template <class T>
void scatter_add_rows(const T* drows, T* dx_image, const Conv2dShape& s);

}  // namespace fastnn::cpu::conv2d_detail
