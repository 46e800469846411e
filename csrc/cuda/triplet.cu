// Triplet margin loss; see triplet.h (the launches) and cpu/triplet.h (the math).
#include "cuda/triplet.h"

#include "common/triplet_rules.h"
#include "cuda/device.cuh"
#include "cuda/gemm.h"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void gram_diagonal_kernel(const T* gram, T* sq, int64_t n) {
  const GridStride gs = grid_stride();
  for (int64_t i = gs.first; i < n; i += gs.stride) sq[i] = gram[i * n + i];
}

template <class T>
__global__ void distances_kernel(T* gram, const T* sq, int64_t n) {
  const GridStride gs = grid_stride();
  for (int64_t idx = gs.first; idx < n * n; idx += gs.stride)
    gram[idx] = math::sqrt(squared_distance_from_gram(sq[idx / n], sq[idx % n], gram[idx]));
}

// The block's best candidate (d, j) (j < 0: none) by farther_positive (kFarthest) or
// closer_negative; every thread gets it. The rule is a total order (ties go to the lower index),
// so the tree finds what a scan in index order would.
template <bool kFarthest, class T>
__device__ inline void block_best(T& d, int64_t& j, T* shared_d, int64_t* shared_j) {
  auto take_better = [&](T other_d, int64_t other_j) {
    const bool better = kFarthest ? farther_positive(other_d, other_j, d, j) : closer_negative(other_d, other_j, d, j);
    if (other_j >= 0 && better) d = other_d, j = other_j;
  };
  auto warp_best = [&] {
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      const T other_d = __shfl_xor_sync(kFullMask, d, offset);
      const int64_t other_j = __shfl_xor_sync(kFullMask, j, offset);
      take_better(other_d, other_j);
    }
  };
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  warp_best();
  __syncthreads();  // the shared slots may still be read by a previous call
  if (lane == 0) shared_d[warp] = d, shared_j[warp] = j;
  __syncthreads();
  j = -1;
  if (lane < static_cast<int>(blockDim.x / kWarpSize)) d = shared_d[lane], j = shared_j[lane];
  warp_best();
}

// One block per anchor: its farthest positive and closest negative, its hinge, and its row of
// dloss/dd (+1 / -1 at the two when active, 0 elsewhere; dloss_dd may be null).
template <class T, class Label>
__global__ void batch_hard_kernel(const T* dist, const Label* labels, int64_t n, T margin, T* dloss_dd,
                                  double* anchor_loss, double* anchor_triplets) {
  __shared__ T shared_d[kWarpSize];
  __shared__ int64_t shared_j[kWarpSize];
  const int64_t a = blockIdx.x;
  const T* d = dist + a * n;
  const Label label = labels[a];
  T pos_d = T(0), neg_d = T(0);
  int64_t p = -1, q = -1;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    if (j == a) continue;
    if (labels[j] == label) {
      if (farther_positive(d[j], j, pos_d, p)) pos_d = d[j], p = j;
    } else if (closer_negative(d[j], j, neg_d, q)) {
      neg_d = d[j], q = j;
    }
  }
  block_best<true>(pos_d, p, shared_d, shared_j);
  block_best<false>(neg_d, q, shared_d, shared_j);
  const bool found = p >= 0 && q >= 0;
  const T h = found ? triplet_hinge(margin, pos_d, neg_d) : T(0);
  const bool active = found && triplet_active(h);
  if (dloss_dd)
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      dloss_dd[a * n + j] = active && j == p ? T(1) : active && j == q ? T(-1) : T(0);
  if (threadIdx.x == 0) {
    anchor_loss[a] = active ? static_cast<double>(h) : 0.0;
    anchor_triplets[a] = found ? 1.0 : 0.0;
  }
}

// One block per anchor, a thread per candidate j: a positive is paired with every negative (its
// active hinges summed, their count its dloss/dd), a negative with every positive (minus the
// count; only for the gradient).
template <class T, class Label>
__global__ void all_triplets_kernel(const T* dist, const Label* labels, int64_t n, T margin, T* dloss_dd,
                                    double* anchor_loss, double* anchor_triplets) {
  __shared__ double shared[kWarpSize];
  const int64_t a = blockIdx.x;
  const T* d = dist + a * n;
  const Label label = labels[a];
  double loss = 0, positives = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    int64_t active = 0;
    const bool positive = j != a && labels[j] == label;
    if (positive) {
      positives += 1;
      for (int64_t k = 0; k < n; ++k) {
        if (labels[k] == label) continue;
        const T h = triplet_hinge(margin, d[j], d[k]);
        if (triplet_active(h)) loss += h, ++active;
      }
    } else if (dloss_dd && labels[j] != label) {
      for (int64_t k = 0; k < n; ++k)
        if (k != a && labels[k] == label && triplet_active(triplet_hinge(margin, d[k], d[j]))) ++active;
    }
    if (dloss_dd) dloss_dd[a * n + j] = positive ? static_cast<T>(active) : -static_cast<T>(active);
  }
  loss = block_sum(loss, shared);
  positives = block_sum(positives, shared);
  if (threadIdx.x == 0) {
    anchor_loss[a] = loss;
    anchor_triplets[a] = positives * static_cast<double>(n - 1 - static_cast<int64_t>(positives));
  }
}

// One block: C = the triplet count, in a fixed order; scale = 1 / C (0 without triplets); the
// anchors' loss sums scaled by it, so that finish_loss's sum is the mean.
__global__ void triplet_scale_kernel(double* anchor_loss, const double* anchor_triplets, int64_t n,
                                     double* scale) {
  __shared__ double shared[kWarpSize];
  double total = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) total += anchor_triplets[i];
  total = block_sum(total, shared);
  const double s = total > 0 ? 1.0 / total : 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) anchor_loss[i] *= s;
  if (threadIdx.x == 0) *scale = s;
}

// dloss_dd becomes S = scale * dloss_dd / dist (0 where dist = 0).
template <class T>
__global__ void distance_weights_kernel(T* dloss_dd, const T* dist, int64_t n, const double* scale) {
  const T s = static_cast<T>(*scale);
  const GridStride gs = grid_stride();
  for (int64_t idx = gs.first; idx < n * n; idx += gs.stride)
    dloss_dd[idx] = weight_over_distance(dloss_dd[idx] * s, dist[idx]);
}

// One block per row i of out = diag(rowsum M) - M, M = S + S^T.
template <class T>
__global__ void gradient_matrix_kernel(const T* weights, T* out, int64_t n) {
  __shared__ double shared[kWarpSize];
  const int64_t i = blockIdx.x;
  double diagonal = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    if (j == i) continue;
    const T m = weights[i * n + j] + weights[j * n + i];
    diagonal += m;
    out[i * n + j] = -m;
  }
  diagonal = block_sum(diagonal, shared);
  if (threadIdx.x == 0) out[i * n + i] = static_cast<T>(diagonal);
}

}  // namespace

template <class T, class Label>
LossResult triplet_margin_loss(const T* embeddings, const Label* labels, T margin, T* grad,
                               const TripletShape& s, const Exec& exec) {
  const int64_t n = s.rows, pairs = n * n;
  const char* op = "triplet_margin_loss";
  auto* dist = static_cast<T*>(exec.scratch(pairs * sizeof(T), op));
  auto* sq = static_cast<T*>(exec.scratch(n * sizeof(T), op));
  auto* dloss_dd = grad ? static_cast<T*>(exec.scratch(pairs * sizeof(T), op)) : nullptr;
  auto* anchor_loss = static_cast<double*>(exec.scratch(n * sizeof(double), op));
  auto* anchor_triplets = static_cast<double*>(exec.scratch(n * sizeof(double), op));
  auto* scale = static_cast<double*>(exec.scratch(sizeof(double), op));
  LossScratch* result = new_loss_scratch(exec);

  gemm(GemmShape::dense(n, n, s.dims, false, true), T(1), embeddings, embeddings, T(0), dist,
       GemmEpilogue<T>{}, exec);
  FASTNN_LAUNCH(blocks_for(n, kThreads), kThreads, 0, exec.stream, gram_diagonal_kernel<T>)(dist, sq, n);
  check_launch("triplet gram_diagonal");
  FASTNN_LAUNCH(blocks_for(pairs, kThreads), kThreads, 0, exec.stream, distances_kernel<T>)(dist, sq, n);
  check_launch("triplet distances");
  const auto anchors = static_cast<unsigned int>(n);
  if (s.mining == TripletMining::batch_hard) {
    FASTNN_LAUNCH(anchors, kThreads, 0, exec.stream, batch_hard_kernel<T, Label>)(
        dist, labels, n, margin, dloss_dd, anchor_loss, anchor_triplets);
    check_launch("triplet batch_hard");
  } else {
    FASTNN_LAUNCH(anchors, kThreads, 0, exec.stream, all_triplets_kernel<T, Label>)(
        dist, labels, n, margin, dloss_dd, anchor_loss, anchor_triplets);
    check_launch("triplet all_triplets");
  }
  FASTNN_LAUNCH(1, 1024, 0, exec.stream, triplet_scale_kernel)(anchor_loss, anchor_triplets, n, scale);
  check_launch("triplet scale");
  if (grad) {
    FASTNN_LAUNCH(blocks_for(pairs, kThreads), kThreads, 0, exec.stream, distance_weights_kernel<T>)(
        dloss_dd, dist, n, scale);
    check_launch("triplet distance_weights");
    FASTNN_LAUNCH(anchors, kThreads, 0, exec.stream, gradient_matrix_kernel<T>)(dloss_dd, dist, n);
    check_launch("triplet gradient_matrix");
    gemm(GemmShape::dense(n, s.dims, n, false, false), T(1), dist, embeddings, T(0), grad,
         GemmEpilogue<T>{}, exec);
  }
  return finish_loss(anchor_loss, n, 1.0, result, exec);
}

#define FASTNN_INSTANTIATE(T, Label)                                                                     \
  template LossResult triplet_margin_loss<T, Label>(const T*, const Label*, T, T*, const TripletShape&, \
                                                    const Exec&);
FASTNN_INSTANTIATE(float, int32_t)
FASTNN_INSTANTIATE(float, int64_t)
FASTNN_INSTANTIATE(double, int32_t)
FASTNN_INSTANTIATE(double, int64_t)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cuda
