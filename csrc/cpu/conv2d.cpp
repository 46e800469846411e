// 2-D convolution; see conv2d.h for the math. Each pass takes one of several methods, chosen
// from the shape alone (conv2d_plan names the choice; tests/test_conv2d_paths.py covers each).
//
// Column matrix of a block of b images, their columns side by side:
//   col[(c*kh + p)*kw + q, m*P + i*W_out + j] = x[n0 + m, c, i*sh - ph + p*dh, j*sw - pw + q*dw]
// (0 in the padding; P = H_out*W_out; group g owns rows [g*Kg, (g+1)*Kg), Kg = C_in/G*kh*kw).
// "Wide rows" (stride 1) lay each output row out as wide as the padded input, so that all of a
// tap's pixels are one contiguous run of the padded image, read in place; the extra columns
// are computed and dropped (see wide_rows_pay). Where the ISA has a row tile that fits W_out
// (gemm_row_tile), each tile reads one output row's run instead, and nothing is dropped.
//
//   forward:      direct kernels (conv2d_direct.h) for a few output channels over a few input
//                 channels; else prod (pixels, C_out) = col[g]^T @ weight[g]^T (+ bias, ReLU
//                 in the GEMM epilogue), the pixels as M and the small weights as the packed
//                 operand, then transposed into y's planes. At stride 1 the GEMM reads the
//                 taps straight from a padded image (gemm_indirect_a, no column matrix); with
//                 few taps (K < 32) y[n, g] = weight[g] @ col[g] is written in place instead.
//   input grad:   stride 1: the forward convolution of dy with the flipped kernel
//                 (weight'[c, o, p', q'] = weight[o, c, kh-1-p', kw-1-q'], padding
//                 dh*(kh-1) - ph), by whichever forward method fits it; otherwise
//                 dcol = weight[g]^T @ dy[n, g] per image, then col2im adds it back.
//   weight grad:  direct kernels for few taps; at stride 1, for each tap a product over the
//                 padded image shifted by the tap's offset (rows = channels, in place, the
//                 output pixels picked by offsets) and dy packed once per image; otherwise
//                 dweight^T[g] (Kg, Og) (+)= col[g] @ dy^T over blocks of images. Transposed
//                 once at the end.
// Blocks take several images when one image's product is short (LeNet's 10x10 outputs), up to
// kMaxColumnBytes of columns; 1x1 kernels at stride 1 without padding need no columns.
//
// Threads: whole images go to threads, each thread a contiguous share of the batch, running its
// GEMMs on itself alone (no barrier inside a share, no nested teams); batches too small to
// split evenly run in turn with the threads inside the GEMMs and the column transfers.
// Workspaces are per thread and kept across calls. The weight gradient sums a thread's images
// into that thread's partial, then adds the partials in thread order: deterministic for a given
// thread count.
#include "cpu/conv2d.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/threading.h"
#include "cpu/conv2d_direct.h"
#include "cpu/gemm.h"

namespace fastnn::cpu {
namespace {

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
  kWorkspaceSlots
};

template <class T>
T* workspace(WorkspaceSlot slot, int64_t elements) {
  thread_local std::vector<T> buffers[kWorkspaceSlots];
  std::vector<T>& buf = buffers[slot];
  if (buf.size() < static_cast<size_t>(elements)) buf.resize(static_cast<size_t>(elements));
  return buf.data();
}

// Columns of one block stay below this (they are read in place by the GEMM, from L2).
constexpr int64_t kMaxColumnBytes = int64_t{1} << 20;
// A block takes images until its product has this many rows (pixels).
constexpr int64_t kTargetRows = 1024;

// A 1x1 kernel at stride 1 without padding reads each input pixel once, in order: the column
// matrix of an image is the image itself (dilation does not matter for a single tap).
bool columns_are_input(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_h == 0 && s.pad_w == 0;
}

// GEMMs inside a per-image parallel region must stay on their own thread (no nested teams).
GemmThreads gemm_threads(int threads) {
  return threads > 1 ? GemmThreads::team : GemmThreads::caller;
}

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

// A few zeros (a wide row's extra columns), inline: GCC would turn the loop into a memset call
// costing more than the stores.
template <class T>
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
void zero_short_row(T* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = T(0);
}

// The input plane with its zero padding around it, (H + 2ph) x (W + 2pw), so that the column
// transfers below are plain strided copies with no bounds logic.
struct PaddedPlaneShape {
  int64_t height, width;
  explicit PaddedPlaneShape(const Conv2dShape& s)
      : height(s.height + 2 * s.pad_h), width(s.width + 2 * s.pad_w) {}
  int64_t size() const { return height * width; }
};

// Copies a plane into the interior of a padded plane whose border is already zero (callers
// zero a padded workspace once, then fill interiors channel after channel: the border stays).
template <class T>
void copy_into_padded(const T* plane, const Conv2dShape& s, T* padded) {
  const PaddedPlaneShape ps(s);
  for (int64_t h = 0; h < s.height; ++h)
    copy_short_row(plane + h * s.width, padded + (h + s.pad_h) * ps.width + s.pad_w, s.width);
}

// A padded-plane workspace of `elements`, all zero.
template <class T>
T* zeroed_workspace(WorkspaceSlot slot, int64_t elements) {
  T* buf = workspace<T>(slot, elements);
  std::fill(buf, buf + elements, T(0));
  return buf;
}

bool has_padding(const Conv2dShape& s) { return s.pad_h != 0 || s.pad_w != 0; }

// Calls f(tap_row, source) for every (c, p, q) row of the column matrix of input channels
// [c_begin, c_end) and every output row i: source points at the padded input pixel that output
// (i, 0) reads through tap (p, q); output (i, j) reads source[j * sw]. plane(c) gives the
// padded plane of channel c (or the plane itself without padding).
template <class Plane, class F>
void for_each_tap_row(const Conv2dShape& s, int64_t c_begin, int64_t c_end, Plane&& plane, F&& f) {
  const int64_t Wp = s.width + 2 * s.pad_w;
  for (int64_t c = c_begin; c < c_end; ++c) {
    auto* padded = plane(c);
    for (int64_t p = 0; p < s.kernel_h; ++p)
      for (int64_t q = 0; q < s.kernel_w; ++q) {
        const int64_t tap = (c * s.kernel_h + p) * s.kernel_w + q;
        for (int64_t i = 0; i < s.out_height; ++i)
          f(tap, i, padded + (i * s.stride_h + p * s.dilation_h) * Wp + q * s.dilation_w);
      }
  }
}

// im2col of one image, channels [c_begin, c_end), into col (row stride ld).
template <class T>
void gather_columns(const T* image, T* col, int64_t ld, const Conv2dShape& s, int64_t c_begin,
                    int64_t c_end) {
  T* padded =
      has_padding(s) ? zeroed_workspace<T>(kPaddedPlane, PaddedPlaneShape(s).size()) : nullptr;
  const int64_t W_out = s.out_width, sw = s.stride_w;
  auto plane = [&](int64_t c) -> const T* {
    const T* x = image + c * s.in_plane();
    if (!padded) return x;
    copy_into_padded(x, s, padded);
    return padded;
  };
  if (sw == 1) {
    // The same walk as for_each_tap_row, spelled out with every size in a local: the row
    // copies are char-typed stores, which could alias a lambda's captured sizes and force
    // their reload after every row (LeNet's 10-pixel rows made that half of the gather).
    const int64_t Wp = s.width + 2 * s.pad_w, kh = s.kernel_h, kw = s.kernel_w;
    const int64_t row_step = s.stride_h * Wp, dh = s.dilation_h * Wp, dw = s.dilation_w;
    const int64_t H_out = s.out_height;
    for (int64_t c = c_begin; c < c_end; ++c) {
      const T* source = plane(c);
      for (int64_t p = 0; p < kh; ++p)
        for (int64_t q = 0; q < kw; ++q) {
          const T* in = source + p * dh + q * dw;
          T* out = col + ((c * kh + p) * kw + q) * ld;
          for (int64_t i = 0; i < H_out; ++i) copy_short_row(in + i * row_step, out + i * W_out, W_out);
        }
    }
    return;
  }
  for_each_tap_row(s, c_begin, c_end, plane, [&](int64_t tap, int64_t i, const T* in) {
    T* out = col + tap * ld + i * W_out;
    for (int64_t j = 0; j < W_out; ++j) out[j] = in[j * sw];
  });
}

// col2im of one image, channels [c_begin, c_end): dx[c] is written as the sum of every column
// entry over the pixel it was read from (in a fixed order), padding discarded.
template <class T>
void scatter_add_columns(T* image, const T* col, int64_t ld, const Conv2dShape& s,
                         int64_t c_begin, int64_t c_end) {
  const PaddedPlaneShape ps(s);
  T* padded = workspace<T>(kPaddedPlane, ps.size());
  const int64_t W_out = s.out_width, sw = s.stride_w;
  int64_t current = -1;
  // Channel c's sums build up in the padded buffer; its interior is copied out when the walk
  // moves on to the next channel (and after the last).
  auto flush = [&]() {
    if (current < 0) return;
    T* plane = image + current * s.in_plane();
    for (int64_t h = 0; h < s.height; ++h)
      std::memcpy(plane + h * s.width, padded + (h + s.pad_h) * ps.width + s.pad_w,
                  sizeof(T) * s.width);
  };
  auto plane = [&](int64_t c) -> T* {
    flush();
    current = c;
    std::fill(padded, padded + ps.size(), T(0));
    return padded;
  };
  for_each_tap_row(s, c_begin, c_end, plane, [&](int64_t tap, int64_t i, T* in) {
    const T* out = col + tap * ld + i * W_out;
    for (int64_t j = 0; j < W_out; ++j) in[j * sw] += out[j];
  });
  flush();
}

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

// At stride 1, output rows may be laid out `pitch` = W + 2pw wide (the padded input's width)
// instead of W_out: output (i, j) sits at i * pitch + j and reads the padded plane at that index
// plus the tap's offset p*dh*pitch + q*dw, so a tap's pixels are ONE contiguous run of the
// padded plane, which the GEMMs read in place (gemm_indirect_a; the weight gradient's tap
// views). The pitch - W_out extra columns per row read wrapped-around pixels: the forward
// computes and drops them, the weight gradient multiplies them by zeros. Used where they cost at
// most a quarter more arithmetic.
bool wide_rows_pay(const Conv2dShape& s) {
  const int64_t pitch = s.width + 2 * s.pad_w;
  return s.stride_h == 1 && s.stride_w == 1 && 4 * pitch <= 5 * s.out_width;
}

// Where the pixels of one image sit in a column matrix's row: rows of `pitch`, the first
// out_width of each real.
struct PixelLayout {
  int64_t pitch, rows;
  int64_t size() const { return pitch * rows; }
};

PixelLayout pixel_layout(const Conv2dShape& s, bool wide) {
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
                         int threads) {
  const PixelLayout layout = pixel_layout(s, false);
  const T* first = x + n * s.in_channels * s.in_plane();
  if (columns_are_input(s) && images == 1) return {first, layout.size(), layout};
  const int64_t ld = images * layout.size();
  T* col = workspace<T>(kColumns, s.in_channels * s.kernel_area() * ld);
  for (int64_t m = 0; m < images; ++m)
    for_channel_blocks(threads, s.in_channels, [&](int64_t c0, int64_t c1) {
      gather_columns(first + m * s.in_channels * s.in_plane(), col + m * layout.size(), ld, s,
                     c0, c1);
    });
  return {col, ld, layout};
}

// Images per block: enough for kTargetRows product rows, within kMaxColumnBytes of columns.
template <class T>
int64_t images_per_block(const Conv2dShape& s) {
  if (columns_are_input(s)) return 1;
  const int64_t pixels = std::max<int64_t>(1, s.out_plane());
  const int64_t image_bytes = std::max<int64_t>(
      1, s.in_channels * s.kernel_area() * pixels * static_cast<int64_t>(sizeof(T)));
  const int64_t by_rows = (kTargetRows + pixels - 1) / pixels;
  return std::max<int64_t>(1, std::min(by_rows, kMaxColumnBytes / image_bytes));
}

// How threads share the work: `image_threads` > 1 splits the batch (each image on one thread),
// otherwise images run in turn with `inner_threads` inside each one.
struct ThreadPlan {
  int image_threads = 1, inner_threads = 1;
};

ThreadPlan plan_threads(const Conv2dShape& s) {
  // Below this many multiply-adds per thread, waking a thread costs more than it saves.
  constexpr double kMacsPerThread = 1 << 16;
  const int nt = threads_for(static_cast<int64_t>(s.macs() / kMacsPerThread), 1);
  if (nt <= 1) return {1, 1};
  // Splitting the batch is cheapest (no synchronisation) when the shares come out even enough.
  if (s.batch >= nt && (s.batch % nt == 0 || s.batch >= 4 * nt)) return {nt, 1};
  return {1, nt};
}

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

// y[n + m] (C_out, P) for m < images from prod (images * layout.size(), C_out), pixel-major:
// each output row's W_out pixels transposed into the channel planes (register transposes),
// wide rows' extra columns dropped.
template <class T>
void store_product(const T* prod, const PixelLayout& layout, int64_t images, T* y, int64_t n,
                   const Conv2dShape& s) {
  const int64_t C_out = s.out_channels, P = s.out_plane(), W_out = s.out_width;
  for (int64_t m = 0; m < images; ++m) {
    T* y_image = y + (n + m) * C_out * P;
    if (layout.pitch == W_out) {  // no extra columns: the whole image in one transpose
      transpose(prod + m * layout.size() * C_out, C_out, P, C_out, y_image, P);
      continue;
    }
    for (int64_t i = 0; i < layout.rows; ++i)
      transpose(prod + (m * layout.size() + i * layout.pitch) * C_out, C_out, W_out, C_out,
                y_image + i * W_out, P);
  }
}

// Image n of x with its planes padded (Hp x Wp each) in this thread's workspace of `size`
// elements (>= C_in planes; the rest stays zero). Zeroed when `first` (the first image of a call):
// later images then fill only the interiors, the border staying zero.
template <class T>
const T* padded_image(const T* x, int64_t n, const Conv2dShape& s, int64_t size, bool first,
                      int threads) {
  const PaddedPlaneShape ps(s);
  T* padded = first ? zeroed_workspace<T>(kPaddedImage, size) : workspace<T>(kPaddedImage, size);
  const T* image = x + n * s.in_channels * s.in_plane();
  for_channel_blocks(threads, s.in_channels, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      copy_into_padded(image + c * s.in_plane(), s, padded + c * ps.size());
  });
  return padded;
}

// Stride-1 forward without columns: the GEMM reads each tap straight from a padded copy of the
// image, in wide rows (gemm_indirect_a: tap k = (c, p, q) of a group is the run starting at
// k_offsets[k] = c*Hp*Wp + p*dh*Wp + q*dw). One image per product.
struct IndirectTaps {
  std::vector<int64_t> k_offsets;  // one group's taps
  int64_t image_size = 0;          // padded image plus the slack the last taps read past it
};

// With few taps per output (a first layer's 1 channel x 3x3 = 9) the product is mostly stores:
// then y[n, g] = weight[g] @ col[g] writes y in place, with no transposing pass, faster than the
// pixel-major product.
bool channel_major_pays(const Conv2dShape& s) {
  constexpr int64_t kMinPixelMajorK = 32;
  return s.col_rows_per_group() < kMinPixelMajorK;
}

bool indirect_taps_pay(const Conv2dShape& s) {
  return wide_rows_pay(s) && !columns_are_input(s) && !channel_major_pays(s);
}

// Elements of a padded image read in place at stride 1: the planes, plus the (kw-1)*dw the last
// tap's run ends past them, plus up to a micro-tile (16 rows) the GEMM reads past M.
int64_t padded_image_size(const Conv2dShape& s) {
  constexpr int64_t kTileRows = 16;
  return s.in_channels * PaddedPlaneShape(s).size() + (s.kernel_w - 1) * s.dilation_w + kTileRows;
}

IndirectTaps indirect_taps(const Conv2dShape& s) {
  const PaddedPlaneShape ps(s);
  IndirectTaps taps;
  taps.k_offsets.reserve(static_cast<size_t>(s.col_rows_per_group()));
  for (int64_t c = 0; c < s.in_channels_per_group(); ++c)
    for (int64_t p = 0; p < s.kernel_h; ++p)
      for (int64_t q = 0; q < s.kernel_w; ++q)
        taps.k_offsets.push_back(c * ps.size() + p * s.dilation_h * ps.width + q * s.dilation_w);
  taps.image_size = padded_image_size(s);
  return taps;
}

// Each group's weight (Og, Kg) as the indirect product's B (Kg, Og), packed once per call
// (gemm_pack_b) for every image; group g's at g * gemm_packed_b_size(Kg, Og).
template <class T>
std::vector<T> packed_weight_groups(const T* weight, const Conv2dShape& s) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group();
  const int64_t group_size = gemm_packed_b_size<T>(Kg, Og);
  std::vector<T> packed(static_cast<size_t>(s.groups * group_size));
  for (int64_t g = 0; g < s.groups; ++g)
    gemm_pack_b(Kg, Og, weight + g * Og * Kg, true, Kg, packed.data() + g * group_size);
  return packed;
}

// y[n] for images [n_begin, n_end): per block, the product prod (pixels, C_out) in this
// thread's workspace (bias and ReLU applied by the GEMM's epilogue), then stored into y. With
// taps, packed_weight holds packed_weight_groups(weight).
template <class T>
void forward_images(const T* x, const T* weight, const T* packed_weight, const T* bias, T* y,
                    bool relu, const Conv2dShape& s, const IndirectTaps* taps, int64_t n_begin,
                    int64_t n_end, int threads) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group();
  const int64_t C_out = s.out_channels, P = s.out_plane();
  if (channel_major_pays(s)) {
    const int64_t per_block = images_per_block<T>(s);
    for (int64_t n = n_begin; n < n_end; n += per_block) {
      const int64_t images = std::min(per_block, n_end - n);
      const Columns<T> col = block_columns(x, n, images, s, threads);
      for (int64_t m = 0; m < images; ++m)
        for (int64_t g = 0; g < s.groups; ++g) {
          GemmShape gs = GemmShape::dense(Og, P, Kg, false, false);
          gs.ldb = col.ld;
          GemmEpilogue<T> epilogue;
          epilogue.bias_per_row = bias ? bias + g * Og : nullptr;
          epilogue.relu = relu;
          gemm(gs, T(1), weight + g * Og * Kg, col.data + g * Kg * col.ld + m * P, T(0),
               y + (n + m) * C_out * P + g * Og * P, epilogue, gemm_threads(threads));
        }
    }
    return;
  }
  // With the tap offsets: exact rows where a row tile fits W_out (gemm_row_tile: each tile
  // reads one run of a padded row), else wide rows; without: the column matrix's exact rows.
  const int64_t Wp = PaddedPlaneShape(s).width;
  const GemmRowSegments segments{s.out_width, Wp};
  const bool row_tiles = taps && gemm_row_tile<T>(s.out_width, Og) > 0;
  const PixelLayout layout = pixel_layout(s, taps && !row_tiles);
  const int64_t per_block = taps ? 1 : images_per_block<T>(s);
  for (int64_t n = n_begin; n < n_end; n += per_block) {
    const int64_t images = std::min(per_block, n_end - n);
    const T* a = nullptr;
    int64_t lda = 0, group_stride = 0;
    if (taps) {
      a = padded_image(x, n, s, taps->image_size, n == n_begin, threads);
      group_stride = s.in_channels_per_group() * PaddedPlaneShape(s).size();
    } else {
      const Columns<T> col = block_columns(x, n, images, s, threads);
      a = col.data, lda = col.ld, group_stride = Kg * col.ld;
    }
    T* prod = workspace<T>(kProduct, images * layout.size() * C_out);
    for (int64_t g = 0; g < s.groups; ++g) {
      GemmEpilogue<T> epilogue;
      epilogue.bias_per_col = bias ? bias + g * Og : nullptr;
      epilogue.relu = relu;
      const T* a_group = a + g * group_stride;
      const T* w_group = weight + g * Og * Kg;
      if (taps) {
        gemm_indirect_a(layout.size(), Og, Kg, a_group, taps->k_offsets.data(),
                        packed_weight + g * gemm_packed_b_size<T>(Kg, Og), T(0), prod + g * Og,
                        C_out, epilogue, gemm_threads(threads), row_tiles ? &segments : nullptr);
      } else {
        GemmShape gs = GemmShape::dense(images * layout.size(), Og, Kg, true, true);
        gs.lda = lda, gs.ldc = C_out;
        gemm(gs, T(1), a_group, w_group, T(0), prod + g * Og, epilogue, gemm_threads(threads));
      }
    }
    store_product(prod, layout, images, y, n, s);
  }
}

// ---- Direct convolution (conv2d_direct.h) for few taps or few output channels -------------

bool direct_is_possible(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && !columns_are_input(s);
}

// Forward: a few output channels over a few input channels (LeNet's layers, and the input
// gradient of its second), where a product's N (the output channels) would leave most vector
// lanes idle.
bool direct_forward_pays(const Conv2dShape& s) {
  return direct_is_possible(s) && s.out_channels_per_group() <= 16 &&
         s.in_channels_per_group() <= 16;
}

// Weight gradient: few taps (the product would be a sliver of Kg <= 32 rows).
bool direct_weight_grad_pays(const Conv2dShape& s) {
  return direct_is_possible(s) && s.col_rows_per_group() <= 32;
}

// The direct kernels' output-channel block: 8 channels, or 6 where that computes fewer padding
// channels (LeNet's 6 in one block of 6, not 8; 12 in two blocks of 6), so fewer idle FMAs.
template <class T>
const typename Conv2dDirectKernels<T>::ForBlock& direct_block(const Conv2dShape& s) {
  const auto& blocks = conv2d_direct_kernels<T>().blocks;
  const int64_t Og = s.out_channels_per_group();
  auto computed = [&](int width) { return (Og + width - 1) / width * width; };
  return computed(blocks[1].width) < computed(blocks[0].width) ? blocks[1] : blocks[0];
}

int64_t direct_blocks(const Conv2dShape& s, int width) {
  return (s.out_channels_per_group() + width - 1) / width;
}

// Padded image size for the direct kernels: the planes plus the kernel's reach and a vector or
// a pixel run, whichever is longer (both are read whole past a row's end).
template <class T>
int64_t direct_image_size(const Conv2dShape& s) {
  const Conv2dDirectKernels<T>& kernels = conv2d_direct_kernels<T>();
  return s.in_channels * PaddedPlaneShape(s).size() + std::max(kernels.lanes, kernels.pixel_run) +
         (s.kernel_w - 1) * s.dilation_w;
}

// The pixel-major forward (output channels in the lanes) where it keeps more lanes busy than
// the row-vector one: LeNet's second layer, 16 channels over 10-pixel rows (10 of 16 lanes
// busy in a row vector, all 16 in a channel vector).
template <class T>
bool pixel_major_direct_pays(const Conv2dShape& s) {
  const Conv2dDirectKernels<T>& kernels = conv2d_direct_kernels<T>();
  const int64_t L = kernels.lanes, RW = kernels.pixel_run, OB = direct_block<T>(s).width;
  const int64_t Og = s.out_channels_per_group(), W = s.out_width;
  auto busy = [](int64_t n, int64_t unit) { return double(n) / double((n + unit - 1) / unit * unit); };
  return busy(Og, L) * busy(W, RW) > busy(W, L) * busy(Og, OB);
}

// wblock[g][b][k][u] = weight[g*Og + b*OB + u, k], 0 past the group's channels.
template <class T>
std::vector<T> direct_weight_blocks(const T* weight, const Conv2dShape& s, int OB) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group();
  const int64_t blocks = direct_blocks(s, OB);
  std::vector<T> wblock(static_cast<size_t>(s.groups * blocks * Kg * OB), T(0));
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t k = 0; k < Kg; ++k)
        wblock[((g * blocks + o / OB) * Kg + k) * OB + o % OB] = weight[(g * Og + o) * Kg + k];
  return wblock;
}

template <class T>
void direct_forward(const T* x, const T* weight, const T* bias, T* y, bool relu,
                    const Conv2dShape& s) {
  if (pixel_major_direct_pays<T>(s)) {
    // Each image's product pixel-major in this thread's workspace, then transposed into y.
    const Conv2dDirectKernels<T>& kernels = conv2d_direct_kernels<T>();
    const int L = kernels.lanes;
    const std::vector<T> wvec = direct_weight_blocks(weight, s, L);
    const int64_t size = direct_image_size<T>(s), P = s.out_plane(), Og = s.out_channels_per_group();
    const int64_t group_pitch = direct_blocks(s, L) * L, pitch = s.groups * group_pitch;
    ThreadPlan plan = plan_threads(s);
    plan.inner_threads = 1;
    for_each_share(s, plan, [&](int, int64_t n0, int64_t n1, int) {
      T* prod = workspace<T>(kProduct, P * pitch);
      for (int64_t n = n0; n < n1; ++n) {
        kernels.forward_image_pixel_major(padded_image(x, n, s, size, n == n0, 1), wvec.data(),
                                          bias, prod, relu, s);
        for (int64_t g = 0; g < s.groups; ++g)
          transpose(prod + g * group_pitch, pitch, P, Og, y + (n * s.groups + g) * Og * P, P);
      }
    });
    return;
  }
  const auto& block = direct_block<T>(s);
  const std::vector<T> wblock = direct_weight_blocks(weight, s, block.width);
  const int64_t size = direct_image_size<T>(s), y_image = s.out_channels * s.out_plane();
  ThreadPlan plan = plan_threads(s);
  plan.inner_threads = 1;  // the kernel runs on one thread per image
  for_each_share(s, plan, [&](int, int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n)
      block.forward_image(padded_image(x, n, s, size, n == n0, 1), wblock.data(), bias,
                          y + n * y_image, relu, s);
  });
}

// dweight (beta)= the sum over images: each thread's lane partials (conv2d_direct.h), then
// per weight the threads in order and each one's lanes in order.
template <class T>
void direct_weight_grad(const T* dy, const T* x, T* dweight, bool accumulate,
                        const Conv2dShape& s) {
  const int L = conv2d_direct_kernels<T>().lanes;
  const auto& block = direct_block<T>(s);
  const int OB = block.width;
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group();
  const int64_t blocks = direct_blocks(s, OB), part_size = s.groups * blocks * Kg * OB * L;
  const int64_t size = direct_image_size<T>(s), y_image = s.out_channels * s.out_plane();
  const ThreadPlan plan = plan_threads(s);
  const int nt = std::max(1, plan.image_threads);
  std::vector<T> partials(static_cast<size_t>(nt * part_size), T(0));
  ThreadPlan image_plan = plan;
  image_plan.inner_threads = 1;
  for_each_share(s, image_plan, [&](int t, int64_t n0, int64_t n1, int) {
    T* dyw = workspace<T>(kDirectGrad, direct_grad_rows_size(s, L, OB));
    for (int64_t n = n0; n < n1; ++n)
      block.weight_grad_image(padded_image(x, n, s, size, n == n0, 1), dy + n * y_image, dyw,
                              partials.data() + t * part_size, s);
  });
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t k = 0; k < Kg; ++k) {
        const int64_t at = (((g * blocks + o / OB) * Kg + k) * OB + o % OB) * L;
        T sum = T(0);
        for (int t = 0; t < nt; ++t)
          for (int l = 0; l < L; ++l) sum += partials[t * part_size + at + l];
        T& dst = dweight[(g * Og + o) * Kg + k];
        dst = accumulate ? dst + sum : sum;
      }
}

template <class T>
void forward(const T* x, const T* weight, const T* bias, T* y, bool relu, const Conv2dShape& s) {
  if (direct_forward_pays(s)) {
    direct_forward(x, weight, bias, y, relu, s);
    return;
  }
  const bool indirect = indirect_taps_pay(s);
  const IndirectTaps taps = indirect ? indirect_taps(s) : IndirectTaps{};
  const std::vector<T> packed = indirect ? packed_weight_groups(weight, s) : std::vector<T>{};
  for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
    forward_images(x, weight, packed.data(), bias, y, relu, s, indirect ? &taps : nullptr, n0,
                   n1, threads);
  });
}

// The shape of the input gradient's convolution (see below): dy (N, C_out, H_out, W_out) in,
// dx (N, C_in, H, W) out.
Conv2dShape input_grad_shape(const Conv2dShape& s) {
  Conv2dParams p;
  p.pad_h = s.dilation_h * (s.kernel_h - 1) - s.pad_h;
  p.pad_w = s.dilation_w * (s.kernel_w - 1) - s.pad_w;
  p.dilation_h = s.dilation_h, p.dilation_w = s.dilation_w;
  p.groups = s.groups;
  return Conv2dShape::from("conv2d_backward", s.output_dims(),
                           {s.in_channels, s.out_channels_per_group(), s.kernel_h, s.kernel_w},
                           p);
}

// At stride 1 the input gradient is a forward convolution of dy with the flipped kernel when
// the padding it needs, dilation * (k - 1) - pad, is not negative (pad <= the kernel's span).
// That convolution has C_in/G output channels, the N of its GEMMs: with fewer than a vector's
// worth (LeNet's 6) most lanes would idle, so it runs only where the direct kernels take it;
// otherwise the col2im path is faster.
bool input_grad_is_convolution(const Conv2dShape& s) {
  constexpr int64_t kMinChannels = 16;
  if (!(s.stride_h == 1 && s.stride_w == 1 && s.pad_h <= s.dilation_h * (s.kernel_h - 1) &&
        s.pad_w <= s.dilation_w * (s.kernel_w - 1)))
    return false;
  constexpr int64_t kMinDirectChannels = 4;  // below, most of the direct kernels' block idles
  return s.in_channels_per_group() >= kMinChannels ||
         (s.in_channels_per_group() >= kMinDirectChannels &&
          direct_forward_pays(input_grad_shape(s)));
}

// weight'[g*Cg + c, o, p', q'] = weight[g*Og + o, c, kh-1-p', kw-1-q'] (Cg = C_in/G).
template <class T>
std::vector<T> flipped_weight(const T* weight, const Conv2dShape& s) {
  const int64_t Og = s.out_channels_per_group(), Cg = s.in_channels_per_group();
  const int64_t kh = s.kernel_h, kw = s.kernel_w, area = s.kernel_area();
  std::vector<T> flipped(static_cast<size_t>(s.weight_size()));
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t c = 0; c < Cg; ++c) {
        const T* src = weight + ((g * Og + o) * Cg + c) * area;
        T* dst = flipped.data() + ((g * Cg + c) * Og + o) * area;
        for (int64_t t = 0; t < area; ++t) dst[t] = src[(kh * kw - 1) - t];
      }
  return flipped;
}

// Images per block of the weight gradient's column matrix: as many as kMaxColumnBytes hold.
template <class T>
int64_t weight_grad_images_per_block(const Conv2dShape& s) {
  if (columns_are_input(s)) return 1;
  const int64_t image_bytes = std::max<int64_t>(
      1, s.in_channels * s.kernel_area() * s.out_plane() * static_cast<int64_t>(sizeof(T)));
  return std::max<int64_t>(1, kMaxColumnBytes / image_bytes);
}

// At stride 1 the weight gradient needs no column matrix: for each tap (p, q),
//   dweight^T[g][(c, p, q), :] (+)= xpad[g*Cg + c, shift + pixel(k)] @ dy[g, :, k]^T
// is a product whose A is the padded image itself, read in place: its rows (channels) Hp*Wp
// apart, shifted by the tap's offset shift = p*dh*Wp + q*dw, its columns the output pixels k
// at pixel(k) = (k / W_out) * Wp + k % W_out (gemm_with_packed_b with offsets), so only real
// pixels are read. dy is packed once per image for all kh*kw taps. Used where the padded rows
// are not much wider than the output's (the products' K is then long enough to pay).
bool tap_views_pay(const Conv2dShape& s) { return wide_rows_pay(s) && !columns_are_input(s); }

// pixel(k) above for the P output pixels.
std::vector<int64_t> output_pixel_offsets(const Conv2dShape& s) {
  const int64_t Wp = PaddedPlaneShape(s).width;
  std::vector<int64_t> offsets(static_cast<size_t>(s.out_plane()));
  for (int64_t i = 0; i < s.out_height; ++i)
    for (int64_t j = 0; j < s.out_width; ++j) offsets[i * s.out_width + j] = i * Wp + j;
  return offsets;
}

// Elements of the padded image the tap views read: a micro-tile's rows (16 planes) past the
// last channel too, zero (the GEMM computes, then drops, rows past M).
int64_t tap_views_image_size(const Conv2dShape& s) {
  constexpr int64_t kTileRows = 16;
  return padded_image_size(s) + kTileRows * PaddedPlaneShape(s).size();
}

// One image's dweight^T (groups, Kg, Og) (beta)= the tap-view products (above).
template <class T>
void accumulate_weight_grad_tap_views(const T* dy, const T* x, int64_t n, T* dweight_t, T beta,
                                      const Conv2dShape& s, const int64_t* pixel_offsets,
                                      bool first_padded, int threads) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group();
  const int64_t Cg = s.in_channels_per_group(), area = s.kernel_area(), P = s.out_plane();
  const PaddedPlaneShape ps(s);
  const T* xpad = padded_image(x, n, s, tap_views_image_size(s), first_padded, threads);
  const T* dy_image = dy + n * s.out_channels * P;
  T* packed = workspace<T>(kPackedGrad, gemm_packed_b_size<T>(P, Og));
  for (int64_t g = 0; g < s.groups; ++g) {
    gemm_pack_b(P, Og, dy_image + g * Og * P, true, P, packed);
    for (int64_t p = 0; p < s.kernel_h; ++p)
      for (int64_t q = 0; q < s.kernel_w; ++q) {
        GemmShape gs = GemmShape::dense(Cg, Og, P, false, false);
        gs.lda = ps.size(), gs.ldc = area * Og;
        const T* a = xpad + g * Cg * ps.size() + p * s.dilation_h * ps.width + q * s.dilation_w;
        gemm_with_packed_b(gs, a, packed, beta, dweight_t + (g * Kg + p * s.kernel_w + q) * Og,
                           {}, gemm_threads(threads), pixel_offsets);
      }
  }
}

// dweight (beta)= sum over images [n_begin, n_end) of dy[n, g] @ col[n, g]^T, images in order.
// The sum is formed transposed, dweight^T[g] (Kg, Og) = sum_n col[n, g] @ dy[n, g]^T, because
// then the big operand, the column matrix (Kg, P), is the GEMM's row-major A, read in place,
// and only the small dy (Og, P) is packed. The (Og, Kg) transpose happens once, at the end.
// At stride 1 the tap views replace the column matrix.
template <class T>
void accumulate_weight_grad(const T* dy, const T* x, T* dweight, T beta, int64_t n_begin,
                            int64_t n_end, const Conv2dShape& s, int threads) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group(), P = s.out_plane();
  const bool views = tap_views_pay(s);
  const std::vector<int64_t> pixel_offsets =
      views ? output_pixel_offsets(s) : std::vector<int64_t>{};
  const int64_t per_block = views ? 1 : weight_grad_images_per_block<T>(s);
  T* dweight_t = workspace<T>(kWeightTransposed, s.weight_size());  // (groups, Kg, Og)
  if (n_begin == n_end) std::fill(dweight_t, dweight_t + s.weight_size(), T(0));
  bool first_padded = true;
  for (int64_t n = n_begin; n < n_end; n += per_block) {
    const int64_t images = std::min(per_block, n_end - n);
    const T block_beta = n == n_begin ? T(0) : T(1);
    if (views) {
      accumulate_weight_grad_tap_views(dy, x, n, dweight_t, block_beta, s, pixel_offsets.data(),
                                       first_padded, threads);
      first_padded = false;
      continue;
    }
    const Columns<T> col = block_columns(x, n, images, s, threads);
    for (int64_t m = 0; m < images; ++m) {
      const T* dy_image = dy + (n + m) * s.out_channels * P;
      const T image_beta = m == 0 ? block_beta : T(1);
      for (int64_t g = 0; g < s.groups; ++g) {
        GemmShape gs = GemmShape::dense(Kg, Og, P, false, true);
        gs.lda = col.ld;
        gemm(gs, T(1), col.data + g * Kg * col.ld + m * P, dy_image + g * Og * P, image_beta,
             dweight_t + g * Kg * Og, {}, gemm_threads(threads));
      }
    }
  }
  for (int64_t g = 0; g < s.groups; ++g) {
    const T* src = dweight_t + g * Kg * Og;
    T* dst = dweight + g * Og * Kg;
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t k = 0; k < Kg; ++k)
        dst[o * Kg + k] = beta == T(0) ? src[k * Og + o] : beta * dst[o * Kg + k] + src[k * Og + o];
  }
}

// Sum of n contiguous values with eight independent accumulators: vectorisable without
// reassociation flags, more accurate than one running sum, and always the same order.
template <class T>
T sum_contiguous(const T* v, int64_t n) {
  T lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] += v[i + k];
  T total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
            ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) total += v[i];
  return total;
}

}  // namespace

namespace {

// The forward's method, in the order forward() tries them.
const char* forward_method(const Conv2dShape& s) {
  if (direct_forward_pays(s)) return "direct";
  if (channel_major_pays(s)) return "channel_major";
  if (indirect_taps_pay(s)) return "indirect";
  return columns_are_input(s) ? "input_as_columns" : "columns";
}

}  // namespace

template <class T>
Conv2dPlan conv2d_plan(const Conv2dShape& s) {
  Conv2dPlan plan;
  plan.forward = forward_method(s);
  if (input_grad_is_convolution(s)) {
    plan.input_grad = forward_method(input_grad_shape(s));
  } else {
    plan.input_grad = columns_are_input(s) ? "input_as_columns_col2im" : "col2im";
  }
  if (direct_weight_grad_pays(s)) {
    plan.weight_grad = "direct";
  } else if (tap_views_pay(s)) {
    plan.weight_grad = "tap_views";
  } else {
    plan.weight_grad = columns_are_input(s) ? "input_as_columns" : "columns";
  }
  return plan;
}

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                    bool relu, const Exec&) {
  forward(x, weight, bias, y, relu, s);
}

template <class T>
void conv2d_backward_input(const T* dy, const T* weight, T* dx, const Conv2dShape& s, const Exec&) {
  if (input_grad_is_convolution(s)) {
    const std::vector<T> flipped = flipped_weight(weight, s);
    forward<T>(dy, flipped.data(), nullptr, dx, false, input_grad_shape(s));
    return;
  }
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group(), P = s.out_plane();
  const bool direct = columns_are_input(s);
  for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
    for (int64_t n = n0; n < n1; ++n) {
      T* dx_image = dx + n * s.in_channels * s.in_plane();
      const T* dy_image = dy + n * s.out_channels * P;
      // For 1x1 kernels the column gradient is the input gradient: the GEMM writes it in place.
      T* dcol = direct ? dx_image : workspace<T>(kColumns, s.col_size());
      for (int64_t g = 0; g < s.groups; ++g)
        gemm(GemmShape::dense(Kg, P, Og, true, false), T(1), weight + g * Og * Kg,
             dy_image + g * Og * P, T(0), dcol + g * Kg * P, {}, gemm_threads(threads));
      if (!direct) {
        for_channel_blocks(threads, s.in_channels, [&](int64_t c0, int64_t c1) {
          scatter_add_columns(dx_image, dcol, P, s, c0, c1);
        });
      }
    }
  });
}

template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const Conv2dShape& s, const Exec&) {
  if (direct_weight_grad_pays(s)) {
    direct_weight_grad(dy, x, dweight, accumulate, s);
    return;
  }
  const T beta = accumulate ? T(1) : T(0);
  const ThreadPlan plan = plan_threads(s);
  if (plan.image_threads <= 1) {
    accumulate_weight_grad(dy, x, dweight, beta, 0, s.batch, s, plan.inner_threads);
    return;
  }
  // Thread t sums its share of images into its own partial; the partials are then added into
  // dweight in thread order.
  const int nt = plan.image_threads;
  const int64_t size = s.weight_size();
  T* partials = workspace<T>(kWeightPartials, nt * size);
  for_each_share(s, plan, [&](int t, int64_t n0, int64_t n1, int) {
    accumulate_weight_grad(dy, x, partials + t * size, T(0), n0, n1, s, 1);
  });
  const int64_t chunk = 1024;
  const int64_t n_chunks = (size + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads_for(size * nt)) schedule(static)
  for (int64_t k = 0; k < n_chunks; ++k) {
    const int64_t i0 = k * chunk, i1 = std::min(size, i0 + chunk);
    for (int64_t i = i0; i < i1; ++i) {
      T sum = accumulate ? dweight[i] : T(0);
      for (int t = 0; t < nt; ++t) sum += partials[t * size + i];
      dweight[i] = sum;
    }
  }
}

template <class T>
void conv2d_backward_bias(const T* dy, T* dbias, bool accumulate, const Conv2dShape& s, const Exec&) {
  // One output channel per task, summing plane by plane over images in order: the result does
  // not depend on the thread count.
  const int64_t P = s.out_plane();
  const int nt = threads_for(s.batch * s.out_channels * P);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t o = 0; o < s.out_channels; ++o) {
    T sum = accumulate ? dbias[o] : T(0);
    for (int64_t n = 0; n < s.batch; ++n)
      sum += sum_contiguous(dy + (n * s.out_channels + o) * P, P);
    dbias[o] = sum;
  }
}

#define FASTNN_INSTANTIATE(T)                                                                  \
  template Conv2dPlan conv2d_plan<T>(const Conv2dShape&);                                      \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&,     \
                                   bool, const Exec&);                                                    \
  template void conv2d_backward_input<T>(const T*, const T*, T*, const Conv2dShape&, const Exec&);         \
  template void conv2d_backward_weight<T>(const T*, const T*, T*, bool, const Conv2dShape&, const Exec&);  \
  template void conv2d_backward_bias<T>(const T*, T*, bool, const Conv2dShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
