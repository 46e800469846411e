// The Winograd forward pass (conv2d_winograd.h has the math and the layouts) and the portable
// transforms (4 lanes: 16 bytes, which the baseline ISA of every target vectorises).
//
// Per call the weights are transformed and packed for the GEMM once (U[xi], a*a of them). Each
// thread takes a contiguous share of the batch (conv2d_columns.h) and runs it in blocks of
// images: per image, a channels-last padded copy and the input transform into V; then the a*a
// products M[xi] = V[xi] @ U[xi] on the thread itself; then per tile row the output transform
// (bias, ReLU) into a band that is transposed into y's planes while it is in cache. A batch too
// small to split runs in turn, its threads sharing the tile rows and the products.
//
// The weight gradient cuts the batch into chunks of whole blocks, a number fixed by the shape
// (at most kWeightGradMaxChunks): a thread takes whole chunks and sums each into its own partial
// M, block after block, with no barrier (the channels-last copies of x and dy, their transforms
// V and W, then the a*a products M[xi] += W[xi]^T V[xi]). Then, per output channel, the
// partials are added in chunk order and transformed to 3x3. Every element is thus one sum in
// one order whatever the thread count. (Threads sharing each block instead, split by tile rows
// and positions, cost three barriers per block: on two cores shared with other work each one
// could wait a time slice, and that ran 20x slower than one thread.)
#include "cpu/conv2d_winograd.h"

#include <algorithm>
#include <vector>

#include "common/cpu_features.h"
#include "common/threading.h"
#include "cpu/conv2d_columns.h"
#include "cpu/gemm.h"

namespace fastnn::cpu {

const WinogradKernels& winograd_kernels() {
  static const WinogradKernels generic = winograd_kernels_for<16 / 4>();
#if defined(FASTNN_X86)
  static const WinogradKernels& chosen =
      table_for_active_level(generic, winograd_kernels_avx2, winograd_kernels_avx512);
#else
  static const WinogradKernels& chosen =
      table_for_active_level<WinogradKernels>(generic, nullptr, nullptr);
#endif
  return chosen;
}

}  // namespace fastnn::cpu

namespace fastnn::cpu::conv2d_detail {
namespace {

// A block of images takes this many tiles (the products' rows) ...
constexpr int64_t kTargetTiles = 128;
// ... while its V and M stay within a 512 KiB L2 (Zen 2/3; half of Zen 4's): the transforms
// write them and the products read them back, or the other way round. Measured on an AVX2 Zen
// at batch 128, one thread (ms per forward, 32->32 at 16x16 / 64->64 at 8x8): 512 KiB 4.2 /
// 3.2, 2 MiB 5.0 / 3.8, 8 MiB 5.1 / 3.7; 64 to 1024 target tiles made less difference.
constexpr int64_t kMaxBlockBytes = int64_t{512} << 10;

// V[xi] and M[xi] lie a cache line more than their size apart: the transforms touch all a*a of
// them per tile, and at a distance of a multiple of 4 KiB those a*a streams would all map to
// the same cache set (on a 16-channel layer that made the output transform the slowest phase).
int64_t xi_stride(int64_t size) { return size + 64 / int64_t{sizeof(float)}; }

int64_t round_up(int64_t n, int64_t unit) { return (n + unit - 1) / unit * unit; }

WinogradGeometry geometry(const Conv2dShape& s, int lanes) {
  constexpr int m = WinogradGeometry::m;
  WinogradGeometry g;
  g.tiles_h = (s.out_height + m - 1) / m;
  g.tiles_w = (s.out_width + m - 1) / m;
  g.Hh = g.tiles_h * m + 2;
  g.Wh = g.tiles_w * m + 2;
  g.Cp = round_up(s.in_channels, lanes);
  g.Op = round_up(s.out_channels, lanes);
  return g;
}

// G (a x 3, conv2d_winograd.h).
constexpr double kG[WinogradGeometry::a][3] = {{1.0 / 4, 0, 0},
                                               {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                               {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                               {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                               {0, 0, 1}};

// The products' B for every position, packed (gemm_pack_b) at xi * packed_size:
// U[xi] = (G g G^T)[xi] for every (o, c), in double then rounded once, stored transposed (N, K).
// Computed per (o, c) pair into a*a consecutive values, then transposed into one matrix per xi
// (written directly, the a*a stores per pair would be O*C apart: the same cache set for every
// xi on 64 channels, which made this 5x slower). Pairs and positions split across `threads`.
// In the calling thread's workspaces (kept across calls: fresh pages for these few hundred KB
// at every call cost as much as computing them).
const float* packed_weights(const float* weight, const Conv2dShape& s, int64_t packed_size,
                            int threads) {
  constexpr int a = WinogradGeometry::a;
  constexpr int64_t X = WinogradGeometry::positions();
  const int64_t pairs = s.out_channels * s.in_channels;
  float* by_pair = workspace<float>(kWinogradWeightScratch, 2 * pairs * X);
  float* by_xi = by_pair + pairs * X;
  float* packed = workspace<float>(kWinogradWeights, X * packed_size);
  for_channel_blocks(threads, pairs, [&](int64_t p0, int64_t p1) {
    for (int64_t pair = p0; pair < p1; ++pair) {
      const float* k = weight + pair * 9;
      double gk[a][3];  // G g
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < 3; ++j)
          gk[i][j] = kG[i][0] * k[j] + kG[i][1] * k[3 + j] + kG[i][2] * k[6 + j];
      float* u = by_pair + pair * X;
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < a; ++j)
          u[i * a + j] =
              static_cast<float>(gk[i][0] * kG[j][0] + gk[i][1] * kG[j][1] + gk[i][2] * kG[j][2]);
    }
  });
  for_channel_blocks(threads, X, [&](int64_t xi0, int64_t xi1) {
    transpose(by_pair + xi0, X, pairs, xi1 - xi0, by_xi + xi0 * pairs, pairs);
    for (int64_t xi = xi0; xi < xi1; ++xi)
      gemm_pack_b(s.in_channels, s.out_channels, by_xi + xi * pairs, true, s.in_channels,
                  packed + xi * packed_size);
  });
  return packed;
}

int64_t images_per_block(const WinogradGeometry& g, int64_t target_tiles = kTargetTiles,
                         int64_t max_block_bytes = kMaxBlockBytes) {
  const int64_t tiles = g.tiles();
  const int64_t image_bytes = g.positions() * tiles * (g.Cp + g.Op) * int64_t{sizeof(float)};
  const int64_t by_tiles = (target_tiles + tiles - 1) / tiles;
  return std::max<int64_t>(1, std::min(by_tiles, max_block_bytes / image_bytes));
}

// The weight gradient's blocks: longer than the forward's, as each block reads and writes all
// of M (a*a x C_out x C_in) once more, and the products' K is the block's tiles. Measured on an
// AVX2 Zen at batch 128, two threads, ms per weight gradient (ResNet-20 16->16 32x32 / 32->32
// 16x16 / 64->64 8x8; 4-conv CNN 32->32 28x28 / 32->64 14x14 / 64->64 14x14): 128 tiles
// within 512 KiB (the forward's blocks) 2.71 2.29 1.92 8.87 6.35 8.86; 256 tiles within 2 MiB
// 2.62 2.29 1.95 8.04 5.59 7.67; within 4 MiB 2.63 2.19 2.11 8.28 6.13 8.74; 512 tiles within
// 2 MiB: within 10% of these, as close as the runs repeat on this shared machine.
// Its chunks of the batch, each summed into its own partial M: up to 8 (4 to 16 measured alike;
// 8 keeps 2 and 4 threads even), while the partials fit in 16 MiB, and at least 2 (two threads
// for any layer; 19 MiB for 256 x 256 channels). Within 4 MiB, 128 x 128 channels had one
// chunk, so one thread: 8x8 planes 14.8 ms against 9.7 within 16 MiB (64 images of 16x16:
// 30.6 against 17.8); 64 x 64 channels (7 chunks, then 8) 2.0 and 1.9.
constexpr int64_t kWeightGradTargetTiles = 256;
constexpr int64_t kWeightGradMaxBlockBytes = int64_t{2} << 20;
constexpr int64_t kWeightGradMaxChunks = 8;
constexpr int64_t kWeightGradMinChunks = 2;
constexpr int64_t kWeightGradPartialBytes = int64_t{16} << 20;

}  // namespace

bool winograd_applies(const Conv2dShape& s) {
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.dilation_h == 1 && s.dilation_w == 1 && s.groups == 1 && s.pad_h <= 2 && s.pad_w <= 2;
}

void winograd_forward(const float* x, const float* weight, const float* bias, float* y, bool relu,
                      const Conv2dShape& s) {
  constexpr int m = WinogradGeometry::m;
  const WinogradKernels& transforms = winograd_kernels();
  const WinogradGeometry g = geometry(s, transforms.lanes);
  const int64_t C = s.in_channels, O = s.out_channels, X = g.positions();
  const int64_t tiles = g.tiles(), band_width = g.tiles_w * m;
  const int64_t H_out = s.out_height, W_out = s.out_width, P = s.out_plane();

  const ThreadPlan thread_plan = plan_threads(s);
  const int64_t packed_size = gemm_packed_b_size<float>(C, O);
  const float* packed = packed_weights(
      weight, s, packed_size, std::max(thread_plan.image_threads, thread_plan.inner_threads));
  std::vector<float> padded_bias;  // Op values: the transforms read whole vectors
  if (bias) {
    padded_bias.assign(static_cast<size_t>(g.Op), 0.0f);
    std::copy(bias, bias + O, padded_bias.begin());
  }
  const float* bias_p = bias ? padded_bias.data() : nullptr;

  const int64_t per_block = images_per_block(g);
  for_each_share(s, thread_plan, [&](int, int64_t n0, int64_t n1, int threads) {
    for (int64_t n = n0; n < n1; n += per_block) {
      const int64_t images = std::min(per_block, n1 - n), rows = images * tiles;
      const int64_t v_stride = xi_stride(rows * g.Cp), m_stride = xi_stride(rows * g.Op);
      float* v = workspace<float>(kColumns, X * v_stride);
      float* mprod = workspace<float>(kProduct, X * m_stride);
      for (int64_t i = 0; i < images; ++i) {
        const float* xh =
            channels_last_image(x, n + i, s, g.Hh, g.Wh, g.Cp, n == n0 && i == 0, threads);
        for_channel_blocks(threads, g.tiles_h, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r)
            transforms.input(xh, g, r, v, i * tiles + r * g.tiles_w, v_stride);
        });
      }
      GemmShape gs = GemmShape::dense(rows, O, C, false, true);
      gs.lda = g.Cp, gs.ldc = g.Op;
      for_channel_blocks(threads, X, [&](int64_t xi0, int64_t xi1) {
        for (int64_t xi = xi0; xi < xi1; ++xi)
          gemm_with_packed_b(gs, v + xi * v_stride, packed + xi * packed_size, 0.0f,
                             mprod + xi * m_stride, {}, GemmThreads::caller);
      });
      for (int64_t i = 0; i < images; ++i) {
        float* y_image = y + (n + i) * O * P;
        for_channel_blocks(threads, g.tiles_h, [&](int64_t r0, int64_t r1) {
          float* band = workspace<float>(kPaddedPlane, m * band_width * g.Op);
          for (int64_t r = r0; r < r1; ++r) {
            transforms.output(mprod, g, i * tiles + r * g.tiles_w, m_stride, bias_p, relu, band);
            for (int64_t k = 0; k < m && r * m + k < H_out; ++k)
              transpose(band + k * band_width * g.Op, g.Op, W_out, O, y_image + (r * m + k) * W_out,
                        P);
          }
        });
      }
    }
  });
}

void winograd_weight_grad(const float* dy, const float* x, float* dweight, bool accumulate,
                          const Conv2dShape& s) {
  constexpr int m = WinogradGeometry::m;
  const WinogradKernels& transforms = winograd_kernels();
  const WinogradGeometry g = geometry(s, transforms.lanes);
  const int64_t C = s.in_channels, O = s.out_channels, X = g.positions();
  const int64_t tiles = g.tiles(), dy_width = g.tiles_w * m;
  const int64_t H = s.height, W = s.width, H_out = s.out_height, W_out = s.out_width;
  const int64_t in_plane = s.in_plane(), out_plane = s.out_plane();

  // Blocks and chunks are sized by the shape alone, never by the thread count: they fix the
  // order of every sum.
  const int64_t per_block =
      images_per_block(g, kWeightGradTargetTiles, kWeightGradMaxBlockBytes);
  const int64_t blocks = (s.batch + per_block - 1) / per_block;
  const int64_t m_stride = xi_stride(O * g.Cp), partial_size = X * m_stride;
  const int64_t chunks = std::clamp<int64_t>(
      kWeightGradPartialBytes / (partial_size * int64_t{sizeof(float)}),
      std::min(blocks, kWeightGradMinChunks), std::min(blocks, kWeightGradMaxChunks));
  const int64_t x_image = g.Hh * g.Wh * g.Cp, dy_image = g.tiles_h * m * dy_width * g.Op;
  const int64_t v_stride = xi_stride(per_block * tiles * g.Cp);
  const int64_t w_stride = xi_stride(per_block * tiles * g.Op);
  float* partials = workspace<float>(kWinogradWeights, chunks * partial_size);  // shared
  // The spare input channels' sums are never written (the products write C_in of Cp) but the
  // final transform reads them whole.
  if (g.Cp != C) std::fill(partials, partials + chunks * partial_size, 0.0f);

  const ThreadPlan thread_plan = plan_threads(s);
  const int nt = static_cast<int>(
      std::min<int64_t>(std::max(thread_plan.image_threads, thread_plan.inner_threads), chunks));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    float* xh = workspace<float>(kPaddedImage, x_image);
    float* dyh = workspace<float>(kPaddedPlane, dy_image);
    float* v = workspace<float>(kColumns, X * v_stride);
    float* w = workspace<float>(kProduct, X * w_stride);
    float* mprod = partials + chunk * partial_size;
    // The padding (and the spare channels) of the channels-last copies stays zero: the copies
    // below write only the images' pixels.
    std::fill(xh, xh + x_image, 0.0f);
    std::fill(dyh, dyh + dy_image, 0.0f);
    const int64_t first = chunk * blocks / chunks * per_block;
    const int64_t end = std::min(s.batch, (chunk + 1) * blocks / chunks * per_block);
    for (int64_t n = first; n < end; n += per_block) {
      const int64_t images = std::min(per_block, end - n);
      for (int64_t i = 0; i < images; ++i) {
        const float* image = x + (n + i) * C * in_plane;
        for (int64_t h = 0; h < H; ++h)
          transpose(image + h * W, in_plane, C, W,
                    xh + ((h + s.pad_h) * g.Wh + s.pad_w) * g.Cp, g.Cp);
        const float* dy_n = dy + (n + i) * O * out_plane;
        for (int64_t h = 0; h < H_out; ++h)
          transpose(dy_n + h * W_out, out_plane, O, W_out, dyh + h * dy_width * g.Op, g.Op);
        for (int64_t r = 0; r < g.tiles_h; ++r) {
          const int64_t row0 = i * tiles + r * g.tiles_w;
          transforms.input(xh, g, r, v, row0, v_stride);
          transforms.output_grad(dyh, g, r, w, row0, w_stride);
        }
      }
      GemmShape gs = GemmShape::dense(O, C, images * tiles, true, false);
      gs.lda = g.Op, gs.ldb = g.Cp, gs.ldc = g.Cp;
      const float beta = n == first ? 0.0f : 1.0f;
      for (int64_t xi = 0; xi < X; ++xi)
        gemm(gs, 1.0f, w + xi * w_stride, v + xi * v_stride, beta, mprod + xi * m_stride, {},
             GemmThreads::caller);
    }
  }

  // Per output channel: its rows of the chunks' partials summed in chunk order, then G^T M G.
  const int nt_final = threads_for(O * C * X * chunks);
#pragma omp parallel for num_threads(nt_final) schedule(static)
  for (int64_t o = 0; o < O; ++o) {
    float* sums = workspace<float>(kPackedGrad, X * g.Cp + 9 * g.Cp);  // this thread's
    float* taps = sums + X * g.Cp;
    for (int64_t xi = 0; xi < X; ++xi) {
      float* dst = sums + xi * g.Cp;
      const float* src = partials + xi * m_stride + o * g.Cp;
      std::copy(src, src + g.Cp, dst);
      for (int64_t chunk = 1; chunk < chunks; ++chunk)
        for (int64_t c = 0; c < g.Cp; ++c) dst[c] += src[chunk * partial_size + c];
    }
    transforms.weight_grad(sums, g, 0, g.Cp, taps);
    float* dst = dweight + o * C * 9;
    for (int64_t c = 0; c < C; ++c)
      for (int k = 0; k < 9; ++k)
        dst[c * 9 + k] = accumulate ? dst[c * 9 + k] + taps[k * g.Cp + c] : taps[k * g.Cp + c];
  }
}

}  // namespace fastnn::cpu::conv2d_detail
