// What every conv2d pass shares (conv2d_columns.cpp): per-thread workspaces, padded copies of
// the input, column matrices, the direct kernels' layouts, and how threads share a batch.
//
// Column matrix of a block of b images, their columns side by side:
//   col[(c*kh + p)*kw + q, m*P + i*W_out + j] = x[n0 + m, c, i*sh - ph + p*dh, j*sw - pw + q*dw]
// (0 in the padding; P = H_out*W_out; group g owns rows [g*Kg, (g+1)*Kg), Kg = C_in/G*kh*kw).
// Blocks take several images when one image's product is short (LeNet's 10x10 outputs), up to
// kMaxColumnBytes of columns; 1x1 kernels at stride 1 without padding need no columns.
//
// "Wide rows" (stride 1): output rows laid out `pitch` = W + 2pw wide (the padded input's width)
// instead of W_out: output (i, j) sits at i * pitch + j and reads the padded plane at that index
// plus the tap's offset p*dh*pitch + q*dw, so a tap's pixels are ONE contiguous run of the
// padded plane, which the GEMMs read in place. The pitch - W_out extra columns per row read
// wrapped-around pixels: the forward computes and drops them, the weight gradient multiplies
// them by zeros (where that pays: conv2d_plan.cpp).
//
// Threads: whole images go to threads, each thread a contiguous share of the batch, running its
// GEMMs on itself alone (no barrier inside a share, no nested teams); batches too small to
// split evenly run in turn with the threads inside the GEMMs and the column transfers.
// Workspaces are per thread and kept across calls.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/shapes/conv2d.h"
#include "cpu/gemm.h"

namespace fastnn::cpu::conv2d_detail {

// Per-thread scratch, kept across calls: OpenMP's pool threads persist, so a training loop
// reuses the same memory every step instead of allocating a column matrix per call.
enum WorkspaceSlot {
  kColumns,
  kPaddedPlane,
  kPaddedImage,
  kProduct,
  kPackedGrad,
  kDirectGrad,
  kWeightPartials,
  kWeightTransposed,
  kWinogradWeights,  // conv2d_winograd.cpp: the packed transformed weights, and their scratch
  kWinogradWeightScratch,
  kWorkspaceSlots
};

// This thread's buffer for `slot`, at least `elements` long (contents left from earlier use).
template <class T>
T* workspace(WorkspaceSlot slot, int64_t elements);

// Columns of one block stay below this (they are read in place by the GEMM, from L2).
constexpr int64_t kMaxColumnBytes = int64_t{1} << 20;
// A block takes images until its product has this many rows (pixels).
constexpr int64_t kTargetRows = 1024;
// Rows of a GEMM micro-tile, which may read that many rows past M (kept zero, then dropped).
constexpr int64_t kTileRows = 16;

// A 1x1 kernel at stride 1 without padding reads each input pixel once, in order: the column
// matrix of an image is the image itself (dilation does not matter for a single tap).
inline bool columns_are_input(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_h == 0 && s.pad_w == 0;
}

// GEMMs inside a per-image parallel region must stay on their own thread (no nested teams).
inline GemmThreads gemm_threads(int threads) {
  return threads > 1 ? GemmThreads::team : GemmThreads::caller;
}

// The input plane with its zero padding around it, (H + 2ph) x (W + 2pw), so that the column
// transfers are plain strided copies with no bounds logic.
struct PaddedPlaneShape {
  int64_t height, width;
  explicit PaddedPlaneShape(const Conv2dShape& s)
      : height(s.height + 2 * s.pad_h), width(s.width + 2 * s.pad_w) {}
  int64_t size() const { return height * width; }
};

// Elements of a padded image read in place at stride 1: the planes, plus the (kw-1)*dw the last
// tap's run ends past them, plus up to a micro-tile the GEMM reads past M.
int64_t padded_image_size(const Conv2dShape& s);

// Image n of x with its planes padded (Hp x Wp each) in this thread's workspace of `size`
// elements (>= C_in planes; the rest stays zero). Zeroed when `first` (the first image of a
// call): later images then fill only the interiors, the border staying zero.
template <class T>
const T* padded_image(const T* x, int64_t n, const Conv2dShape& s, int64_t size, bool first,
                      int threads);

// A row of a few dozen values. A library memcpy call costs more than the copy at these lengths,
// so the row goes in fixed 32-byte moves (inlined), the last one overlapping the one before it
// instead of a tail loop.
template <class T>
inline void copy_short_row(const T* in, T* out, int64_t n) {
  constexpr int64_t kChunk = 32 / sizeof(T), kHalf = kChunk / 2;
  if (n >= kChunk) {
    int64_t j = 0;
    for (; j + kChunk <= n; j += kChunk) std::memcpy(out + j, in + j, 32);
    if (j < n) std::memcpy(out + n - kChunk, in + n - kChunk, 32);
  } else if (n >= kHalf) {
    std::memcpy(out, in, 16);
    std::memcpy(out + n - kHalf, in + n - kHalf, 16);
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] = in[j];
  }
}

// Image n of x channels last with its padding, in this thread's kPaddedImage workspace of
// height x width pixels, `ld` apart (>= C_in):
//   xh[((h + ph) * width + w + pw) * ld + c] = x[n, c, h, w]
// each input row transposed into channels-last pixels (the Winograd and pixel-rows paths read
// it). Zeroed when `first` (the first image of a share): later images fill the same pixels, so
// the padding and the spare channels stay zero.
template <class T>
T* channels_last_image(const T* x, int64_t n, const Conv2dShape& s, int64_t height,
                       int64_t width, int64_t ld, bool first, int threads);

// Calls f(c_begin, c_end) over the input channels, split across `threads` (channels own
// disjoint rows of the column matrix and disjoint planes of the image).
template <class F>
void for_channel_blocks(int threads, int64_t channels, F&& f) {
  if (threads <= 1) {
    f(int64_t{0}, channels);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < channels; ++c) f(c, c + 1);
}

// Where the pixels of one image sit in a column matrix's row (or a product's rows): rows of
// `pitch`, the first out_width of each real.
struct PixelLayout {
  int64_t pitch, rows;
  int64_t size() const { return pitch * rows; }
};

inline PixelLayout pixel_layout(const Conv2dShape& s, bool wide) {
  return {wide ? s.width + 2 * s.pad_w : s.out_width, s.out_height};
}

// The column matrix of a block of images: rows (c, p, q), each image's pixels in `layout`,
// image m's at m * layout.size(); ld = images * layout.size().
template <class T>
struct Columns {
  const T* data;
  int64_t ld;
  PixelLayout layout;
};

// Images [n, n + images) of x as columns: x itself for one image of a 1x1 kernel, else im2col
// into this thread's workspace.
template <class T>
Columns<T> block_columns(const T* x, int64_t n, int64_t images, const Conv2dShape& s,
                         int threads);

// col2im of one image, channels [c_begin, c_end): dx[c] is written as the sum of every column
// entry (col, row stride ld) over the pixel it was read from (in a fixed order), padding
// discarded.
template <class T>
void scatter_add_columns(T* image, const T* col, int64_t ld, const Conv2dShape& s,
                         int64_t c_begin, int64_t c_end);

// Images per block of the forward's columns: enough for kTargetRows product rows, within
// kMaxColumnBytes of columns.
template <class T>
int64_t images_per_block(const Conv2dShape& s);
// Images per block of the weight gradient's columns: as many as kMaxColumnBytes hold.
template <class T>
int64_t weight_grad_images_per_block(const Conv2dShape& s);

// How threads share the work: `image_threads` > 1 splits the batch (each image on one thread),
// otherwise images run in turn with `inner_threads` inside each one.
struct ThreadPlan {
  int image_threads = 1, inner_threads = 1;
};

ThreadPlan plan_threads(const Conv2dShape& s);

// Calls per_share(t, n_begin, n_end, threads_inside) for every thread's contiguous share of
// the batch under `plan` (one share with the inner threads when the batch is not split).
template <class F>
void for_each_share(const Conv2dShape& s, const ThreadPlan& plan, F&& per_share) {
  const int nt = plan.image_threads;
  if (nt <= 1) {
    per_share(0, int64_t{0}, s.batch, plan.inner_threads);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) per_share(t, s.batch * t / nt, s.batch * (t + 1) / nt, 1);
}

// ---- The direct kernels' layouts (conv2d_direct.h) -------------------------------------------

// Blocks of `width` output channels per group.
inline int64_t direct_blocks(const Conv2dShape& s, int width) {
  return (s.out_channels_per_group() + width - 1) / width;
}

// Padded image size for the direct kernels: the planes plus the kernel's reach and a vector or
// a pixel run, whichever is longer (both are read whole past a row's end).
template <class T>
int64_t direct_image_size(const Conv2dShape& s);

// wblock[g][b][k][u] = weight[g*Og + b*OB + u, k], 0 past the group's channels.
template <class T>
std::vector<T> direct_weight_blocks(const T* weight, const Conv2dShape& s, int OB);

}  // namespace fastnn::cpu::conv2d_detail
