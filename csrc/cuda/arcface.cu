// The fused ArcFace loss; see arcface.h. The per-row pass runs a warp per row (8 per block): its
// max and sums are butterfly shuffles and the loss's finish sums rows in a fixed order, so the
// result is the same from run to run. The loss is read back (the one wait) before the gradient
// GEMMs are queued, so a bad label leaves .grad untouched.
#include "cuda/arcface.h"

#include <cmath>

#include "cuda/device.cuh"
#include "cuda/gemm.h"
#include "cuda/l2_normalize.h"
#include "cuda/warp_rows.cuh"

namespace fastnn::cuda {
namespace {

// Row n of cos (C,) becomes dloss/dcos when `want_grad`; its loss goes to row_loss[n].
template <class T, class Label>
__global__ void arcface_rows_kernel(T* cos, const Label* labels, ArcFaceParams p, bool want_grad, ArcFaceShape s,
                                    double* row_loss, unsigned long long* first_invalid) {
  const int64_t row = warp_row(s.rows);
  if (row < 0) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t C = s.classes;
  T* r = cos + row * C;
  const int64_t target = static_cast<int64_t>(labels[row]);
  if (target < 0 || target >= C) {
    if (lane == 0) {
      atomicMin(first_invalid, static_cast<unsigned long long>(row));
      row_loss[row] = NAN;
    }
    return;
  }
  // Every lane reads the target's cosine here, before the shuffles below; the lane owning that
  // column overwrites it only after them.
  const MarginedCosine margined = arcface_target(r[target], p);
  const T target_logit = static_cast<T>(p.scale * margined.value);
  auto logit = [&](int64_t c) { return c == target ? target_logit : static_cast<T>(p.scale * r[c]); };
  double m = target_logit;
  for (int64_t c = lane; c < C; c += kWarpSize) m = fmax(m, static_cast<double>(logit(c)));
  m = warp_max(m);
  double sum = 0;
  for (int64_t c = lane; c < C; c += kWarpSize) sum += ::exp(static_cast<double>(logit(c)) - m);
  const double lse = ::log(warp_sum(sum));
  if (lane == 0) row_loss[row] = lse - (static_cast<double>(target_logit) - m);
  if (!want_grad) return;
  // dcos = s * (softmax - onehot) / N, times dphi/dcos on the target (softmax - 1 in double).
  const double shift = m + lse, scale = p.scale / static_cast<double>(s.rows);
  for (int64_t c = lane; c < C; c += kWarpSize) {
    const double prob = ::exp(static_cast<double>(logit(c)) - shift);
    r[c] = static_cast<T>(c == target ? scale * (prob - 1.0) * margined.derivative : scale * prob);
  }
}

}  // namespace

template <class T, class Label>
LossResult arcface_loss(const T* embeddings, const T* weight, const Label* labels, const ArcFaceParams& p,
                        T* grad_embeddings, T* grad_weight, const ArcFaceShape& s, const Exec& exec) {
  const int64_t N = s.rows, C = s.classes, D = s.features;
  const RowsShape embedding_rows{N, D}, weight_rows{C, D};
  T* e_hat = static_cast<T*>(exec.scratch(N * D * sizeof(T), "arcface_loss"));
  T* w_hat = static_cast<T*>(exec.scratch(C * D * sizeof(T), "arcface_loss"));
  T* cos = static_cast<T*>(exec.scratch(N * C * sizeof(T), "arcface_loss"));
  auto* e_norm = static_cast<double*>(exec.scratch(N * sizeof(double), "arcface_loss"));
  auto* w_norm = static_cast<double*>(exec.scratch(C * sizeof(double), "arcface_loss"));
  auto* row_loss = static_cast<double*>(exec.scratch(N * sizeof(double), "arcface_loss"));
  l2_normalize_rows(embeddings, e_hat, e_norm, p.eps, embedding_rows, exec);
  l2_normalize_rows(weight, w_hat, w_norm, p.eps, weight_rows, exec);
  gemm(GemmShape::dense(N, C, D, false, true), T(1), e_hat, w_hat, T(0), cos, GemmEpilogue<T>{}, exec);

  const bool want_grad = grad_embeddings || grad_weight;
  LossScratch* scratch = new_loss_scratch(exec);
  FASTNN_LAUNCH(row_blocks(N), kRowBlockThreads, 0, exec.stream, arcface_rows_kernel<T, Label>)(
      cos, labels, p, want_grad, s, row_loss, &scratch->first_invalid);
  check_launch("arcface_rows");
  const LossResult result = finish_loss(row_loss, N, static_cast<double>(N), scratch, exec);
  if (result.first_invalid >= 0 || !want_grad) return result;

  if (grad_embeddings) {
    // de_hat = dcos @ w_hat, written into grad_embeddings and normalised back there.
    gemm(GemmShape::dense(N, D, C, false, false), T(1), cos, w_hat, T(0), grad_embeddings, GemmEpilogue<T>{}, exec);
    l2_normalize_rows_backward(grad_embeddings, e_hat, e_norm, grad_embeddings, p.eps, false, embedding_rows, exec);
  }
  if (grad_weight) {
    T* dw_hat = static_cast<T*>(exec.scratch(C * D * sizeof(T), "arcface_loss"));
    gemm(GemmShape::dense(C, D, N, true, false), T(1), cos, e_hat, T(0), dw_hat, GemmEpilogue<T>{}, exec);
    l2_normalize_rows_backward(dw_hat, w_hat, w_norm, grad_weight, p.eps, true, weight_rows, exec);
  }
  return result;
}

#define FASTNN_INSTANTIATE(T, Label)                                                                     \
  template LossResult arcface_loss<T, Label>(const T*, const T*, const Label*, const ArcFaceParams&, T*, T*, \
                                             const ArcFaceShape&, const Exec&);
FASTNN_INSTANTIATE(float, int32_t)
FASTNN_INSTANTIATE(float, int64_t)
FASTNN_INSTANTIATE(double, int32_t)
FASTNN_INSTANTIATE(double, int64_t)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cuda
