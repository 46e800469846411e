// The fused ArcFace loss on the GPU; the math of cpu/arcface.h:
//   cos = l2_normalize(embeddings) @ l2_normalize(weight)^T (N, C); on each target column
//   cos -> arcface_target(cos) (cos(theta + m), or cos - sin(pi - m) * m past theta + m = pi:
//   common/shapes/arcface.h); logits = s * that; loss = mean softmax cross-entropy;
//   the gradients back through the GEMMs and both normalisations.
// Launches: two row normalisations (a warp per row), the cosine GEMM, one warp per row for the
// logits, the row's loss and dloss/dcos (in place of cos), the loss's one-block finish, then
// (for the gradients) two GEMMs and two normalisation backwards. Gradient rule: grad_embeddings
// is written, grad_weight (the class centres' .grad) added into; either may be null.
#pragma once

#include <cstdint>

#include "common/shapes/arcface.h"
#include "cuda/launch.h"
#include "cuda/loss_result.h"

namespace fastnn::cuda {

// Mean loss (waits for the stream). Labels outside [0, C) are not read through: the result's
// first_invalid names the first such row, the caller raises, and no gradient has been written.
template <class T, class Label>
LossResult arcface_loss(const T* embeddings, const T* weight, const Label* labels, const ArcFaceParams& p,
                        T* grad_embeddings /* nullable */, T* grad_weight /* nullable */,
                        const ArcFaceShape& s, const Exec& exec);

}  // namespace fastnn::cuda
