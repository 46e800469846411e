// conv2d backward (conv2d.h has the math), by the methods conv2d_plan.h chose.
//
//   input grad:   stride 1: the forward convolution of dy with the flipped kernel
//                 (weight'[c, o, p', q'] = weight[o, c, kh-1-p', kw-1-q'], padding
//                 dh*(kh-1) - ph), run as the plan's forward; otherwise
//                 dcol = weight[g]^T @ dy[n, g] per image, then col2im adds it back (for 1x1
//                 kernels dcol is dx itself); or, strided, by pixel rows (conv2d_rows.h):
//                 dR = dy[n]^T @ W' per image, its taps added back into dx.
//   weight grad:  direct kernels for few taps (lane-wide partial sums across images); at
//                 stride 1, for each tap a product over the padded image shifted by the tap's
//                 offset (rows = channels, in place, the output pixels picked by offsets) and dy
//                 packed once per image; otherwise dweight^T[g] (Kg, Og) (+)= col[g] @ dy^T
//                 over blocks of images. Transposed once at the end.
//                 Strided, by pixel rows: dW'^T (K, C_out) (+)= R^T @ dy^T over blocks of
//                 images, reordered into dweight at the end (conv2d_rows.h).
//                 3x3 float32 layers at stride 1 by Winograd F(4x4, 3x3) where the plan says it
//                 pays (conv2d_winograd.h).
//   bias grad:    per output channel, plane by plane over the images in order.
//
// Determinism: a thread sums its images into its own partial, then the partials are added in
// thread order, so every gradient depends on the thread count only, never on scheduling (the
// pixel rows' and Winograd's partials are per chunk of the batch, fixed by the shape: those do
// not depend on the thread count either).
#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "common/threading.h"
#include "cpu/conv2d.h"
#include "cpu/conv2d_columns.h"
#include "cpu/conv2d_direct.h"
#include "cpu/conv2d_plan.h"
#include "cpu/conv2d_rows.h"
#include "cpu/conv2d_winograd.h"
#include "cpu/gemm.h"

namespace fastnn::cpu::conv2d_detail {
namespace {

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

// dx by col2im: per image dcol = weight[g]^T @ dy[n, g], scattered back into dx.
template <class T>
void col2im_input_grad(const T* dy, const T* weight, T* dx, const Conv2dShape& s,
                       bool columns_are_dx) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group(), P = s.out_plane();
  for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
    for (int64_t n = n0; n < n1; ++n) {
      T* dx_image = dx + n * s.in_channels * s.in_plane();
      const T* dy_image = dy + n * s.out_channels * P;
      // For 1x1 kernels the column gradient is the input gradient: the GEMM writes it in place.
      T* dcol = columns_are_dx ? dx_image : workspace<T>(kColumns, s.col_size());
      for (int64_t g = 0; g < s.groups; ++g)
        gemm(GemmShape::dense(Kg, P, Og, true, false), T(1), weight + g * Og * Kg,
             dy_image + g * Og * P, T(0), dcol + g * Kg * P, {}, gemm_threads(threads));
      if (!columns_are_dx) {
        for_channel_blocks(threads, s.in_channels, [&](int64_t c0, int64_t c1) {
          scatter_add_columns(dx_image, dcol, P, s, c0, c1);
        });
      }
    }
  });
}

// dx by pixel rows (conv2d_rows.h): per image dR (P, K) = dy[n]^T @ W', W' packed once per call,
// dR's taps then added back into dx.
template <class T>
void rows_input_grad(const T* dy, const T* weight, T* dx, const Conv2dShape& s) {
  const int64_t K = s.col_rows_per_group(), O = s.out_channels, P = s.out_plane();
  const std::vector<T> weight_rows = rows_weight(weight, s);
  std::vector<T> packed(static_cast<size_t>(gemm_packed_b_size<T>(O, K)));
  gemm_pack_b(O, K, weight_rows.data(), false, K, packed.data());
  for_each_share(s, plan_threads(s), [&](int, int64_t n0, int64_t n1, int threads) {
    T* drows = workspace<T>(kColumns, P * K);
    for (int64_t n = n0; n < n1; ++n) {
      gemm_with_packed_b(GemmShape::dense(P, K, O, true, false), dy + n * O * P, packed.data(),
                         T(0), drows, {}, gemm_threads(threads));
      scatter_add_rows(drows, dx + n * s.in_channels * s.in_plane(), s);
    }
  });
}

// dweight (+)= dW' by pixel rows (conv2d_rows.h): dW'^T (K, C_out) = sum over blocks of images
// of R^T @ dy^T, dy transposed to pixel-major per block (R, the big operand, is then read in
// place: its rows of K values are the product's columns). The batch is cut into chunks fixed
// by the shape, never by the thread count; each chunk sums its blocks in order into its own
// partial, and the partials are added in chunk order: the same result on any number of threads.
template <class T>
void rows_weight_grad(const T* dy, const T* x, T* dweight, bool accumulate,
                      const Conv2dShape& s) {
  constexpr int64_t kChunks = 8;  // enough for 8 threads; a partial is only K x C_out
  const int64_t K = s.col_rows_per_group(), O = s.out_channels, P = s.out_plane();
  const int64_t per_block = weight_grad_images_per_block<T>(s);
  const int64_t chunks = std::min(s.batch, kChunks), partial_size = K * O;
  std::vector<T> partials(static_cast<size_t>(std::max<int64_t>(1, chunks) * partial_size),
                          T(0));
  const ThreadPlan plan = plan_threads(s);
  const int nt =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(plan.image_threads, chunks)));
  const int inner = nt > 1 ? 1 : plan.inner_threads;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t n0 = s.batch * chunk / chunks, n1 = s.batch * (chunk + 1) / chunks;
    for (int64_t n = n0; n < n1; n += per_block) {
      const int64_t images = std::min(per_block, n1 - n);
      const T* rows = block_rows(x, n, images, s, n == n0, inner);
      T* dy_t = workspace<T>(kProduct, images * P * O);  // (images * P, C_out)
      for (int64_t m = 0; m < images; ++m)
        transpose(dy + (n + m) * O * P, P, O, P, dy_t + m * P * O, O);
      gemm(GemmShape::dense(K, O, images * P, true, false), T(1), rows, dy_t,
           n == n0 ? T(0) : T(1), partials.data() + chunk * partial_size, {},
           gemm_threads(inner));
    }
  }
  for (int64_t chunk = 1; chunk < chunks; ++chunk)
    for (int64_t i = 0; i < partial_size; ++i) partials[i] += partials[chunk * partial_size + i];
  add_rows_weight_grad(partials.data(), dweight, accumulate, s);
}

// dweight (beta)= the sum over images: each thread's lane partials (conv2d_direct.h), then
// per weight the threads in order and each one's lanes in order.
template <class T>
void direct_weight_grad(const T* dy, const T* x, T* dweight, bool accumulate,
                        const Conv2dShape& s, const DirectPlan& direct) {
  const int L = conv2d_direct_kernels<T>().lanes;
  const auto& block = conv2d_direct_kernels<T>().blocks[direct.block];
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

// The tap views: at stride 1, for each tap (p, q),
//   dweight^T[g][(c, p, q), :] (+)= xpad[g*Cg + c, shift + pixel(k)] @ dy[g, :, k]^T
// is a product whose A is the padded image itself, read in place: its rows (channels) Hp*Wp
// apart, shifted by the tap's offset shift = p*dh*Wp + q*dw, its columns the output pixels k
// at pixel(k) = (k / W_out) * Wp + k % W_out (gemm_with_packed_b with offsets), so only real
// pixels are read. dy is packed once per image for all kh*kw taps.

// pixel(k) above for the P output pixels.
std::vector<int64_t> output_pixel_offsets(const Conv2dShape& s) {
  const int64_t Wp = PaddedPlaneShape(s).width;
  std::vector<int64_t> offsets(static_cast<size_t>(s.out_plane()));
  for (int64_t i = 0; i < s.out_height; ++i)
    for (int64_t j = 0; j < s.out_width; ++j) offsets[i * s.out_width + j] = i * Wp + j;
  return offsets;
}

// Elements of the padded image the tap views read: a micro-tile's rows (planes) past the last
// channel too, zero (the GEMM computes, then drops, rows past M).
int64_t tap_views_image_size(const Conv2dShape& s) {
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
// With `views` the tap views replace the column matrix.
template <class T>
void accumulate_weight_grad(const T* dy, const T* x, T* dweight, T beta, int64_t n_begin,
                            int64_t n_end, const Conv2dShape& s, bool views, int threads) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group(), P = s.out_plane();
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

// The GEMM weight gradient (tap views or columns) over the batch: thread t sums its share of
// images into its own partial; the partials are then added into dweight in thread order.
template <class T>
void product_weight_grad(const T* dy, const T* x, T* dweight, bool accumulate,
                         const Conv2dShape& s, bool views) {
  const T beta = accumulate ? T(1) : T(0);
  const ThreadPlan plan = plan_threads(s);
  if (plan.image_threads <= 1) {
    accumulate_weight_grad(dy, x, dweight, beta, 0, s.batch, s, views, plan.inner_threads);
    return;
  }
  const int nt = plan.image_threads;
  const int64_t size = s.weight_size();
  T* partials = workspace<T>(kWeightPartials, nt * size);
  for_each_share(s, plan, [&](int t, int64_t n0, int64_t n1, int) {
    accumulate_weight_grad(dy, x, partials + t * size, T(0), n0, n1, s, views, 1);
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
}  // namespace fastnn::cpu::conv2d_detail

namespace fastnn::cpu {

template <class T>
void conv2d_backward_input(const T* dy, const T* weight, T* dx, const Conv2dShape& s, const Exec&) {
  using namespace conv2d_detail;
  const InputGradPlan plan = plan_input_grad<T>(s);
  switch (plan.method) {
    case InputGradMethod::convolution: {
      const std::vector<T> flipped = flipped_weight(weight, s);
      run_forward<T>(dy, flipped.data(), nullptr, dx, false, plan.convolution, plan.forward);
      return;
    }
    case InputGradMethod::col2im:
      col2im_input_grad(dy, weight, dx, s, false);
      return;
    case InputGradMethod::input_as_columns_col2im:
      col2im_input_grad(dy, weight, dx, s, true);
      return;
    case InputGradMethod::rows:
      rows_input_grad(dy, weight, dx, s);
      return;
  }
}

template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const Conv2dShape& s, const Exec&) {
  using namespace conv2d_detail;
  const WeightGradPlan plan = plan_weight_grad<T>(s);
  switch (plan.method) {
    case WeightGradMethod::direct:
      direct_weight_grad(dy, x, dweight, accumulate, s, plan.direct);
      return;
    case WeightGradMethod::tap_views:
      product_weight_grad(dy, x, dweight, accumulate, s, true);
      return;
    case WeightGradMethod::columns:
    case WeightGradMethod::input_as_columns:  // block_columns hands out the image itself
      product_weight_grad(dy, x, dweight, accumulate, s, false);
      return;
    case WeightGradMethod::rows:
      rows_weight_grad(dy, x, dweight, accumulate, s);
      return;
    case WeightGradMethod::winograd:
      if constexpr (std::is_same_v<T, float>) {
        winograd_weight_grad(dy, x, dweight, accumulate, s);
        return;
      }
      throw std::logic_error("conv2d: the winograd method is planned for float32 only");
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
      sum += conv2d_detail::sum_contiguous(dy + (n * s.out_channels + o) * P, P);
    dbias[o] = sum;
  }
}

#define FASTNN_INSTANTIATE(T)                                                                 \
  template void conv2d_backward_input<T>(const T*, const T*, T*, const Conv2dShape&, const Exec&);         \
  template void conv2d_backward_weight<T>(const T*, const T*, T*, bool, const Conv2dShape&, const Exec&);  \
  template void conv2d_backward_bias<T>(const T*, T*, bool, const Conv2dShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
