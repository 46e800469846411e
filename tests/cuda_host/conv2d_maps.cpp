// Host-side check of the implicit-GEMM convolution's index maps (csrc/cuda/conv2d_maps.cuh),
// which CI can run without a GPU: the three products of cuda/conv2d.h, evaluated naively through
// the maps (the gathers the kernels' operand loaders call and the addresses their epilogues
// write), must equal direct loops over the definition of cpu/conv2d.h — for strides, padding
// (larger than the input too), dilation, groups and depthwise. Built and run by
// tests/test_cuda_index_maps.py.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda/conv2d_maps.cuh"

using namespace fastnn;
using namespace fastnn::cuda::conv_maps;

int fails = 0;

void check(int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, int64_t sh,
           int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t G) {
  Conv2dParams prm;
  prm.stride_h = sh, prm.stride_w = sw, prm.pad_h = ph, prm.pad_w = pw;
  prm.dilation_h = dh, prm.dilation_w = dw, prm.groups = G;
  const Conv2dShape s = Conv2dShape::from("check", {N, C, H, W}, {Co, C / G, kh, kw}, prm);
  const ConvDims d = ConvDims::of(s);
  std::mt19937 rng(1);
  std::normal_distribution<double> normal;
  std::vector<double> x(N * C * H * W), w(Co * d.Cg * kh * kw), dy(N * Co * d.P);
  for (auto* v : {&x, &w, &dy})
    for (double& e : *v) e = normal(rng);

  // The definition, loop by loop.
  std::vector<double> y(dy.size(), 0), dx(x.size(), 0), dwt(w.size(), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < Co; ++o)
      for (int64_t i = 0; i < d.Ho; ++i)
        for (int64_t j = 0; j < d.Wo; ++j)
          for (int64_t c = 0; c < d.Cg; ++c)
            for (int64_t p = 0; p < kh; ++p)
              for (int64_t q = 0; q < kw; ++q) {
                const int64_t h = i * sh - ph + p * dh, v = j * sw - pw + q * dw;
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                const int64_t xi = ((n * C + (o / d.Og) * d.Cg + c) * H + h) * W + v;
                const int64_t wi = ((o * d.Cg + c) * kh + p) * kw + q;
                const int64_t yi = ((n * Co + o) * d.Ho + i) * d.Wo + j;
                y[yi] += w[wi] * x[xi];
                dx[xi] += w[wi] * dy[yi];
                dwt[wi] += dy[yi] * x[xi];
              }

  // The products of cuda/conv2d.h through the maps.
  std::vector<double> y2(y.size(), 0), dx2(dx.size(), 0), dw2(w.size(), 0);
  for (int64_t g = 0; g < G; ++g) {
    const Columns<double, true> cols_by_pixel{x.data(), d, g};
    const Columns<double, false> cols_by_row{x.data(), d, g};
    const GradOutRows<double> dy_rows{dy.data(), d, g};
    const WeightTransposed<double> w_t{w.data(), d, g};
    const GradOutTaps<double> taps{dy.data(), d, g};
    const double* wg = w.data() + g * d.Og * d.Kg;
    for (int64_t o = 0; o < d.Og; ++o)
      for (int64_t pix = 0; pix < N * d.P; ++pix) {
        double acc = 0;
        for (int64_t kk = 0; kk < d.Kg; ++kk) acc += wg[o * d.Kg + kk] * cols_by_pixel(pix, kk);
        y2[output_index(d, g, o, pix)] = acc;
      }
    for (int64_t c = 0; c < d.Cg; ++c)
      for (int64_t pix = 0; pix < N * d.HW; ++pix) {
        double acc = 0;
        for (int64_t kk = 0; kk < d.Og * d.KK; ++kk) acc += w_t(c, kk) * taps(pix, kk);
        dx2[input_index(d, g, c, pix)] = acc;
      }
    for (int64_t o = 0; o < d.Og; ++o)
      for (int64_t kk = 0; kk < d.Kg; ++kk) {
        double acc = 0;
        for (int64_t pix = 0; pix < N * d.P; ++pix) acc += dy_rows(o, pix) * cols_by_row(kk, pix);
        dw2[(g * d.Og + o) * d.Kg + kk] = acc;
      }
  }
  auto max_diff = [](const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::fmax(m, std::fabs(a[i] - b[i]));
    return m;
  };
  const double e = std::fmax(max_diff(y, y2), std::fmax(max_diff(dx, dx2), max_diff(dwt, dw2)));
  if (!(e < 1e-9)) {
    ++fails;
    std::printf("mismatch %g: N%ld C%ld %ldx%ld Co%ld k%ldx%ld s%ldx%ld p%ldx%ld d%ldx%ld G%ld\n", e, (long)N,
                (long)C, (long)H, (long)W, (long)Co, (long)kh, (long)kw, (long)sh, (long)sw, (long)ph, (long)pw,
                (long)dh, (long)dw, (long)G);
  }
}

int main() {
  // (N, C, H, W, C_out, kh, kw, stride, padding, dilation, groups): tests/test_conv2d.py's grid
  check(2, 3, 5, 6, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1);
  check(2, 3, 7, 7, 5, 1, 1, 2, 2, 0, 0, 1, 1, 1);
  check(3, 4, 3, 5, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2);
  check(2, 3, 8, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1);
  check(2, 1, 11, 10, 6, 5, 5, 2, 2, 2, 2, 1, 1, 1);
  check(2, 3, 7, 8, 5, 3, 1, 1, 2, 1, 0, 1, 1, 1);
  check(2, 2, 9, 7, 3, 2, 5, 1, 1, 0, 2, 2, 1, 1);
  check(2, 3, 9, 9, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1);
  check(2, 4, 9, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2);
  check(2, 7, 8, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 7);
  check(2, 3, 9, 9, 6, 3, 3, 2, 2, 1, 1, 1, 1, 3);
  check(1, 2, 2, 3, 3, 3, 3, 1, 1, 2, 2, 1, 1, 1);
  check(2, 3, 3, 2, 4, 3, 3, 2, 2, 0, 1, 1, 1, 1);
  check(2, 3, 10, 11, 4, 3, 3, 3, 2, 1, 2, 2, 1, 1);
  std::printf(fails ? "FAILED (%d)\n" : "conv2d index maps: ok\n", fails);
  return fails != 0;
}
