// Host-side check of the pooling kernels' index maps (csrc/cuda/pool2d_maps.cuh), which CI can run
// without a GPU. For every window geometry of a grid (kernel, stride, padding up to kernel / 2,
// odd and tiny planes, overlapping and gapped windows):
//   - window_at clips the window exactly as the definition does, and covering_outputs lists
//     exactly the outputs whose (unclipped) windows contain an input position;
//   - max_in_window and window_sum equal direct scans (ties to the first in scan order, the
//     first NaN winning, padding never winning);
//   - the backward gathers (one input element each, reading the outputs that cover it) equal the
//     CPU's scatter of cpu/pool2d.cpp bit for bit: the same additions in the same order, with
//     argmax winners shared by overlapping windows.
// Built and run by tests/test_cuda_index_maps.py.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda/pool2d_maps.cuh"

using namespace fastnn;
using namespace fastnn::cuda::pool_maps;

int fails = 0;

#define CHECK(cond, ...)                        \
  do {                                          \
    if (!(cond)) {                              \
      if (++fails <= 20) std::printf(__VA_ARGS__); \
    }                                           \
  } while (0)

void check(int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
           std::mt19937& rng) {
  const Pool2dShape s = Pool2dShape::from("check", "x", {1, 1, H, W}, kh, kw, sh, sw, ph, pw);
  const PoolDims d = PoolDims::of(s);
  const int64_t in_plane = H * W, out_plane = d.Ho * d.Wo;

  // Windows and their inverse.
  for (int64_t oh = 0; oh < d.Ho; ++oh)
    for (int64_t ow = 0; ow < d.Wo; ++ow) {
      const Window win = window_at(d, oh, ow);
      int64_t h0 = H, h1 = -1, w0 = W, w1 = -1;
      for (int64_t h = oh * sh - ph; h < oh * sh - ph + kh; ++h)
        if (h >= 0 && h < H) h0 = std::min(h0, h), h1 = std::max(h1, h);
      for (int64_t w = ow * sw - pw; w < ow * sw - pw + kw; ++w)
        if (w >= 0 && w < W) w0 = std::min(w0, w), w1 = std::max(w1, w);
      CHECK(win.rows.begin == h0 && win.rows.end == h1 + 1 && win.cols.begin == w0 && win.cols.end == w1 + 1,
            "window_at(%ld, %ld) wrong for H=%ld W=%ld k=%ldx%ld s=%ldx%ld p=%ldx%ld\n", oh, ow, H, W, kh, kw, sh,
            sw, ph, pw);
      CHECK(h0 <= h1 && w0 <= w1, "empty window\n");
    }
  auto check_axis = [&](int64_t in, int64_t stride, int64_t pad, int64_t kernel, int64_t out) {
    for (int64_t i = 0; i < in; ++i) {
      const Range r = covering_outputs(i, stride, pad, kernel, out);
      for (int64_t o = 0; o < out; ++o) {
        const bool covers = o * stride - pad <= i && i <= o * stride - pad + kernel - 1;
        const bool listed = o >= r.begin && o < r.end;
        CHECK(covers == listed, "covering_outputs(%ld) in=%ld k=%ld s=%ld p=%ld out=%ld: output %ld %s\n", i, in,
              kernel, stride, pad, out, o, covers ? "missing" : "extra");
      }
    }
  };
  check_axis(H, sh, ph, kh, d.Ho);
  check_axis(W, sw, pw, kw, d.Wo);

  // Forward scans: values from a small set (many ties), sometimes a NaN.
  std::uniform_int_distribution<int> small(-2, 2), coin(0, 9);
  std::vector<float> x(in_plane);
  for (int trial = 0; trial < 3; ++trial) {
    for (float& v : x) v = static_cast<float>(small(rng));
    if (trial == 2)
      for (float& v : x)
        if (coin(rng) == 0) v = NAN;
    for (int64_t oh = 0; oh < d.Ho; ++oh)
      for (int64_t ow = 0; ow < d.Wo; ++ow) {
        const Window win = window_at(d, oh, ow);
        int64_t want = -1;
        float sum = 0;
        for (int64_t h = win.rows.begin; h < win.rows.end; ++h)
          for (int64_t w = win.cols.begin; w < win.cols.end; ++w) {
            const int64_t k = h * W + w;
            sum += x[k];
            if (want < 0) want = k;
            else if (!std::isnan(x[want]) && (std::isnan(x[k]) || x[k] > x[want])) want = k;
          }
        const ArgMax<float> got = max_in_window(d, x.data(), oh, ow);
        CHECK(got.index == want, "max_in_window(%ld, %ld) picked %ld, want %ld\n", oh, ow, got.index, want);
        const float total = window_sum(d, x.data(), oh, ow);
        CHECK(total == sum || (std::isnan(total) && std::isnan(sum)), "window_sum(%ld, %ld)\n", oh, ow);
      }
  }

  // Backward: gathers vs the CPU's scatter, bit for bit.
  std::normal_distribution<float> normal;
  std::vector<float> dy(out_plane);
  for (float& g : dy) g = normal(rng);
  std::vector<int64_t> indices(out_plane);
  for (int64_t oh = 0; oh < d.Ho; ++oh)
    for (int64_t ow = 0; ow < d.Wo; ++ow) {
      // Winners at a window corner (shared by overlapping windows) or anywhere in the window.
      const Window win = window_at(d, oh, ow);
      std::uniform_int_distribution<int64_t> hs(win.rows.begin, win.rows.end - 1), ws(win.cols.begin, win.cols.end - 1);
      const bool corner = coin(rng) < 5;
      indices[oh * d.Wo + ow] = corner ? (win.rows.end - 1) * W + (win.cols.end - 1) : hs(rng) * W + ws(rng);
    }
  std::vector<float> scatter_max(in_plane, 0.0f), scatter_avg(in_plane, 0.0f);
  const float inv_area = 1.0f / static_cast<float>(kh * kw);
  for (int64_t o = 0; o < out_plane; ++o) scatter_max[indices[o]] += dy[o];
  for (int64_t oh = 0; oh < d.Ho; ++oh)
    for (int64_t ow = 0; ow < d.Wo; ++ow) {
      const Window win = window_at(d, oh, ow);
      const float g = dy[oh * d.Wo + ow] * inv_area;
      for (int64_t h = win.rows.begin; h < win.rows.end; ++h)
        for (int64_t w = win.cols.begin; w < win.cols.end; ++w) scatter_avg[h * W + w] += g;
    }
  for (int64_t h = 0; h < H; ++h)
    for (int64_t w = 0; w < W; ++w) {
      const float gm = max_pool_gather(d, dy.data(), indices.data(), h, w);
      const float ga = avg_pool_gather(d, dy.data(), inv_area, h, w);
      CHECK(gm == scatter_max[h * W + w], "max gather at (%ld, %ld): %.9g vs scatter %.9g (H=%ld W=%ld k=%ld s=%ld p=%ld)\n",
            h, w, gm, scatter_max[h * W + w], H, W, kh, sh, ph);
      CHECK(ga == scatter_avg[h * W + w], "avg gather at (%ld, %ld): %.9g vs scatter %.9g\n", h, w, ga,
            scatter_avg[h * W + w]);
    }
}

int main() {
  std::mt19937 rng(7);
  int cases = 0;
  for (int64_t H : {1, 2, 3, 5, 8, 13})
    for (int64_t W : {1, 4, 7, 16})
      for (int64_t k : {1, 2, 3, 4, 5})
        for (int64_t stride : {1, 2, 3, 6})
          for (int64_t pad = 0; pad <= k / 2; ++pad) {
            // Square and rectangular windows; the geometry must fit the (padded) plane.
            for (int64_t kw : {k, k + 1}) {
              const int64_t pw = std::min(pad, kw / 2), sw = stride == 1 ? 2 : stride - 1;
              if (H + 2 * pad < k || W + 2 * pw < kw) continue;
              check(H, W, k, kw, stride, sw, pad, pw, rng);
              ++cases;
            }
          }
  if (fails) {
    std::printf("%d failures\n", fails);
    return 1;
  }
  std::printf("ok: %d pooling geometries\n", cases);
  return 0;
}
