// ArcFace loss (additive angular margin softmax cross-entropy, Deng et al. 2019), fused:
//   e_hat = l2_normalize(embeddings)  (N, D)     w_hat = l2_normalize(weight)  (C, D)
//   cos   = e_hat @ w_hat^T  (N, C), through the GEMM
//   on the target column t = labels[n], cos(theta) becomes cos(theta + m), insightface's rule
//   (easy_margin=False, common/shapes/arcface.h arcface_target):
//     phi = cos * cos(m) - sin * sin(m), sin = sqrt(max(1 - cos^2, 0))   where cos > cos(pi - m)
//     phi = cos - sin(pi - m) * m                                       otherwise (theta + m > pi)
//   logits = s * cos, with s * phi on the target column
//   loss   = (1 / N) sum_n [log sum_c exp(logits[n, c]) - logits[n, t]]   (summed in double)
// Backward through all of it:
//   dlogits = (softmax(logits) - onehot) / N;  dcos = s * dlogits, times dphi/dcos on the target
//   de_hat = dcos @ w_hat,  dw_hat = dcos^T @ e_hat,  then each through l2_normalize's backward.
// Gradient rule: grad_embeddings (N, D) is written; grad_weight (C, D), the class centres' .grad,
// is added into. Either may be null (not computed).
#pragma once

#include <cstdint>

#include "common/loss_result.h"
#include "common/shapes/arcface.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

// Returns the mean loss; labels are int32 or int64, already checked to lie in [0, C).
template <class T, class Label>
LossResult arcface_loss(const T* embeddings, const T* weight, const Label* labels, const ArcFaceParams& p,
                        T* grad_embeddings /* nullable */, T* grad_weight /* nullable */,
                        const ArcFaceShape& s, const Exec&);

}  // namespace fastnn::cpu
