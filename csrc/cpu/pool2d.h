// 2-D pooling over NCHW planes (PyTorch's max_pool2d / avg_pool2d, ceil_mode=False) and global
// average pooling. Window geometry: common/shapes/pool2d.h.
//   max_pool2d:  y[n, c, oh, ow] = max over the window of x[n, c, h, w]; padding never wins
//                (it counts as -inf). indices[n, c, oh, ow] = h * W + w of the winner within its
//                plane; on ties the first in scan order (row by row) wins, so exactly one input
//                receives each output's gradient. NaN propagates (the first NaN wins).
//                backward: dx[n, c, indices[n, c, o]] += dy[n, c, o], zero elsewhere (written).
//   avg_pool2d:  y = (sum over the window, padding counted as 0) / (kernel_h * kernel_w)
//                (count_include_pad=True); backward spreads dy / (kernel_h * kernel_w) over
//                each window's real elements (written).
//   global_avg_pool2d: y[n, c] = mean over h, w of x[n, c, h, w] (sums in double);
//                backward dx[n, c, h, w] = dy[n, c] / (H * W) (written).
// Threads split whole output rows (forward) or whole planes (backward, whose windows may
// overlap; and the 2x2 stride-2 forward fast paths), so every element is produced by one
// thread in a fixed order: results do not depend on the thread count. The float32 2x2 max
// pool has an AVX-512 kernel (pool2d_avx512.cpp), chosen at run time like the GEMM's.
#pragma once

#include <cstdint>

#include "common/shapes/pool2d.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

// x: (N, C, H, W)  y, indices: (N, C, out_h, out_w); Index is int32_t or int64_t.
template <class T, class Index>
void max_pool2d_forward(const T* x, T* y, Index* indices, const Pool2dShape& s, const Exec&);

// dy, indices: planes x out_plane  dx: planes x in_plane. Needs only the plane sizes: the
// indices already say where each gradient goes. The caller validates them first
// (validate_pool_indices: the CPU bindings check data on the host), so this returns -1, the
// "no invalid index" of cuda::max_pool2d_backward_scatter, which flags them on the device.
template <class T, class Index>
int64_t max_pool2d_backward_scatter(const T* dy, const Index* indices, T* dx, int64_t planes,
                                    int64_t in_plane, int64_t out_plane, const Exec&);

// The same for the forward's window `s` (the CUDA twin gathers through it; here the indices
// suffice).
template <class T, class Index>
void max_pool2d_backward(const T* dy, const Index* indices, T* dx, const Pool2dShape& s,
                         const Exec& exec) {
  max_pool2d_backward_scatter(dy, indices, dx, s.planes(), s.in_plane(), s.out_plane(), exec);
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec&);

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec&);

// x: (N, C, H, W)  y: (N, C); `s` from Pool2dShape::global.
template <class T>
void global_avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, const Exec&);

template <class T>
void global_avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, const Exec&);

}  // namespace fastnn::cpu
