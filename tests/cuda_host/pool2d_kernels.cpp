// Whole launches of the pooling kernels (csrc/cuda/pool2d_kernels.cuh), run on the host by
// emulate.h over batches of planes, with grids small enough that every grid-stride loop wraps:
// max pooling forward (values and argmax indices, int32 and int64; ties to the first element in
// scan order, a NaN winning), its backward as the per-input gather and as the per-plane scatter
// (which also reports the first forged index), average pooling forward and backward, and the
// global average (warp per plane, butterfly sums) forward and backward. Every output is compared
// in full with a float64 direct loop over the definition: max-pool values and indices exactly,
// sums within rtol * (sum of |terms|), rtol 1e-13 for float64 and 1e-6 for float32. Then all of
// it again through the public entry points of pool2d.cu (its launchers compiled as host code:
// grid sizes from blocks_for, the scatter's flag cleared, read back and decoded).
// Built and run by tests/test_cuda_index_maps.py.
#include "emulate.h"  // first: turns the CUDA keywords into host code

#include <climits>
#include <random>
#include <type_traits>

#include "buffers.h"
#include "cuda/pool2d.h"
#include "cuda/pool2d_kernels.cuh"
#include "workspace.h"

using namespace fastnn;
using namespace fastnn::cuda;
using pool_maps::PoolDims;

int fails = 0;
char config[160];

template <class T>
void expect(const char* what, const Guarded<T>& got, const std::vector<double>& want, const std::vector<double>& scale) {
  const double rtol = std::is_same_v<T, double> ? 1e-13 : 1e-6;
  const double err = worst_error(got, want, scale);
  if (!(err <= rtol && got.guards_intact()) && fails++ < 20)
    std::printf("%s %s %s: worst error %.3g%s\n", what, std::is_same_v<T, double> ? "float64" : "float32", config,
                err, got.guards_intact() ? "" : ", wrote outside its output");
}

const dim3 kGrid(3), kThreads(64);  // 192 threads: smaller than every total below but the tiniest

template <class T, class Index>
void check_max(const Pool2dShape& s, std::mt19937& rng, bool with_nan, bool via_entry_points) {
  const PoolDims d = PoolDims::of(s);
  const int64_t planes = s.planes(), in_plane = s.in_plane(), out_plane = s.out_plane();
  const int64_t in_total = planes * in_plane, out_total = planes * out_plane;
  std::uniform_int_distribution<int> small(-2, 2), coin(0, 9);
  Guarded<T> x(in_total, 1024), y(out_total, 1024), dy(out_total, 1024);
  for (size_t i = 0; i < x.size(); ++i) x[i] = with_nan && coin(rng) == 0 ? NAN : static_cast<T>(small(rng));  // ties
  std::normal_distribution<double> normal;
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<T>(normal(rng));
  std::vector<Index> idx_store(out_total + 2048, Index(-7));
  Index* indices = idx_store.data() + 1024;
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  if (via_entry_points)
    max_pool2d_forward(x.data(), y.data(), indices, s, exec);
  else
    emu::launch(kGrid, kThreads, pool_kernels::max_pool2d_forward_kernel<T, Index>, (const T*)x.data(), y.data(),
                indices, d, out_total);

  // The definition: scan the window's real elements in order; strictly greater replaces, the
  // first NaN wins.
  std::vector<int64_t> want_index(out_total);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < d.Ho; ++oh)
      for (int64_t ow = 0; ow < d.Wo; ++ow) {
        int64_t best = -1;
        for (int64_t h = oh * d.sh - d.ph; h < oh * d.sh - d.ph + d.kh; ++h)
          for (int64_t w = ow * d.sw - d.pw; w < ow * d.sw - d.pw + d.kw; ++w) {
            if (h < 0 || h >= d.H || w < 0 || w >= d.W) continue;
            const int64_t k = h * d.W + w;
            const double v = x[pl * in_plane + k];
            if (best < 0) best = k;
            else if (!std::isnan(static_cast<double>(x[pl * in_plane + best])) &&
                     (std::isnan(v) || v > static_cast<double>(x[pl * in_plane + best])))
              best = k;
          }
        want_index[pl * out_plane + oh * d.Wo + ow] = best;
      }
  int bad = 0;
  for (int64_t i = 0; i < out_total; ++i) {
    const int64_t pl = i / out_plane;
    const double want_value = x[pl * in_plane + want_index[i]];
    const bool same_value = y[i] == want_value || (std::isnan(y[i]) && std::isnan(want_value));
    if (static_cast<int64_t>(indices[i]) != want_index[i] || !same_value) ++bad;
  }
  for (int64_t i = 1; i <= 1024; ++i)
    if (indices[-i] != Index(-7) || indices[out_total + i - 1] != Index(-7)) ++bad;
  if (bad && fails++ < 20) std::printf("max_pool2d_forward (%d-byte indices) %s: %d wrong\n", int(sizeof(Index)), config, bad);

  // Backward: each output's gradient goes to its argmax.
  std::vector<double> want(in_total, 0.0), scale(in_total, 0.0);
  for (int64_t i = 0; i < out_total; ++i) {
    const int64_t target = (i / out_plane) * in_plane + want_index[i];
    want[target] += dy[i], scale[target] += std::fabs(static_cast<double>(dy[i]));
  }
  Guarded<T> dx(in_total, 1024);
  if (via_entry_points)
    max_pool2d_backward(dy.data(), (const Index*)indices, dx.data(), s, exec);
  else
    emu::launch(kGrid, kThreads, pool_kernels::max_pool2d_backward_kernel<T, Index>, (const T*)dy.data(),
                (const Index*)indices, dx.data(), d, in_total);
  expect("max_pool2d_backward (gather)", dx, want, scale);

  // The scatter, once with the true indices and once with a forged one in the last plane (skipped,
  // reported as the first invalid flat index).
  for (bool forge : {false, true}) {
    Guarded<T> dxs(in_total, 1024);
    dxs.fill_nan();
    unsigned long long first_invalid = ULLONG_MAX;
    const int64_t forged_at = (planes - 1) * out_plane + out_plane / 2;
    const Index saved = indices[forged_at];
    std::vector<double> want_s = want;
    if (forge) {
      indices[forged_at] = static_cast<Index>(in_plane);  // one past the plane
      want_s[(planes - 1) * in_plane + saved] -= dy[forged_at];
    }
    if (via_entry_points) {  // the launcher clears its flag, launches, and reads the flag back
      const int64_t first = max_pool2d_backward_scatter(dy.data(), (const Index*)indices, dxs.data(), planes, in_plane,
                                                        out_plane, exec);
      first_invalid = first < 0 ? ULLONG_MAX : static_cast<unsigned long long>(first);
    } else {
      emu::launch(dim3(1), dim3(32), pool_kernels::max_pool2d_backward_scatter_kernel<T, Index>, (const T*)dy.data(),
                  (const Index*)indices, dxs.data(), planes, in_plane, out_plane, &first_invalid);
    }
    indices[forged_at] = saved;
    expect(forge ? "max_pool2d_backward (scatter, forged index)" : "max_pool2d_backward (scatter)", dxs, want_s, scale);
    const unsigned long long want_invalid = forge ? static_cast<unsigned long long>(forged_at) : ULLONG_MAX;
    if (first_invalid != want_invalid && fails++ < 20)
      std::printf("max_pool2d_backward_scatter %s: first invalid %llu, want %llu\n", config, first_invalid, want_invalid);
  }
}

template <class T>
void check_avg(const Pool2dShape& s, std::mt19937& rng, bool via_entry_points) {
  const PoolDims d = PoolDims::of(s);
  const int64_t planes = s.planes(), in_plane = s.in_plane(), out_plane = s.out_plane();
  const int64_t in_total = planes * in_plane, out_total = planes * out_plane;
  std::normal_distribution<double> normal;
  Guarded<T> x(in_total, 1024), dy(out_total, 1024), y(out_total, 1024), dx(in_total, 1024);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(normal(rng));
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<T>(normal(rng));
  const T inv_area = T(1) / static_cast<T>(d.kh * d.kw);  // pool2d.cu's inverse_area: padding counts
  const double area = static_cast<double>(d.kh * d.kw);
  HostWorkspace ws;
  const Exec exec{nullptr, &ws};
  if (via_entry_points) {
    avg_pool2d_forward(x.data(), y.data(), s, exec);
    avg_pool2d_backward(dy.data(), dx.data(), s, exec);
  } else {
    emu::launch(kGrid, kThreads, pool_kernels::avg_pool2d_forward_kernel<T>, (const T*)x.data(), y.data(), d, inv_area,
                out_total);
    emu::launch(kGrid, kThreads, pool_kernels::avg_pool2d_backward_kernel<T>, (const T*)dy.data(), dx.data(), d,
                inv_area, in_total);
  }
  std::vector<double> y_want(out_total, 0.0), y_scale(out_total, 0.0), dx_want(in_total, 0.0), dx_scale(in_total, 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < d.Ho; ++oh)
      for (int64_t ow = 0; ow < d.Wo; ++ow) {
        const int64_t o = pl * out_plane + oh * d.Wo + ow;
        for (int64_t h = oh * d.sh - d.ph; h < oh * d.sh - d.ph + d.kh; ++h)
          for (int64_t w = ow * d.sw - d.pw; w < ow * d.sw - d.pw + d.kw; ++w) {
            if (h < 0 || h >= d.H || w < 0 || w >= d.W) continue;
            const int64_t i = pl * in_plane + h * d.W + w;
            y_want[o] += x[i] / area, y_scale[o] += std::fabs(static_cast<double>(x[i])) / area;
            dx_want[i] += dy[o] / area, dx_scale[i] += std::fabs(static_cast<double>(dy[o])) / area;
          }
      }
  expect("avg_pool2d_forward", y, y_want, y_scale);
  expect("avg_pool2d_backward", dx, dx_want, dx_scale);

  // Global average over each plane.
  Guarded<T> g(planes, 1024), gdx(in_total, 1024);
  if (via_entry_points) {
    global_avg_pool2d_forward(x.data(), g.data(), s, exec);
    global_avg_pool2d_backward(dy.data(), gdx.data(), s, exec);
  } else {
    emu::launch(dim3(2), dim3(256), pool_kernels::global_avg_pool2d_forward_kernel<T>, (const T*)x.data(), g.data(),
                planes, in_plane);
    emu::launch(kGrid, kThreads, pool_kernels::global_avg_pool2d_backward_kernel<T>, (const T*)dy.data(), gdx.data(),
                in_plane, T(1) / static_cast<T>(in_plane), in_total);
  }
  std::vector<double> g_want(planes, 0.0), g_scale(planes, 0.0), gdx_want(in_total), gdx_scale(in_total);
  for (int64_t i = 0; i < in_total; ++i) {
    g_want[i / in_plane] += x[i] / double(in_plane), g_scale[i / in_plane] += std::fabs(double(x[i])) / double(in_plane);
    gdx_want[i] = dy[i / in_plane] / double(in_plane), gdx_scale[i] = std::fabs(gdx_want[i]);
  }
  expect("global_avg_pool2d_forward", g, g_want, g_scale);
  expect("global_avg_pool2d_backward", gdx, gdx_want, gdx_scale);
}

void check(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
           int64_t pw) {
  const Pool2dShape s = Pool2dShape::from("check", "x", {N, C, H, W}, kh, kw, sh, sw, ph, pw);
  std::snprintf(config, sizeof config, "N%ld C%ld %ldx%ld k%ldx%ld s%ldx%ld p%ldx%ld", (long)N, (long)C, (long)H,
                (long)W, (long)kh, (long)kw, (long)sh, (long)sw, (long)ph, (long)pw);
  std::mt19937 rng(static_cast<unsigned>(H * 31 + W * 7 + kh + sh));
  for (bool via_entry_points : {false, true}) {
    for (bool with_nan : {false, true}) {
      check_max<float, int64_t>(s, rng, with_nan, via_entry_points);
      check_max<double, int32_t>(s, rng, with_nan, via_entry_points);
    }
    check_avg<float>(s, rng, via_entry_points);
    check_avg<double>(s, rng, via_entry_points);
  }
}

int main() {
  // (N, C, H, W, kernel, stride, padding)
  check(2, 3, 8, 8, 2, 2, 2, 2, 0, 0);    // LeNet's 2x2 / 2
  check(1, 2, 7, 5, 3, 3, 2, 2, 1, 1);    // odd plane, padding, overlapping windows
  check(2, 1, 13, 16, 3, 2, 1, 2, 1, 1);  // stride 1 x 2, rectangular window
  check(1, 3, 5, 7, 5, 4, 3, 6, 2, 2);    // windows with gaps between them
  check(3, 2, 1, 4, 1, 2, 1, 2, 0, 1);    // a one-row plane
  check(2, 2, 9, 9, 4, 4, 3, 3, 2, 2);    // padding = kernel / 2 on both sides
  check(9, 4, 3, 3, 3, 3, 1, 1, 1, 1);    // more planes than the global average's warps
  std::printf(fails ? "FAILED (%d)\n" : "pool2d kernels, emulated launches: ok\n", fails);
  return fails != 0;
}
