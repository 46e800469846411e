// Every choice of method for the conv2d passes (conv2d_plan.h lists the methods). Each
// heuristic below says where its method pays; plan_forward / plan_input_grad / plan_weight_grad
// try them in order, and conv2d_plan() names the result; tests/test_conv2d_paths.py pins a
// shape to every method.
#include "cpu/conv2d_plan.h"

#include <type_traits>

#include "cpu/conv2d.h"
#include "cpu/conv2d_columns.h"
#include "cpu/conv2d_direct.h"
#include "cpu/conv2d_winograd.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernel.h"

namespace fastnn::cpu::conv2d_detail {
namespace {

// Wide rows (conv2d_columns.h) at stride 1 where the extra columns cost at most a quarter more
// arithmetic.
bool wide_rows_pay(const Conv2dShape& s) {
  const int64_t pitch = s.width + 2 * s.pad_w;
  return s.stride_h == 1 && s.stride_w == 1 && 4 * pitch <= 5 * s.out_width;
}

// With few taps per output (a first layer's 1 channel x 3x3 = 9) the product is mostly stores:
// then y[n, g] = weight[g] @ col[g] writes y in place, with no transposing pass, faster than the
// pixel-major product.
bool channel_major_pays(const Conv2dShape& s) {
  constexpr int64_t kMinPixelMajorK = 32;
  return s.col_rows_per_group() < kMinPixelMajorK;
}

// Taps read in place in wide rows (or row tiles) instead of copied into columns.
bool indirect_taps_pay(const Conv2dShape& s) {
  return wide_rows_pay(s) && !columns_are_input(s) && !channel_major_pays(s);
}

// The direct kernels run stride 1 only, and a 1x1 kernel needs no taps at all.
bool direct_is_possible(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && !columns_are_input(s);
}

// Forward: a few output channels over a few input channels (LeNet's layers, and the input
// gradient of its second), where a product's N (the output channels) would leave most vector
// lanes idle. Not where the output channels fill the GEMM's register tile (N >= its nr: 16 under
// AVX2) and the taps can be read in place: there the indirect product is faster (ResNet's
// 16-channel 3x3 layers at 32x32, measured on an AVX2 Zen 3: forward 4.2 vs 4.9 ms, input
// gradient 8.1 vs 8.7 ms at batch 128).
template <class T>
bool direct_forward_pays(const Conv2dShape& s) {
  if (!(direct_is_possible(s) && s.out_channels_per_group() <= 16 && s.in_channels_per_group() <= 16))
    return false;
  return !(s.out_channels_per_group() >= gemm_kernel_info<T>().wide.nr && indirect_taps_pay(s));
}

// Weight gradient: few taps (the product would be a sliver of Kg <= 32 rows).
bool direct_weight_grad_pays(const Conv2dShape& s) {
  return direct_is_possible(s) && s.col_rows_per_group() <= 32;
}

// The direct kernels' output-channel block: 8 channels, or 6 where that computes fewer padding
// channels (LeNet's 6 in one block of 6, not 8; 12 in two blocks of 6), so fewer idle FMAs.
template <class T>
int direct_block(const Conv2dShape& s) {
  const auto& blocks = conv2d_direct_kernels<T>().blocks;
  const int64_t Og = s.out_channels_per_group();
  auto computed = [&](int width) { return (Og + width - 1) / width * width; };
  return computed(blocks[1].width) < computed(blocks[0].width) ? 1 : 0;
}

// The pixel-major forward (output channels in the lanes) where it keeps more lanes busy than
// the row-vector one: LeNet's second layer, 16 channels over 10-pixel rows (10 of 16 lanes
// busy in a row vector, all 16 in a channel vector).
template <class T>
bool pixel_major_direct_pays(const Conv2dShape& s) {
  const Conv2dDirectKernels<T>& kernels = conv2d_direct_kernels<T>();
  const int64_t L = kernels.lanes, RW = kernels.pixel_run;
  const int64_t OB = kernels.blocks[direct_block<T>(s)].width;
  const int64_t Og = s.out_channels_per_group(), W = s.out_width;
  auto busy = [](int64_t n, int64_t unit) { return double(n) / double((n + unit - 1) / unit * unit); };
  return busy(Og, L) * busy(W, RW) > busy(W, L) * busy(Og, OB);
}

// The shape of the input gradient's convolution (below): dy (N, C_out, H_out, W_out) in, dx
// (N, C_in, H, W) out, the flipped kernel weight'[c, o, p', q'] = weight[o, c, kh-1-p', kw-1-q'],
// padding dilation * (k - 1) - pad.
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
template <class T>
bool input_grad_is_convolution(const Conv2dShape& s) {
  constexpr int64_t kMinChannels = 16;
  if (!(s.stride_h == 1 && s.stride_w == 1 && s.pad_h <= s.dilation_h * (s.kernel_h - 1) &&
        s.pad_w <= s.dilation_w * (s.kernel_w - 1)))
    return false;
  constexpr int64_t kMinDirectChannels = 4;  // below, most of the direct kernels' block idles
  return s.in_channels_per_group() >= kMinChannels ||
         (s.in_channels_per_group() >= kMinDirectChannels &&
          direct_forward_pays<T>(input_grad_shape(s)));
}

// At stride 1 the weight gradient needs no column matrix: one product per tap over the padded
// image, read in place (conv2d_backward.cpp). Used where the padded rows are not much wider than
// the output's (the products' K is then long enough to pay).
bool tap_views_pay(const Conv2dShape& s) { return wide_rows_pay(s) && !columns_are_input(s); }

// Winograd F(4x4, 3x3) (conv2d_winograd.h) in float32 (float64 serves gradient checks, where
// its digits matter more than speed), with at least 16 channels in and out, on output planes
// whose 4x4 tiles do at most 2/3 of a direct 3x3's multiplies (36 per tile against 9 per
// pixel: 6 * tiles <= pixels). Measured against the method chosen otherwise on an AVX2 Zen at
// batch 128, one thread, ms per forward with bias and ReLU (the input gradient, the same
// product on dy, within a few per cent of it):
//   ResNet-20  16->16 32x32  indirect 8.3  winograd 5.6     4-conv CNN  32->32 28x28  22.9 12.2
//              32->32 16x16           8.0           3.6                 32->64 14x14  12.5  5.9
//              64->64  8x8            8.6           2.7                 64->64 14x14  23.7 10.9
//   too few channels: 12->12 24x24 direct 3.4 winograd 3.8, 8->8 32x32 2.6 2.5 (even), 3->16
//   32x32 2.2 4.2; tiles that waste: 64->64 5x5 (6 * 4 tiles <= 25) columns 3.6 winograd 3.1,
//   128->128 2x2 (6 > 4) 2.6 4.5. F(2x2, 3x3) lost to F(4x4, 3x3) on all six layers above, in
//   one run before the weights' transform got cheaper (ResNet 8.3, 5.6, 4.2 against 6.3, 3.9,
//   3.1; CNN 16.9, 8.1, 14.3 against 12.8, 6.8, 11.6), so only F(4x4, 3x3) is built.
// The weights' transform costs about 65 ns per channel pair and call, and Winograd saves about
// 0.2 ns per pair and output pixel, so the batch needs a few hundred output pixels: at 512 it
// won (ms, batch x layer: 1 x 16->16 32x32 0.07 -> 0.06, 2 x 32->32 16x16 0.13 -> 0.11, 8 x
// 64->64 8x8 0.54 -> 0.39), at 256 it lost (1 x 32->32 16x16 0.07 -> 0.09, 4 x 64->64 8x8
// 0.29 -> 0.32; batch 1 of that layer 0.08 -> 0.26).
// The transformed weights and their scratch stay in each thread's workspace between calls
// (3 x 36 floats per channel pair), so the channel pairs are capped at 256 x 256 (28 MB per
// thread; 512 x 512 would hold 113 MB); the measurements above go up to 128 channels.
template <class T>
bool winograd_pays(const Conv2dShape& s) {
  constexpr int64_t kMinChannels = 16, kMinBatchPixels = 512, kMaxChannelPairs = 256 * 256;
  if (!(std::is_same_v<T, float> && winograd_applies(s))) return false;
  const int64_t tiles = (s.out_height + 3) / 4 * ((s.out_width + 3) / 4);
  return s.in_channels >= kMinChannels && s.out_channels >= kMinChannels &&
         s.in_channels * s.out_channels <= kMaxChannelPairs && 6 * tiles <= s.out_plane() &&
         s.batch * s.out_plane() >= kMinBatchPixels;
}

// The weight gradient by Winograd (conv2d_winograd.h): one product per position over all the
// batch's tiles, no weights to transform per call, against tap views or columns whose
// products have K = a plane's pixels and N = C_out. Measured on an AVX2 Zen, two threads,
// ms per weight gradient (tap views or columns -> winograd), alternating in one process:
//   batch 128:  ResNet-20  16->16 32x32  5.74 -> 3.64    4-conv CNN  32->32 28x28  15.3 -> 10.5
//                          32->32 16x16  4.96 -> 3.42                32->64 14x14  7.71 -> 6.03
//                          64->64  8x8   5.34 -> 2.85                64->64 14x14  20.5 -> 12.0
//   beyond the forward's layers it still wins: 8->8 16x16 0.75 -> 0.49, 8->16 32x32 3.31 ->
//   2.38, 8->4 32x32 3.88 -> 2.00; tiles that waste (columns): 64->64 3x3 2.37 -> 1.53, 2x2
//   128->128 3.45 -> 2.47, 1x1 1.05 -> 0.85; 256->256 4x4 22.3 -> 10.6; small batches: 2 x
//   64->64 8x8 0.23 -> 0.14, 1 x 16->16 16x16 0.05 -> 0.04;
//   it loses with fewer than 8 input channels (the transforms' lanes run over them: 6->16
//   16x16 0.39 -> 0.54, 4->8 32x32 1.80 -> 2.23, 3->16 32x32 (direct) 1.46 -> 1.87) and with
//   fewer than 8 tiles in the batch (1 x 64->64 8x8, 4 tiles: 0.08 -> 0.11 in one run, 0.12
//   -> 0.11 in another; 1 x 32->32 8x8 0.03 -> 0.04: the products' K too short for the fixed
//   cost of the final transform).
// Channel pairs capped as the forward's: its sums take 36 floats per pair and chunk.
template <class T>
bool winograd_weight_grad_pays(const Conv2dShape& s) {
  constexpr int64_t kMinInChannels = 8, kMinOutChannels = 4, kMinBatchTiles = 8;
  constexpr int64_t kMaxChannelPairs = 256 * 256;
  if (!(std::is_same_v<T, float> && winograd_applies(s))) return false;
  const int64_t tiles = (s.out_height + 3) / 4 * ((s.out_width + 3) / 4);
  return s.in_channels >= kMinInChannels && s.out_channels >= kMinOutChannels &&
         s.in_channels * s.out_channels <= kMaxChannelPairs && s.batch * tiles >= kMinBatchTiles;
}

// Pixel rows (conv2d_rows.h) for strided layers without groups, with more than one tap: their
// taps are copied C_in values (a kernel row) at a time where the columns gather every stride-th
// value one by one, and the forward's product reads R in place as its row-major A where the
// columns' A is stored transposed. Measured on an AVX2 Zen 3, batch 128, two threads, float32,
// no bias, ms (columns / col2im / columns -> rows), alternating in one process, medians of 21
// (ResNet-20) or 9:
//                                     forward       dx + dweight  dweight
//   ResNet-20  16->32 3x3 s2 32x32   4.59 -> 2.70  8.14 -> 5.75  3.57 -> 2.60
//              32->64 3x3 s2 16x16   2.83 -> 2.02  5.71 -> 4.76  2.84 -> 2.18
//   64->128 3x3 s2 8x8 2.46 -> 1.90, 5.74 -> 4.15, 3.36 -> 2.29; 8->24 5x5 s3 31x31 2.57 -> 1.52,
//   5.05 -> 3.09, 2.54 -> 1.63; few channels win too: 3->16 7x7 s2 32x32 2.78 -> 1.49, 6.02 ->
//   3.85, 2.70 -> 1.75; 4->8 3x3 s2 32x32 0.66 -> 0.45, 1.54 -> 1.18, 0.75 -> 0.46. In float64
//   (one run of 7) 16->32 3x3 s2 9.24 -> 6.05, 13.10 -> 11.50; 32->64 5.31 -> 4.32, 9.96 -> 9.12.
// 1x1 kernels stay on the columns (or channel_major): with one tap per pixel the channels-last
// copy of the whole image (at stride 2, four times the pixels read) costs what the gather did,
// and rows lost or tied in one run of 11: 16->32 32x32 forward 0.85 (channel_major) -> 0.91,
// dweight 0.87 -> 1.01; 32->64 16x16 0.43 -> 0.41, 0.35 -> 0.45. Grouped layers are not built
// for (their taps would be C_in/G-value runs, one product per group). LeNet-5 and the 4-conv CNN
// have no strided layer: their plans are unchanged.
bool rows_pay(const Conv2dShape& s) {
  return s.groups == 1 && (s.stride_h > 1 || s.stride_w > 1) && s.kernel_area() > 1;
}

const char* name(ForwardMethod m) {
  switch (m) {
    case ForwardMethod::direct: return "direct";
    case ForwardMethod::channel_major: return "channel_major";
    case ForwardMethod::indirect: return "indirect";
    case ForwardMethod::columns: return "columns";
    case ForwardMethod::input_as_columns: return "input_as_columns";
    case ForwardMethod::winograd: return "winograd";
    case ForwardMethod::rows: return "rows";
  }
  return "";
}

const char* name(const InputGradPlan& p) {
  switch (p.method) {
    case InputGradMethod::convolution: return name(p.forward.method);
    case InputGradMethod::col2im: return "col2im";
    case InputGradMethod::input_as_columns_col2im: return "input_as_columns_col2im";
    case InputGradMethod::rows: return "rows";
  }
  return "";
}

const char* name(WeightGradMethod m) {
  switch (m) {
    case WeightGradMethod::direct: return "direct";
    case WeightGradMethod::tap_views: return "tap_views";
    case WeightGradMethod::columns: return "columns";
    case WeightGradMethod::input_as_columns: return "input_as_columns";
    case WeightGradMethod::winograd: return "winograd";
    case WeightGradMethod::rows: return "rows";
  }
  return "";
}

}  // namespace

template <class T>
ForwardPlan plan_forward(const Conv2dShape& s) {
  ForwardPlan plan;
  if (winograd_pays<T>(s)) {
    plan.method = ForwardMethod::winograd;
  } else if (direct_forward_pays<T>(s)) {
    plan.method = ForwardMethod::direct;
    plan.direct.block = direct_block<T>(s);
    plan.direct.pixel_major = pixel_major_direct_pays<T>(s);
  } else if (rows_pay(s)) {
    plan.method = ForwardMethod::rows;
  } else if (channel_major_pays(s)) {
    plan.method = ForwardMethod::channel_major;
  } else if (indirect_taps_pay(s)) {
    plan.method = ForwardMethod::indirect;
    // Exact rows where the ISA has a row tile that fits W_out (each tile reads one output row's
    // run, nothing dropped), else wide rows.
    plan.row_tiles = gemm_row_tile<T>(s.out_width, s.out_channels_per_group()) > 0;
  } else {
    plan.method = columns_are_input(s) ? ForwardMethod::input_as_columns : ForwardMethod::columns;
  }
  return plan;
}

template <class T>
InputGradPlan plan_input_grad(const Conv2dShape& s) {
  InputGradPlan plan;
  if (input_grad_is_convolution<T>(s)) {
    plan.method = InputGradMethod::convolution;
    plan.convolution = input_grad_shape(s);
    plan.forward = plan_forward<T>(plan.convolution);
    return plan;
  }
  if (rows_pay(s)) {
    plan.method = InputGradMethod::rows;
    return plan;
  }
  plan.method = columns_are_input(s) ? InputGradMethod::input_as_columns_col2im
                                     : InputGradMethod::col2im;
  return plan;
}

template <class T>
WeightGradPlan plan_weight_grad(const Conv2dShape& s) {
  WeightGradPlan plan;
  if (winograd_weight_grad_pays<T>(s)) {
    plan.method = WeightGradMethod::winograd;
  } else if (direct_weight_grad_pays(s)) {
    plan.method = WeightGradMethod::direct;
    plan.direct.block = direct_block<T>(s);
  } else if (tap_views_pay(s)) {
    plan.method = WeightGradMethod::tap_views;
  } else if (rows_pay(s)) {
    plan.method = WeightGradMethod::rows;
  } else {
    plan.method =
        columns_are_input(s) ? WeightGradMethod::input_as_columns : WeightGradMethod::columns;
  }
  return plan;
}

#define FASTNN_INSTANTIATE(T)                                            \
  template ForwardPlan plan_forward<T>(const Conv2dShape&);              \
  template InputGradPlan plan_input_grad<T>(const Conv2dShape&);         \
  template WeightGradPlan plan_weight_grad<T>(const Conv2dShape&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu::conv2d_detail

namespace fastnn::cpu {

template <class T>
Conv2dPlan conv2d_plan(const Conv2dShape& s) {
  const conv2d_detail::Plan p = conv2d_detail::plan<T>(s);
  Conv2dPlan names;
  names.forward = conv2d_detail::name(p.forward.method);
  names.input_grad = conv2d_detail::name(p.input_grad);
  names.weight_grad = conv2d_detail::name(p.weight_grad.method);
  return names;
}

template Conv2dPlan conv2d_plan<float>(const Conv2dShape&);
template Conv2dPlan conv2d_plan<double>(const Conv2dShape&);

}  // namespace fastnn::cpu
