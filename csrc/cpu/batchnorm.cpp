// Batch normalisation kernels; see batchnorm.h for the math. Threads split the channels; each
// channel's sums run over n, then over the contiguous S values (SIMD lanes in a fixed order).
#include "cpu/batchnorm.h"

#include <cmath>

#include "common/threading.h"

namespace fastnn::cpu {
namespace {

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

// sum over n, i of term(x[n, c, i]) in double.
template <class T, class F>
double channel_sum(const T* x, const BatchNormShape& s, int64_t c, F term) {
  double total = 0;
  for (int64_t n = 0; n < s.batch; ++n) {
    const T* row = x + row_offset(s, n, c);
    double partial = 0;
#pragma omp simd reduction(+ : partial)
    for (int64_t i = 0; i < s.spatial; ++i) partial += term(static_cast<double>(row[i]));
    total += partial;
  }
  return total;
}

// y[:, c, :] = (x - mean) * inv_std * weight + bias for one channel.
template <class T>
void normalize_channel(const T* x, const T* weight, const T* bias, T* y, T mean, T inv_std,
                       const BatchNormShape& s, int64_t c) {
  const T scale = inv_std * (weight ? weight[c] : T(1));
  const T shift = bias ? bias[c] : T(0);
  for (int64_t n = 0; n < s.batch; ++n) {
    const int64_t offset = row_offset(s, n, c);
    const T* xr = x + offset;
    T* yr = y + offset;
#pragma omp simd
    for (int64_t i = 0; i < s.spatial; ++i) yr[i] = (xr[i] - mean) * scale + shift;
  }
}

}  // namespace

template <class T>
void batch_norm_train_forward(const T* x, const T* weight, const T* bias, T* y, T* save_mean,
                              T* save_inv_std, T* running_mean, T* running_var, double momentum,
                              double eps, const BatchNormShape& s, const Exec&) {
  const double count = static_cast<double>(s.values_per_channel());
  for_each_channel(s, [&](int64_t c) {
    // Two passes (mean, then squared deviations) so a large mean cannot cancel the variance.
    const double mean = channel_sum(x, s, c, [](double v) { return v; }) / count;
    const double var =
        channel_sum(x, s, c, [mean](double v) { return (v - mean) * (v - mean); }) / count;
    const double inv_std = 1.0 / std::sqrt(var + eps);
    save_mean[c] = static_cast<T>(mean);
    save_inv_std[c] = static_cast<T>(inv_std);
    if (running_mean) {
      const double unbiased_var = var * count / (count - 1.0);
      running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * unbiased_var);
    }
    // Normalise with the saved (rounded) statistics, the ones backward will see.
    normalize_channel(x, weight, bias, y, save_mean[c], save_inv_std[c], s, c);
  });
}

template <class T>
void batch_norm_eval_forward(const T* x, const T* weight, const T* bias, const T* running_mean,
                             const T* running_var, T* y, double eps, const BatchNormShape& s, const Exec&) {
  for_each_channel(s, [&](int64_t c) {
    const T inv_std = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
    normalize_channel(x, weight, bias, y, running_mean[c], inv_std, s, c);
  });
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* weight, const T* mean,
                         const T* inv_std, T* dx, T* dweight, T* dbias, bool accumulate,
                         bool training, const BatchNormShape& s, const Exec&) {
  const bool need_sums = training || dweight || dbias;
  const double count = static_cast<double>(s.values_per_channel());
  for_each_channel(s, [&](int64_t c) {
    const double mu = static_cast<double>(mean[c]);
    const double rstd = static_cast<double>(inv_std[c]);
    // sum dy and sum dy * (x - mean), in one pass.
    double sum_dy = 0, sum_dy_xc = 0;
    for (int64_t n = 0; need_sums && n < s.batch; ++n) {
      const int64_t offset = row_offset(s, n, c);
      const T* dyr = dy + offset;
      const T* xr = x + offset;
      double partial_dy = 0, partial_dy_xc = 0;
#pragma omp simd reduction(+ : partial_dy, partial_dy_xc)
      for (int64_t i = 0; i < s.spatial; ++i) {
        const double g = static_cast<double>(dyr[i]);
        partial_dy += g;
        partial_dy_xc += g * (static_cast<double>(xr[i]) - mu);
      }
      sum_dy += partial_dy;
      sum_dy_xc += partial_dy_xc;
    }
    const double sum_dy_xhat = sum_dy_xc * rstd;
    auto update = [accumulate](T& grad, double sum) {
      grad = static_cast<T>((accumulate ? static_cast<double>(grad) : 0.0) + sum);
    };
    if (dbias) update(dbias[c], sum_dy);
    if (dweight) update(dweight[c], sum_dy_xhat);
    if (!dx) return;
    // dx = dy_scale * dy + xc_scale * (x - mean) + shift; the batch terms vanish in eval.
    const double w = weight ? static_cast<double>(weight[c]) : 1.0;
    const double dy_scale = w * rstd;
    const double xc_scale = training ? -dy_scale * rstd * sum_dy_xhat / count : 0.0;
    const double shift = training ? -dy_scale * sum_dy / count : 0.0;
    const T a = static_cast<T>(dy_scale), b = static_cast<T>(xc_scale),
            k = static_cast<T>(shift), m = mean[c];
    for (int64_t n = 0; n < s.batch; ++n) {
      const int64_t offset = row_offset(s, n, c);
      const T* dyr = dy + offset;
      const T* xr = x + offset;
      T* dxr = dx + offset;
#pragma omp simd
      for (int64_t i = 0; i < s.spatial; ++i) dxr[i] = a * dyr[i] + b * (xr[i] - m) + k;
    }
  });
}

#define FASTNN_INSTANTIATE(T)                                                                   \
  template void batch_norm_train_forward<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*,  \
                                            double, double, const BatchNormShape&, const Exec&);             \
  template void batch_norm_eval_forward<T>(const T*, const T*, const T*, const T*, const T*,   \
                                           T*, double, const BatchNormShape&, const Exec&);                  \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*,   \
                                       T*, T*, bool, bool, const BatchNormShape&, const Exec&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
