// The element rules of the triplet margin loss (cpu/triplet.h has the math), shared by the CPU and
// CUDA kernels so that both mine the same triplets and count the same ones as active.
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace fastnn {

// max(G[i, i] + G[j, j] - 2 G[i, j], 0): the squared distance from Gram-matrix entries, clamped
// because rounding can take it below 0 for close rows (its square root is the distance).
template <class T>
FASTNN_HOST_DEVICE inline T squared_distance_from_gram(T sq_i, T sq_j, T gram_ij) {
  const T d2 = sq_i + sq_j - T(2) * gram_ij;
  return d2 > T(0) ? d2 : T(0);
}

// (margin + d_ap) - d_an, PyTorch's order of operations.
template <class T>
FASTNN_HOST_DEVICE inline T triplet_hinge(T margin, T d_ap, T d_an) {
  return (margin + d_ap) - d_an;
}

// Whether a triplet contributes (its loss term is the hinge itself): h >= 0, and NaN too, so
// that a NaN in the embeddings shows in the loss instead of being dropped.
template <class T>
FASTNN_HOST_DEVICE inline bool triplet_active(T hinge) {
  return !(hinge < T(0));
}

// Batch-hard mining: does candidate j at distance d beat the best so far (best_j < 0: none)?
// The farthest positive and the closest negative win; equal distances go to the lower index, so
// the choice is the same in any scan or reduction order.
template <class T>
FASTNN_HOST_DEVICE inline bool farther_positive(T d, int64_t j, T best_d, int64_t best_j) {
  return best_j < 0 || d > best_d || (d == best_d && j < best_j);
}
template <class T>
FASTNN_HOST_DEVICE inline bool closer_negative(T d, int64_t j, T best_d, int64_t best_j) {
  return best_j < 0 || d < best_d || (d == best_d && j < best_j);
}

// dloss/dd[i, j] / d[i, j], the weight of e_i - e_j in the gradient; 0 where d = 0 (the
// subgradient chosen for a zero distance).
template <class T>
FASTNN_HOST_DEVICE inline T weight_over_distance(T dloss_dd, T d) {
  return d > T(0) ? dloss_dd / d : T(0);
}

}  // namespace fastnn
