// Batch normalisation kernels; see batchnorm.h for the math. Threads split the channels; each
// channel's sums run over n, then over the contiguous S values (SIMD lanes in a fixed order),
// in the row loops of batchnorm_rows.h (this ISA's or the AVX2 / AVX-512 build's).
#include "cpu/batchnorm.h"

#include <cmath>
#include <type_traits>

#include "common/cpu_features.h"
#include "common/threading.h"
#include "cpu/batchnorm_rows.h"

namespace fastnn::cpu {
namespace {

// Rows shorter than this (BatchNorm1d's S = 1, tiny planes) take the inlined portable loops:
// a call through the table per handful of values cost more than the wider vectors gain
// (BatchNorm1d on (128, 256) took twice as long).
constexpr int64_t kMinTableRow = 16;

// The portable row loops called directly (inlined), with the table's member names.
template <class T>
struct InlineRows {
  template <class... A>
  static void shifted_sums(A... a) { shifted_sums_row<T>(a...); }
  template <class... A>
  static void normalize(A... a) { normalize_row<T>(a...); }
  template <class... A>
  static void grad_sums(A... a) { grad_sums_row<T>(a...); }
  template <class... A>
  static void input_grad(A... a) { input_grad_row<T>(a...); }
};

// Calls body(rows) with the row loops for this shape: the same choice for a forward and its
// backward (the fused ReLU's mask must come from the code that wrote y).
template <class T, class F>
void with_rows(const BatchNormShape& s, F body) {
#if defined(FASTNN_X86)
  if constexpr (std::is_same_v<T, float>) {
    if (s.spatial >= kMinTableRow && active_simd_level() != SimdLevel::generic) {
      static const BatchNormRows<float> portable = this_isa_rows<float>();
      body(table_for_active_level(portable, batch_norm_rows_avx2, batch_norm_rows_avx512));
      return;
    }
  }
#endif
  body(InlineRows<T>{});
}

// Calls channel_fn(c) for every channel, channels split across threads.
template <class F>
void for_each_channel(const BatchNormShape& s, F channel_fn) {
  const int nt = threads_for(s.numel());
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t c = 0; c < s.channels; ++c) channel_fn(c);
}

// Offset of x[n, c, 0] in the (N, C, S) layout.
inline int64_t row_offset(const BatchNormShape& s, int64_t n, int64_t c) {
  return (n * s.channels + c) * s.spatial;
}

// The affine map of one channel, y = (x - mean) * scale + shift, in T: the forward writes y
// with it and the fused ReLU backward recomputes y's sign with it, so both must build it alike.
template <class T>
struct ChannelMap {
  T mean, scale, shift;
  ChannelMap(const T* weight, const T* bias, T mean_c, T inv_std_c, int64_t c)
      : mean(mean_c), scale(inv_std_c * (weight ? weight[c] : T(1))), shift(bias ? bias[c] : T(0)) {}
};

template <class T, class Rows>
void normalize_channel(const Rows& rows, const T* x, T* y, const ChannelMap<T>& map,
                       bool relu, const BatchNormShape& s, int64_t c) {
  for (int64_t n = 0; n < s.batch; ++n) {
    const int64_t offset = row_offset(s, n, c);
    rows.normalize(x + offset, y + offset, s.spatial, map.mean, map.scale, map.shift, relu);
  }
}

}  // namespace

template <class T>
void batch_norm_train_forward(const T* x, const T* weight, const T* bias, T* y, T* save_mean,
                              T* save_inv_std, T* running_mean, T* running_var, double momentum,
                              double eps, bool relu, const BatchNormShape& s, const Exec&) {
  const double count = static_cast<double>(s.values_per_channel());
  with_rows<T>(s, [&](const auto& rows) { for_each_channel(s, [&](int64_t c) {
    // One pass: sums of d = x - shift and d^2 with the channel's first value as the shift, so
    // that var = E[d^2] - E[d]^2 cancels only as much as the data lie far from that value
    // relative to their spread (not the mean's size: 1e4 + N(0, 1) keeps full accuracy).
    const double shift = static_cast<double>(x[row_offset(s, 0, c)]);
    double sum = 0, sum_sq = 0;
    for (int64_t n = 0; n < s.batch; ++n)
      rows.shifted_sums(x + row_offset(s, n, c), s.spatial, shift, &sum, &sum_sq);
    const double mean_d = sum / count;
    const double mean = shift + mean_d;
    const double raw_var = sum_sq / count - mean_d * mean_d;
    const double var = raw_var < 0.0 ? 0.0 : raw_var;  // rounding can dip below 0; NaN stays
    const double inv_std = 1.0 / std::sqrt(var + eps);
    save_mean[c] = static_cast<T>(mean);
    save_inv_std[c] = static_cast<T>(inv_std);
    if (running_mean) {
      const double unbiased_var = var * count / (count - 1.0);
      running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * unbiased_var);
    }
    // Normalise with the saved (rounded) statistics, the ones backward will see.
    normalize_channel(rows, x, y, ChannelMap<T>(weight, bias, save_mean[c], save_inv_std[c], c), relu, s, c);
  }); });
}

template <class T>
void batch_norm_eval_forward(const T* x, const T* weight, const T* bias, const T* running_mean,
                             const T* running_var, T* y, double eps, bool relu,
                             const BatchNormShape& s, const Exec&) {
  with_rows<T>(s, [&](const auto& rows) { for_each_channel(s, [&](int64_t c) {
    const T inv_std = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
    normalize_channel(rows, x, y, ChannelMap<T>(weight, bias, running_mean[c], inv_std, c), relu, s, c);
  }); });
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* weight, const T* bias, const T* mean,
                         const T* inv_std, T* dx, T* dweight, T* dbias, bool accumulate,
                         bool training, bool relu, const BatchNormShape& s, const Exec&) {
  const bool need_sums = training || dweight || dbias;
  const double count = static_cast<double>(s.values_per_channel());
  with_rows<T>(s, [&](const auto& rows) { for_each_channel(s, [&](int64_t c) {
    const double mu = static_cast<double>(mean[c]);
    const double rstd = static_cast<double>(inv_std[c]);
    const ChannelMap<T> map(weight, bias, mean[c], inv_std[c], c);
    // sum g and sum g * (x - mean), in one pass (g: dy, masked by the ReLU when fused).
    double sum_dy = 0, sum_dy_xc = 0;
    for (int64_t n = 0; need_sums && n < s.batch; ++n) {
      const int64_t offset = row_offset(s, n, c);
      rows.grad_sums(dy + offset, x + offset, s.spatial, mu, relu, map.mean, map.scale, map.shift,
                     &sum_dy, &sum_dy_xc);
    }
    const double sum_dy_xhat = sum_dy_xc * rstd;
    auto update = [accumulate](T& grad, double sum) {
      grad = static_cast<T>((accumulate ? static_cast<double>(grad) : 0.0) + sum);
    };
    if (dbias) update(dbias[c], sum_dy);
    if (dweight) update(dweight[c], sum_dy_xhat);
    if (!dx) return;
    // dx = dy_scale * g + xc_scale * (x - mean) + shift; the batch terms vanish in eval.
    const double w = weight ? static_cast<double>(weight[c]) : 1.0;
    const double dy_scale = w * rstd;
    const double xc_scale = training ? -dy_scale * rstd * sum_dy_xhat / count : 0.0;
    const double shift = training ? -dy_scale * sum_dy / count : 0.0;
    const T a = static_cast<T>(dy_scale), b = static_cast<T>(xc_scale), k = static_cast<T>(shift);
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t offset = row_offset(s, n, c);
      rows.input_grad(dy + offset, x + offset, dx + offset, s.spatial, a, b, k, relu, map.mean,
                      map.scale, map.shift);
    }
  }); });
}

#define FASTNN_INSTANTIATE(T)                                                                    \
  template void batch_norm_train_forward<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*,   \
                                            double, double, bool, const BatchNormShape&,        \
                                            const Exec&);                                       \
  template void batch_norm_eval_forward<T>(const T*, const T*, const T*, const T*, const T*,    \
                                           T*, double, bool, const BatchNormShape&, const Exec&); \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*,        \
                                       const T*, T*, T*, T*, bool, bool, bool,                  \
                                       const BatchNormShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
