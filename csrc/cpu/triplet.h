// Triplet margin loss over a batch of embeddings, with batch-hard or all-triplet mining.
//   e: (N, D) embeddings, one row per sample; labels: (N,); grad: (N, D) or null.
//
// Distances (Euclidean, p = 2) from one GEMM, G = e e^T (N, N):
//   d[i, j] = sqrt(max(G[i, i] + G[j, j] - 2 G[i, j], 0))
// (d[i, i] is exactly 0, since both squared norms are read from G's diagonal). Where d = 0 its
// gradient is taken as 0 (the subgradient PyTorch's norm uses at 0, so with eps = 0 the two agree);
// elsewhere dd[i, j]/de_i = (e_i - e_j) / d[i, j].
//
// A triplet (a, p, n): labels[p] == labels[a], p != a, labels[n] != labels[a], with the hinge
//   h(a, p, n) = (margin + d[a, p]) - d[a, n]   (in the input's precision, PyTorch's order)
// and loss term max(h, 0). It counts as active when h >= 0 (PyTorch's clamp_min passes the
// gradient at 0 too).
//   batch_hard (Hermans, Beyer & Leibe 2017): each anchor a takes its farthest positive and its
//     closest negative (on equal distances the lower index); loss = mean over the anchors that
//     have both of max(h, 0).
//   all: loss = mean over every triplet of max(h, 0), the mean of PyTorch's TripletMarginLoss
//     (p = 2, eps = 0) over the enumerated triplets. The triplets are never listed: each
//     (a, p) pair loops over all n.
// A batch without a triplet has loss 0 and a zero gradient.
//
// Backward, with C the triplet (or anchor) count: W[a, j] = dloss/dd[a, j] = (number of active
// triplets of anchor a using j as positive, minus those using j as negative) / C; then
// S = W / d (0 where d = 0), M = S + S^T, and
//   grad = (diag(rowsum M) - M) @ e        (one GEMM; grad is written, not accumulated)
// since dloss/de_i = sum_j M[i, j] (e_i - e_j).
//
// Threads split anchors; each anchor's terms are summed in order and the anchors' sums in anchor
// order, and the GEMMs are bitwise reproducible: the result does not depend on the thread count.
// Workspace: two N x N arrays (one without a gradient).
#pragma once

#include <cstdint>

#include "common/loss_result.h"
#include "common/shapes/triplet.h"
#include "cpu/exec.h"

namespace fastnn::cpu {

// Returns the mean loss (accumulated in double); labels are int32 or int64.
template <class T, class Label>
LossResult triplet_margin_loss(const T* embeddings, const Label* labels, T margin,
                               T* grad /* nullable */, const TripletShape& s, const Exec&);

}  // namespace fastnn::cpu
