// The fused ArcFace loss; see arcface.h for the math. Both sides are normalised by
// l2_normalize_rows (keeping the norms for the backward), the cosines come from one GEMM, and one
// pass per row turns them into logits, the row's loss and, in the same buffer, dloss/dcos; two
// more GEMMs and the normalisation's backward give the gradients. Threads split rows; the batch
// loss is summed from per-row values in row order, so it does not depend on the thread count.
#include "cpu/arcface.h"

#include <cmath>
#include <vector>

#include "common/threading.h"
#include "cpu/gemm.h"
#include "cpu/l2_normalize.h"

namespace fastnn::cpu {

template <class T, class Label>
LossResult arcface_loss(const T* embeddings, const T* weight, const Label* labels, const ArcFaceParams& p,
                        T* grad_embeddings, T* grad_weight, const ArcFaceShape& s, const Exec& exec) {
  const int64_t N = s.rows, C = s.classes, D = s.features;
  const RowsShape embedding_rows{N, D}, weight_rows{C, D};
  std::vector<T> e_hat(static_cast<size_t>(N * D)), w_hat(static_cast<size_t>(C * D));
  std::vector<double> e_norm(static_cast<size_t>(N)), w_norm(static_cast<size_t>(C));
  l2_normalize_rows(embeddings, e_hat.data(), e_norm.data(), p.eps, embedding_rows, exec);
  l2_normalize_rows(weight, w_hat.data(), w_norm.data(), p.eps, weight_rows, exec);
  // cos (N, C), turned row by row into the logits and then into dloss/dcos.
  std::vector<T> cos(static_cast<size_t>(N * C));
  gemm(GemmShape::dense(N, C, D, false, true), T(1), e_hat.data(), w_hat.data(), T(0), cos.data());

  const bool want_grad = grad_embeddings || grad_weight;
  std::vector<double> row_loss(static_cast<size_t>(N));
  const int nt = threads_for(N * C, 16384);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    T* row = cos.data() + n * C;
    const int64_t target = static_cast<int64_t>(labels[n]);
    const MarginedCosine margined = arcface_target(row[target], p);
    for (int64_t c = 0; c < C; ++c) row[c] = static_cast<T>(p.scale * row[c]);
    row[target] = static_cast<T>(p.scale * margined.value);
    double m = row[0];
    for (int64_t c = 1; c < C; ++c) m = row[c] > m ? row[c] : m;
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(row[c] - m);
    const double lse = std::log(sum);
    row_loss[n] = lse - (row[target] - m);
    if (want_grad) {
      // dcos = s * (softmax - onehot) / N, times dphi/dcos on the target column.
      // softmax - 1 on the target in double: it cancels as the target's probability nears 1.
      const double shift = m + lse, scale = p.scale / static_cast<double>(N);
      const double target_prob = std::exp(row[target] - shift);
      for (int64_t c = 0; c < C; ++c) row[c] = static_cast<T>(scale * std::exp(row[c] - shift));
      row[target] = static_cast<T>(scale * (target_prob - 1.0) * margined.derivative);
    }
  }
  double total = 0;
  for (double l : row_loss) total += l;
  const LossResult result{total / static_cast<double>(N), -1};
  if (!want_grad) return result;

  const T* dcos = cos.data();
  if (grad_embeddings) {
    // de_hat = dcos @ w_hat, written into grad_embeddings and normalised back there.
    gemm(GemmShape::dense(N, D, C, false, false), T(1), dcos, w_hat.data(), T(0), grad_embeddings);
    l2_normalize_rows_backward(grad_embeddings, e_hat.data(), e_norm.data(), grad_embeddings, p.eps, false,
                               embedding_rows, exec);
  }
  if (grad_weight) {
    std::vector<T> dw_hat(static_cast<size_t>(C * D));
    gemm(GemmShape::dense(C, D, N, true, false), T(1), dcos, e_hat.data(), T(0), dw_hat.data());
    l2_normalize_rows_backward(dw_hat.data(), w_hat.data(), w_norm.data(), grad_weight, p.eps, true,
                               weight_rows, exec);
  }
  return result;
}

#define FASTNN_INSTANTIATE(T, Label)                                                               \
  template LossResult arcface_loss<T, Label>(const T*, const T*, const Label*, const ArcFaceParams&, T*, \
                                             T*, const ArcFaceShape&, const Exec&);
FASTNN_INSTANTIATE(float, int32_t)
FASTNN_INSTANTIATE(float, int64_t)
FASTNN_INSTANTIATE(double, int32_t)
FASTNN_INSTANTIATE(double, int64_t)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
