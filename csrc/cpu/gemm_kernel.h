// Register-blocked micro-kernels for cpu/gemm.cpp and how to choose one.
//
// A micro-kernel multiplies an MR x kc block of op(A) by a kc x NR block of op(B) and stores the
// MR x NR tile of C through the tile's output rule (GemmTileOutput):
//   acc[i, j] = sum_p A(i, p) * B(p, j)
//   c[i, j]   = relu?(alpha * acc[i, j] + beta * c[i, j] + bias_col[j] + bias_row[i])
// for i < m_valid, j < n_valid; beta == 0 means "do not read C".
//
// A(i, p) lives at a[i * a_row_stride + p * a_col_stride], and one of the strides is 1:
//   a_row_stride == 1: column panels (a packed MR-row panel with a_col_stride == MR, or op(A)
//                      stored column-major, i.e. A transposed, read in place);
//   a_col_stride == 1: op(A) rows read in place (row-major A, no packing);
// or, when a_k_offsets is not null, at a[i * a_row_stride + a_k_offsets[p]]: with
// a_row_stride == 1 an indirect A whose column p is a contiguous run starting anywhere (one tap
// of a convolution over a padded image), otherwise row-major A whose columns are picked by
// offsets (a convolution's output pixels read from padded planes, skipping their borders).
// All rows the kernel computes must be readable (the driver packs zero-padded panels for ragged
// edges).
// B(p, j) lives at b[p * b_row_stride + j]: a packed panel (b_row_stride == NR) or a small
// row-major op(B) read in place. The kernel reads only columns j < n_valid of it.
#pragma once

#include <cstdint>

namespace fastnn::cpu {

template <class T>
struct GemmTileOutput {
  T* c;
  int64_t ldc;
  int m_valid, n_valid;
  T alpha, beta;
  const T* bias_col;  // bias of the tile's first column, or null
  const T* bias_row;  // bias of the tile's first row, or null
  bool relu;
};

template <class T>
using GemmMicroKernel = void (*)(int64_t kc, const T* a, int64_t a_row_stride,
                                 int64_t a_col_stride, const int64_t* a_k_offsets, const T* b,
                                 int64_t b_row_stride, const GemmTileOutput<T>& out);

// Packs `count` rows of op(A) (or columns of op(B)) over `lines` (= kc) values of k into
// ceil(count / width) consecutive panels, width = MR or NR: panel q, at out + q * width * lines,
// holds line l (one k) as `width` elements, zeros past `count`. pack_rows reads element (l, j)
// from src[l * ld + j] (op(A) stored transposed, op(B) row-major), row by row, so a whole block
// streams through memory in order; pack_transposed from src[j * ld + l] (row-major op(A),
// op(B) stored transposed).
template <class T>
using GemmPackPanels = void (*)(const T* src, int64_t ld, int64_t count, int64_t lines,
                                int width, T* out);

// out[c * ld_out + r] = src[r * ld + c] for r < rows, c < cols: a plain transpose, with the
// packers' register transposes (a convolution's pixel-major product into channel planes).
template <class T>
using GemmTranspose = void (*)(const T* src, int64_t ld, int64_t rows, int64_t cols, T* out,
                               int64_t ld_out);

template <class T>
struct GemmRowKernel {
  int mr;
  GemmMicroKernel<T> kernel;
};

// A register tile and its kernels: `kernel` computes MR rows; `shorter` (fewer rows, ascending)
// serve a ragged last row panel: the first with mr >= m_valid, which reads only its own rows.
template <class T>
struct GemmMicroTile {
  int mr, nr;
  GemmMicroKernel<T> kernel;
  GemmRowKernel<T> shorter[2];
};

template <class T>
struct GemmKernelInfo {
  GemmMicroTile<T> wide;    // the main tile
  GemmMicroTile<T> narrow;  // for products with N <= narrow.nr (a classifier's 10 outputs)
  // For a convolution's output rows (gemm_indirect_a with row segments): mr and the larger
  // shorter variant are the row lengths it fits exactly (14 and 7 under AVX-512: 28, 14 and 7
  // pixel rows, MNIST's sizes). The same as `wide` where registers allow no taller tile.
  GemmMicroTile<T> rows;
  int64_t mc, kc, nc;       // cache blocks (mc a multiple of both tiles' mr, nc of wide.nr)
  GemmPackPanels<T> pack_rows, pack_transposed;
  GemmTranspose<T> transpose;
  const char* name;
};

// The kernels for the SIMD level in use (common/cpu_features.h).
template <class T>
const GemmKernelInfo<T>& gemm_kernel_info();

#if defined(FASTNN_X86)
// Defined in gemm_avx2.cpp / gemm_avx512.cpp (compiled with their own -m flags); call them only
// when active_simd_level() allows.
const GemmKernelInfo<float>& gemm_kernel_info_avx2_float();
const GemmKernelInfo<double>& gemm_kernel_info_avx2_double();
const GemmKernelInfo<float>& gemm_kernel_info_avx512_float();
const GemmKernelInfo<double>& gemm_kernel_info_avx512_double();
#endif

}  // namespace fastnn::cpu
