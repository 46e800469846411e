// Workspaces, padded images and column matrices for the conv2d passes; see conv2d_columns.h for
// the layouts. The copies here run per row of a few dozen values (LeNet's 10- to 28-pixel
// rows), so they avoid library calls and bounds logic in the inner loops.
#include "cpu/conv2d_columns.h"

#include <algorithm>
#include <cstring>

#include "common/threading.h"
#include "cpu/conv2d_direct.h"

namespace fastnn::cpu::conv2d_detail {

template <class T>
T* workspace(WorkspaceSlot slot, int64_t elements) {
  thread_local std::vector<T> buffers[kWorkspaceSlots];
  std::vector<T>& buf = buffers[slot];
  if (buf.size() < static_cast<size_t>(elements)) buf.resize(static_cast<size_t>(elements));
  return buf.data();
}

namespace {

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

}  // namespace

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

template <class T>
int64_t images_per_block(const Conv2dShape& s) {
  if (columns_are_input(s)) return 1;
  const int64_t pixels = std::max<int64_t>(1, s.out_plane());
  const int64_t image_bytes = std::max<int64_t>(
      1, s.in_channels * s.kernel_area() * pixels * static_cast<int64_t>(sizeof(T)));
  const int64_t by_rows = (kTargetRows + pixels - 1) / pixels;
  return std::max<int64_t>(1, std::min(by_rows, kMaxColumnBytes / image_bytes));
}

template <class T>
int64_t weight_grad_images_per_block(const Conv2dShape& s) {
  if (columns_are_input(s)) return 1;
  const int64_t image_bytes = std::max<int64_t>(
      1, s.in_channels * s.kernel_area() * s.out_plane() * static_cast<int64_t>(sizeof(T)));
  return std::max<int64_t>(1, kMaxColumnBytes / image_bytes);
}

ThreadPlan plan_threads(const Conv2dShape& s) {
  // Below this many multiply-adds per thread, waking a thread costs more than it saves.
  constexpr double kMacsPerThread = 1 << 16;
  const int nt = threads_for(static_cast<int64_t>(s.macs() / kMacsPerThread), 1);
  if (nt <= 1) return {1, 1};
  // Splitting the batch is cheapest (no synchronisation) when the shares come out even enough.
  if (s.batch >= nt && (s.batch % nt == 0 || s.batch >= 4 * nt)) return {nt, 1};
  return {1, nt};
}

int64_t padded_image_size(const Conv2dShape& s) {
  return s.in_channels * PaddedPlaneShape(s).size() + (s.kernel_w - 1) * s.dilation_w + kTileRows;
}

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

template <class T>
T* channels_last_image(const T* x, int64_t n, const Conv2dShape& s, int64_t height,
                       int64_t width, int64_t ld, bool first, int threads) {
  const int64_t size = height * width * ld;
  T* xh = workspace<T>(kPaddedImage, size);
  if (first) std::fill(xh, xh + size, T(0));
  const int64_t H = s.height, W = s.width, plane = s.in_plane();
  const T* image = x + n * s.in_channels * plane;
  for_channel_blocks(threads, H, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h)
      transpose(image + h * W, plane, s.in_channels, W, xh + ((h + s.pad_h) * width + s.pad_w) * ld,
                ld);
  });
  return xh;
}

template <class T>
int64_t direct_image_size(const Conv2dShape& s) {
  const Conv2dDirectKernels<T>& kernels = conv2d_direct_kernels<T>();
  return s.in_channels * PaddedPlaneShape(s).size() + std::max(kernels.lanes, kernels.pixel_run) +
         (s.kernel_w - 1) * s.dilation_w;
}

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

#define FASTNN_INSTANTIATE(T)                                                                   \
  template T* workspace<T>(WorkspaceSlot, int64_t);                                             \
  template const T* padded_image<T>(const T*, int64_t, const Conv2dShape&, int64_t, bool, int); \
  template T* channels_last_image<T>(const T*, int64_t, const Conv2dShape&, int64_t, int64_t,   \
                                     int64_t, bool, int);                                       \
  template Columns<T> block_columns<T>(const T*, int64_t, int64_t, const Conv2dShape&, int);    \
  template void scatter_add_columns<T>(T*, const T*, int64_t, const Conv2dShape&, int64_t,      \
                                       int64_t);                                                \
  template int64_t images_per_block<T>(const Conv2dShape&);                                     \
  template int64_t weight_grad_images_per_block<T>(const Conv2dShape&);                         \
  template int64_t direct_image_size<T>(const Conv2dShape&);                                    \
  template std::vector<T> direct_weight_blocks<T>(const T*, const Conv2dShape&, int);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu::conv2d_detail
