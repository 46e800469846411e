// conv2d forward (conv2d.h has the math), by the method conv2d_plan.h chose:
//   direct         the conv2d_direct.h kernels per image, on a padded copy: output-channel blocks
//                  x a vector of pixels, or the channels in the lanes (pixel-major) for planes
//                  narrower than a vector, transposed into y afterwards;
//   channel_major  y[n, g] (Og, P) = weight[g] (Og, Kg) @ col[n, g] (Kg, P), in place in y
//                  (bias per row and ReLU in the GEMM's epilogue);
//   indirect / columns / input_as_columns
//                  prod (pixels, C_out) = A (pixels, Kg) @ weight[g]^T, the pixels as M and the
//                  small weights as the packed operand (bias per column and ReLU in the
//                  epilogue), then transposed into y's planes. A is read straight from a padded
//                  image through per-tap offsets at stride 1 (gemm_indirect_a: no column
//                  matrix, weights packed once per call), else it is the column matrix of a
//                  block of images (conv2d_columns.h), or the image itself for 1x1 kernels.
//   rows           strided: prod (pixels, C_out) = R @ W'^T over the pixel rows of a block of
//                  images (conv2d_rows.h), R read in place, then transposed into y as above.
//   winograd       F(4x4, 3x3) over transformed tiles (conv2d_winograd.h), float32 only.
// Every output is one fixed-order sum on every path: results do not depend on the thread count.
#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "cpu/conv2d.h"
#include "cpu/conv2d_columns.h"
#include "cpu/conv2d_direct.h"
#include "cpu/conv2d_plan.h"
#include "cpu/conv2d_rows.h"
#include "cpu/conv2d_winograd.h"
#include "cpu/gemm.h"

namespace fastnn::cpu::conv2d_detail {
namespace {

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

// The indirect product's A: tap k = (c, p, q) of a group is the run of the padded image
// starting at k_offsets[k] = c*Hp*Wp + p*dh*Wp + q*dw. One image per product.
struct IndirectTaps {
  std::vector<int64_t> k_offsets;  // one group's taps
  int64_t image_size = 0;          // padded image plus the slack the last taps read past it
};

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

// channel_major, images [n_begin, n_end): per block of images, y[n, g] = weight[g] @ col[n, g].
template <class T>
void channel_major_images(const T* x, const T* weight, const T* bias, T* y, bool relu,
                          const Conv2dShape& s, int64_t n_begin, int64_t n_end, int threads) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group();
  const int64_t C_out = s.out_channels, P = s.out_plane();
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
}

// The pixel-major product, images [n_begin, n_end): per block, prod (pixels, C_out) in this
// thread's workspace, then stored into y. With taps (indirect), packed_weight holds
// packed_weight_groups(weight) and A is the padded image, in row tiles or wide rows; without,
// A is the column matrix's exact rows.
template <class T>
void pixel_major_images(const T* x, const T* weight, const T* packed_weight, const T* bias, T* y,
                        bool relu, const Conv2dShape& s, const IndirectTaps* taps,
                        bool row_tiles, int64_t n_begin, int64_t n_end, int threads) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group();
  const int64_t C_out = s.out_channels;
  const int64_t Wp = PaddedPlaneShape(s).width;
  const GemmRowSegments segments{s.out_width, Wp};
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

// rows, images [n_begin, n_end): per block, prod = R @ W'^T (packed_weight: W' packed by
// packed_weight_groups) in this thread's workspace, then stored into y.
template <class T>
void rows_images(const T* x, const T* packed_weight, const T* bias, T* y, bool relu,
                 const Conv2dShape& s, int64_t n_begin, int64_t n_end, int threads) {
  const int64_t K = s.col_rows_per_group(), C_out = s.out_channels, P = s.out_plane();
  const int64_t per_block = images_per_block<T>(s);
  GemmEpilogue<T> epilogue;
  epilogue.bias_per_col = bias;
  epilogue.relu = relu;
  for (int64_t n = n_begin; n < n_end; n += per_block) {
    const int64_t images = std::min(per_block, n_end - n);
    const T* rows = block_rows(x, n, images, s, n == n_begin, threads);
    T* prod = workspace<T>(kProduct, images * P * C_out);
    gemm_with_packed_b(GemmShape::dense(images * P, C_out, K, false, true), rows, packed_weight,
                       T(0), prod, epilogue, gemm_threads(threads));
    store_product(prod, pixel_layout(s, false), images, y, n, s);
  }
}

template <class T>
void direct_forward(const T* x, const T* weight, const T* bias, T* y, bool relu,
                    const Conv2dShape& s, const DirectPlan& direct) {
  const Conv2dDirectKernels<T>& kernels = conv2d_direct_kernels<T>();
  ThreadPlan plan = plan_threads(s);
  plan.inner_threads = 1;  // the kernel runs on one thread per image
  const int64_t size = direct_image_size<T>(s);
  if (direct.pixel_major) {
    // Each image's product pixel-major in this thread's workspace, then transposed into y.
    const int L = kernels.lanes;
    const std::vector<T> wvec = direct_weight_blocks(weight, s, L);
    const int64_t P = s.out_plane(), Og = s.out_channels_per_group();
    const int64_t group_pitch = direct_blocks(s, L) * L, pitch = s.groups * group_pitch;
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
  const auto& block = kernels.blocks[direct.block];
  const std::vector<T> wblock = direct_weight_blocks(weight, s, block.width);
  const int64_t y_image = s.out_channels * s.out_plane();
  for_each_share(s, plan, [&](int, int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; ++n)
      block.forward_image(padded_image(x, n, s, size, n == n0, 1), wblock.data(), bias,
                          y + n * y_image, relu, s);
  });
}

}  // namespace

template <class T>
void run_forward(const T* x, const T* weight, const T* bias, T* y, bool relu,
                 const Conv2dShape& s, const ForwardPlan& plan) {
  switch (plan.method) {
    case ForwardMethod::direct:
      direct_forward(x, weight, bias, y, relu, s, plan.direct);
      return;
    case ForwardMethod::channel_major:
      for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
        channel_major_images(x, weight, bias, y, relu, s, n0, n1, threads);
      });
      return;
    case ForwardMethod::indirect: {
      const IndirectTaps taps = indirect_taps(s);
      const std::vector<T> packed = packed_weight_groups(weight, s);
      for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
        pixel_major_images(x, weight, packed.data(), bias, y, relu, s, &taps, plan.row_tiles, n0,
                           n1, threads);
      });
      return;
    }
    case ForwardMethod::columns:
    case ForwardMethod::input_as_columns:  // block_columns hands out the image itself
      for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
        pixel_major_images<T>(x, weight, nullptr, bias, y, relu, s, nullptr, false, n0, n1,
                              threads);
      });
      return;
    case ForwardMethod::rows: {
      const std::vector<T> packed = packed_weight_groups(rows_weight(weight, s).data(), s);
      for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
        rows_images(x, packed.data(), bias, y, relu, s, n0, n1, threads);
      });
      return;
    }
    case ForwardMethod::winograd:
      if constexpr (std::is_same_v<T, float>) {
        winograd_forward(x, weight, bias, y, relu, s);
        return;
      }
      throw std::logic_error("conv2d: the winograd method is planned for float32 only");
  }
}

template void run_forward<float>(const float*, const float*, const float*, float*, bool,
                                 const Conv2dShape&, const ForwardPlan&);
template void run_forward<double>(const double*, const double*, const double*, double*, bool,
                                  const Conv2dShape&, const ForwardPlan&);

}  // namespace fastnn::cpu::conv2d_detail

namespace fastnn::cpu {

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                    bool relu, const Exec&) {
  conv2d_detail::run_forward(x, weight, bias, y, relu, s, conv2d_detail::plan_forward<T>(s));
}

template void conv2d_forward<float>(const float*, const float*, const float*, float*,
                                    const Conv2dShape&, bool, const Exec&);
template void conv2d_forward<double>(const double*, const double*, const double*, double*,
                                     const Conv2dShape&, bool, const Exec&);

}  // namespace fastnn::cpu
