// Whole launches of the implicit-GEMM convolution kernels (csrc/cuda/conv2d_kernels.cuh), run on
// the host by emulate.h: the real GatherOperand / DenseOperand loaders, every gather functor of
// conv2d_maps.cuh as the loaders call it (element(mn, k)), the tiled main loop with its shared
// memory and barriers, and the epilogues. Each output is compared in full with a float64 direct
// loop over the definition (cpu/conv2d.h) for:
//   forward (weight as A, Columns<pixel-major> as B), with and without the vector weight path;
//   input gradient (WeightTransposed as A, GradOutTaps as B);
//   weight gradient (GradOutRows as A, Columns<kk-major> as B), whole and split along K with
//     gemm_exact.cuh's split reduction, writing and accumulating;
//   bias gradient (block reduction), one band with a prior and several bands;
// at 32 x 32 tiles in float64 and float32 and 64 x 64 tiles in float32 (the launchers' choices),
// on shapes with groups, depthwise, dilation, stride 2, padding wider than the input, odd sizes
// and more channels than one tile. Then the same through the public entry points of conv2d.cu,
// its launchers compiled as host code too (tile choice, split-K plan, bias bands).
// Tolerances: |got - want| <= rtol * sum of |terms|, rtol 1e-13 for float64 (the sums differ
// only in order) and 2e-6 for float32 (a few ulps per term for K up to a few hundred).
// Built and run by tests/test_cuda_index_maps.py.
#include "emulate.h"  // first: turns the CUDA keywords into host code

#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/conv2d.h"
#include "cuda/conv2d_kernels.cuh"
#include "cuda/gemm_exact.cuh"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;
using conv_maps::ConvDims;

int fails = 0;

// The definition, in float64, with the scale (sum of |terms|) of each result.
struct Reference {
  std::vector<double> y, y_scale, dx, dx_scale, dw, dw_scale, db, db_scale;
};

Reference direct(const ConvDims& d, const std::vector<double>& x, const std::vector<double>& w,
                 const std::vector<double>& bias, const std::vector<double>& dy) {
  Reference r;
  r.y.assign(dy.size(), 0), r.y_scale.assign(dy.size(), 0);
  r.dx.assign(x.size(), 0), r.dx_scale.assign(x.size(), 0);
  r.dw.assign(w.size(), 0), r.dw_scale.assign(w.size(), 0);
  r.db.assign(d.Cout, 0), r.db_scale.assign(d.Cout, 0);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t o = 0; o < d.Cout; ++o)
      for (int64_t i = 0; i < d.Ho; ++i)
        for (int64_t j = 0; j < d.Wo; ++j) {
          const int64_t yi = ((n * d.Cout + o) * d.Ho + i) * d.Wo + j;
          r.y[yi] += bias[o], r.y_scale[yi] += std::fabs(bias[o]);
          r.db[o] += dy[yi], r.db_scale[o] += std::fabs(dy[yi]);
          for (int64_t c = 0; c < d.Cg; ++c)
            for (int64_t p = 0; p < d.kh; ++p)
              for (int64_t q = 0; q < d.kw; ++q) {
                const int64_t h = i * d.sh - d.ph + p * d.dh, v = j * d.sw - d.pw + q * d.dw;
                if (h < 0 || h >= d.H || v < 0 || v >= d.W) continue;
                const int64_t xi = ((n * d.C + (o / d.Og) * d.Cg + c) * d.H + h) * d.W + v;
                const int64_t wi = ((o * d.Cg + c) * d.kh + p) * d.kw + q;
                r.y[yi] += w[wi] * x[xi], r.y_scale[yi] += std::fabs(w[wi] * x[xi]);
                r.dx[xi] += w[wi] * dy[yi], r.dx_scale[xi] += std::fabs(w[wi] * dy[yi]);
                r.dw[wi] += dy[yi] * x[xi], r.dw_scale[wi] += std::fabs(dy[yi] * x[xi]);
              }
        }
  return r;
}

template <class T>
void load(Guarded<T>& dst, const std::vector<double>& src) {
  for (size_t i = 0; i < src.size(); ++i) dst[i] = static_cast<T>(src[i]);
}

// The inputs in T inside NaN guards, and the reference computed from the values the kernels
// see (rounded to T).
template <class T>
struct Inputs {
  size_t guard;  // past any plausible stray read
  Guarded<T> x, w, b, dy;
  Reference ref;

  Inputs(const ConvDims& d, const std::vector<double>& x64, const std::vector<double>& w64,
         const std::vector<double>& b64, const std::vector<double>& dy64)
      : guard(16 * (x64.size() + dy64.size() + w64.size()) + 4096),
        x(x64.size(), guard), w(w64.size(), guard), b(b64.size(), guard), dy(dy64.size(), guard) {
    load(x, x64), load(w, w64), load(b, b64), load(dy, dy64);
    ref = direct(d, rounded(x), rounded(w), rounded(b), rounded(dy));
  }

  static std::vector<double> rounded(const Guarded<T>& a) {
    std::vector<double> out(a.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = a[i];
    return out;
  }
};

bool aligned16(const void* ptr, int64_t ld, size_t elem) {  // conv2d.cu's rule for the vector path
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && (ld * static_cast<int64_t>(elem)) % 16 == 0;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T>
void expect(const char* what, const char* config, const Guarded<T>& got, const std::vector<double>& want,
            const std::vector<double>& scale) {
  const double rtol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
  const double err = worst_error(got, want, scale);
  const bool ok = err <= rtol && got.guards_intact();
  if (!ok && fails++ < 20)
    std::printf("%s %s: worst error %.3g (tolerance %.0e)%s\n", what, config, err, rtol,
                got.guards_intact() ? "" : ", wrote outside its output");
}

template <class T, int BM>
void run(const Conv2dShape& s, const std::vector<double>& x64, const std::vector<double>& w64,
         const std::vector<double>& b64, const std::vector<double>& dy64, const char* config) {
  using Tile = conv_kernels::ConvTile<BM>;
  const ConvDims d = ConvDims::of(s);
  Inputs<T> in(d, x64, w64, b64, dy64);
  const size_t guard = in.guard;
  Guarded<T>&x = in.x, &w = in.w, &b = in.b, &dy = in.dy;
  const Reference& ref = in.ref;
  const dim3 threads(Tile::THREADS);

  // Forward, through the vector weight path where conv2d.cu takes it and through the scalar one.
  for (bool allow_vec : {true, false}) {
    Guarded<T> y(dy64.size(), guard);
    const int tm = static_cast<int>(ceil_div(d.Og, Tile::BM)), tn = static_cast<int>(ceil_div(d.N * d.P, Tile::BN));
    bool used_vec = false;
    for (int64_t g = 0; g < s.groups; ++g) {
      const bool vec = allow_vec && aligned16(w.data() + g * d.Og * d.Kg, d.Kg, sizeof(T));
      used_vec |= vec;
      emu::launch(dim3(tm * tn), threads, conv_kernels::conv2d_forward_kernel<T, Tile>, (const T*)x.data(),
                  (const T*)w.data(), (const T*)b.data(), y.data(), d, g, tm, tn, vec, false);
    }
    expect(used_vec ? "forward (vector weight loads)" : "forward", config, y, ref.y, ref.y_scale);
    if (!used_vec) break;
  }

  {  // input gradient
    Guarded<T> dx(x64.size(), guard);
    const int tm = static_cast<int>(ceil_div(d.Cg, Tile::BM)), tn = static_cast<int>(ceil_div(d.N * d.HW, Tile::BN));
    for (int64_t g = 0; g < s.groups; ++g)
      emu::launch(dim3(tm * tn), threads, conv_kernels::conv2d_backward_input_kernel<T, Tile>, (const T*)dy.data(),
                  (const T*)w.data(), dx.data(), d, g, tm, tn);
    expect("input gradient", config, dx, ref.dx, ref.dx_scale);
  }

  // Weight gradient, as conv2d_backward_weight sets it up: whole K (written), and K in three
  // splits reduced by the split-K kernel (accumulated into a prior).
  for (int splits_wanted : {1, 3}) {
    const bool accumulate = splits_wanted > 1;
    Guarded<T> dw(w64.size(), guard);
    std::vector<double> want = ref.dw, scale = ref.dw_scale;
    if (accumulate)
      for (size_t i = 0; i < want.size(); ++i) {
        dw[i] = static_cast<T>(0.25 * static_cast<double>(i % 7) - 0.5);
        want[i] += static_cast<double>(dw[i]), scale[i] += std::fabs(static_cast<double>(dw[i]));
      }
    for (int64_t g = 0; g < s.groups; ++g) {
      cuda::detail::GemmParams<T> p{};
      p.c = dw.data() + g * d.Og * d.Kg;
      p.M = d.Og, p.N = d.Kg, p.K = d.N * d.P, p.ldc = d.Kg;
      p.alpha = T(1), p.beta = accumulate ? T(1) : T(0);
      p.tiles_m = static_cast<int>(ceil_div(d.Og, Tile::BM));
      p.tiles_n = static_cast<int>(ceil_div(d.Kg, Tile::BN));
      const int64_t slices = ceil_div(p.K, Tile::BK);
      p.k_per_split = ceil_div(slices, splits_wanted) * Tile::BK;  // plan_split_k's rounding
      const int splits = static_cast<int>(ceil_div(p.K, p.k_per_split));
      Guarded<T> partial(static_cast<size_t>(splits * p.M * p.N), 64);
      p.partial = splits > 1 ? partial.data() : nullptr;
      emu::launch(dim3(p.tiles_m * p.tiles_n, 1, splits), threads, conv_kernels::conv2d_backward_weight_kernel<T, Tile>,
                  (const T*)dy.data(), (const T*)x.data(), p, d, g);
      if (splits > 1)  // two blocks of 64: the grid-stride loop wraps
        emu::launch(dim3(2), dim3(64), cuda::detail::gemm_reduce_splits_kernel<T>, p, splits);
    }
    expect(accumulate ? "weight gradient (split K, accumulated)" : "weight gradient", config, dw, want, scale);
  }

  // Bias gradient: one band over every image with the prior added (accumulate), or one band per
  // image (written as band sums, added here in band order as add_band_sums does).
  if (BM == 32) {
    std::vector<double> prior(d.Cout), want(d.Cout), scale(d.Cout);
    Guarded<T> prior_t(d.Cout, 64), db(d.Cout, guard), bands(static_cast<size_t>(d.N * d.Cout), guard);
    for (int64_t o = 0; o < d.Cout; ++o) {
      prior_t[o] = static_cast<T>(0.5 - 0.125 * static_cast<double>(o));
      want[o] = ref.db[o] + static_cast<double>(prior_t[o]), scale[o] = ref.db_scale[o] + std::fabs(want[o]);
    }
    emu::launch(dim3(d.Cout, 1), dim3(256), conv_kernels::conv2d_bias_kernel<T>, (const T*)dy.data(), d, d.N,
                (const T*)prior_t.data(), db.data());
    expect("bias gradient (one band)", config, db, want, scale);
    emu::launch(dim3(d.Cout, d.N), dim3(256), conv_kernels::conv2d_bias_kernel<T>, (const T*)dy.data(), d,
                int64_t(1), (const T*)nullptr, bands.data());
    Guarded<T> summed(d.Cout, 64);
    for (int64_t o = 0; o < d.Cout; ++o) {
      T total = T(0);
      for (int64_t n = 0; n < d.N; ++n) total += bands[n * d.Cout + o];
      summed[o] = total;
    }
    if (!bands.guards_intact()) summed[0] = std::numeric_limits<T>::quiet_NaN();
    expect("bias gradient (a band per image)", config, summed, ref.db, ref.db_scale);
  }
}

// The public entry points of conv2d.cu on top: the launchers' tile choice (64 x 64 tiles for
// float32 groups of more than 32 channels), group loop and vector-load rule, the weight
// gradient's split-K plan (the emulated GPU has one multiprocessor, so it splits) with its
// scratch, and the bias gradient's bands (reduction_bands, add_band_sums).
template <class T>
void entry_points(const Conv2dShape& s, const std::vector<double>& x64, const std::vector<double>& w64,
                  const std::vector<double>& b64, const std::vector<double>& dy64, const char* config) {
  const ConvDims d = ConvDims::of(s);
  Inputs<T> in(d, x64, w64, b64, dy64);
  const size_t guard = in.guard;
  Guarded<T>&x = in.x, &w = in.w, &b = in.b, &dy = in.dy;
  const Reference& ref = in.ref;
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};

  Guarded<T> y(dy64.size(), guard), dx(x64.size(), guard), dw(w64.size(), guard), db(b64.size(), guard);
  conv2d_forward(x.data(), w.data(), b.data(), y.data(), s, false, exec);
  expect("conv2d_forward", config, y, ref.y, ref.y_scale);
  {  // the fused ReLU: max(y, 0) of the same sums
    std::vector<double> relu_y(ref.y.size());
    for (size_t i = 0; i < relu_y.size(); ++i) relu_y[i] = std::max(ref.y[i], 0.0);
    Guarded<T> yr(dy64.size(), guard);
    conv2d_forward(x.data(), w.data(), b.data(), yr.data(), s, true, exec);
    expect("conv2d_forward relu", config, yr, relu_y, ref.y_scale);
  }
  conv2d_backward_input(dy.data(), w.data(), dx.data(), s, exec);
  expect("conv2d_backward_input", config, dx, ref.dx, ref.dx_scale);
  // accumulate = true into a prior of ones
  for (size_t i = 0; i < dw.size(); ++i) dw[i] = T(1);
  for (size_t i = 0; i < db.size(); ++i) db[i] = T(1);
  std::vector<double> want_dw = ref.dw, scale_dw = ref.dw_scale, want_db = ref.db, scale_db = ref.db_scale;
  for (double& v : want_dw) v += 1;
  for (double& v : scale_dw) v += 1;
  for (double& v : want_db) v += 1;
  for (double& v : scale_db) v += 1;
  conv2d_backward_weight(dy.data(), x.data(), dw.data(), true, s, exec);
  expect("conv2d_backward_weight (accumulate)", config, dw, want_dw, scale_dw);
  conv2d_backward_bias(dy.data(), db.data(), true, s, exec);
  expect("conv2d_backward_bias (accumulate)", config, db, want_db, scale_db);
  conv2d_backward_weight(dy.data(), x.data(), dw.data(), false, s, exec);
  expect("conv2d_backward_weight", config, dw, ref.dw, ref.dw_scale);
  conv2d_backward_bias(dy.data(), db.data(), false, s, exec);
  expect("conv2d_backward_bias", config, db, ref.db, ref.db_scale);
}

void check(int64_t N, int64_t C, int64_t H, int64_t W, int64_t Co, int64_t kh, int64_t kw, int64_t sh,
           int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t G) {
  Conv2dParams prm;
  prm.stride_h = sh, prm.stride_w = sw, prm.pad_h = ph, prm.pad_w = pw;
  prm.dilation_h = dh, prm.dilation_w = dw, prm.groups = G;
  const Conv2dShape s = Conv2dShape::from("check", {N, C, H, W}, {Co, C / G, kh, kw}, prm);
  const ConvDims d = ConvDims::of(s);
  char config[160];
  std::snprintf(config, sizeof config, "N%ld C%ld %ldx%ld Co%ld k%ldx%ld s%ldx%ld p%ldx%ld d%ldx%ld G%ld", (long)N,
                (long)C, (long)H, (long)W, (long)Co, (long)kh, (long)kw, (long)sh, (long)sw, (long)ph, (long)pw,
                (long)dh, (long)dw, (long)G);
  std::mt19937 rng(static_cast<unsigned>(N * 131 + C * 17 + H * 7 + W + Co * 3 + G));
  std::normal_distribution<double> normal;
  std::vector<double> x(N * C * H * W), w(Co * d.Cg * kh * kw), b(Co), dy(N * Co * d.P);
  for (auto* v : {&x, &w, &b, &dy})
    for (double& e : *v) e = normal(rng);
  run<double, 32>(s, x, w, b, dy, config);
  run<float, 32>(s, x, w, b, dy, config);
  run<float, 64>(s, x, w, b, dy, config);
  entry_points<double>(s, x, w, b, dy, config);
  entry_points<float>(s, x, w, b, dy, config);
}

int main() {
  // (N, C, H, W, C_out, kh, kw, stride, padding, dilation, groups)
  check(2, 3, 5, 6, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1);    // 1x1
  check(2, 3, 7, 7, 5, 1, 1, 2, 2, 0, 0, 1, 1, 1);    // 1x1, stride 2
  check(3, 4, 3, 5, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2);    // groups
  check(2, 3, 8, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1);    // 3x3 same
  check(2, 1, 11, 10, 6, 5, 5, 2, 2, 2, 2, 1, 1, 1);  // 5x5 stride 2
  check(2, 3, 7, 8, 5, 3, 1, 1, 2, 1, 0, 1, 1, 1);    // rectangular kernel, mixed strides
  check(2, 2, 9, 7, 3, 2, 5, 1, 1, 0, 2, 2, 1, 1);    // dilation along one axis
  check(2, 3, 9, 9, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1);    // dilation 2
  check(2, 4, 9, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2);    // groups, stride 2
  check(2, 7, 8, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 7);    // depthwise
  check(2, 3, 9, 9, 6, 3, 3, 2, 2, 1, 1, 1, 1, 3);    // depthwise, stride 2
  check(1, 2, 2, 3, 3, 3, 3, 1, 1, 2, 2, 1, 1, 1);    // padding wider than the input
  check(2, 3, 3, 2, 4, 3, 3, 2, 2, 0, 1, 1, 1, 1);    // tiny, odd
  check(2, 3, 10, 11, 4, 3, 3, 3, 2, 1, 2, 2, 1, 1);  // stride 3 x 2, dilation
  check(1, 36, 5, 5, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1);  // more than a 32-row tile of channels both ways
  check(2, 8, 5, 7, 70, 3, 3, 2, 1, 1, 1, 1, 1, 2);   // 35 output channels per group
  check(4, 3, 6, 5, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1);    // two output channels: the bias gradient in bands
  std::printf(fails ? "FAILED (%d)\n" : "conv2d kernels, emulated launches: ok\n", fails);
  return fails != 0;
}
