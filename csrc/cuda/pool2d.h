// 2-D pooling on the GPU: the math, tie rule and gradient rule of cpu/pool2d.h (max with argmax
// indices, first in scan order on ties, NaN propagating; average with count_include_pad; global
// average with sums in double). Window geometry: common/shapes/pool2d.h; index maps:
// pool2d_maps.cuh.
//
// Forward: one thread per output element, scanning its window. Backward: one thread per input
// element, gathering from the outputs whose windows cover it, in output order — no atomics, and
// dx equals the CPU's (max pooling bit for bit: the same additions in the same order).
// max_pool2d_backward_scatter serves callers that know the argmax indices but not the window:
// one thread per plane adds in output order, as the CPU does.
#pragma once

#include <cstdint>

#include "common/shapes/pool2d.h"
#include "cuda/launch.h"

namespace fastnn::cuda {

// x: (N, C, H, W)  y, indices: (N, C, out_h, out_w); Index is int32_t or int64_t.
template <class T, class Index>
void max_pool2d_forward(const T* x, T* y, Index* indices, const Pool2dShape& s, const Exec& exec);

// dy, indices: (N, C, out_h, out_w) from max_pool2d_forward with the window of `s`  dx: (N, C, H, W).
template <class T, class Index>
void max_pool2d_backward(const T* dy, const Index* indices, T* dx, const Pool2dShape& s, const Exec& exec);

// The same without the window: dy, indices: planes x out_plane  dx: planes x in_plane. Indices
// outside [0, in_plane) are skipped; returns the flat position of the first one, or -1 (which
// needs the result on the host: waits for the stream).
template <class T, class Index>
int64_t max_pool2d_backward_scatter(const T* dy, const Index* indices, T* dx, int64_t planes,
                                    int64_t in_plane, int64_t out_plane, const Exec& exec);

template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec& exec);

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec& exec);

// x: (N, C, H, W)  y: (N, C); `s` from Pool2dShape::global. One warp per plane.
template <class T>
void global_avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec& exec);

template <class T>
void global_avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec& exec);

}  // namespace fastnn::cuda
