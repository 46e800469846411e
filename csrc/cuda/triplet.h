// Triplet margin loss on the GPU, batch-hard or all-triplet mining; the math of cpu/triplet.h.
//   e: (N, D) embeddings; labels: (N,); grad: (N, D) or null (written).
// Launches, in stream order: G = e e^T (cuda::gemm) -> distances in place -> one block per
// anchor mining its triplets (batch_hard: block arg-max / arg-min reductions, ties to the lower
// index; all: a thread per candidate j, pairing it with every n, or every p for a negative),
// leaving its loss sum, triplet count and row of dloss/dd -> one block summing the counts (in a
// fixed order) into the scale 1 / C -> the gradient (S = scale * dloss/dd / d, then
// diag(rowsum M) - M with M = S + S^T, one block per row, then a GEMM with e) -> finish_loss,
// the one synchronisation. Sums are fixed trees: results repeat bitwise on a given GPU.
// Scratch: two N x N arrays (one without a gradient) and a few of N.
#pragma once

#include <cstdint>

#include "common/shapes/triplet.h"
#include "cuda/launch.h"
#include "cuda/loss_result.h"

namespace fastnn::cuda {

template <class T, class Label>
LossResult triplet_margin_loss(const T* embeddings, const Label* labels, T margin,
                               T* grad /* nullable */, const TripletShape& s, const Exec& exec);

}  // namespace fastnn::cuda
