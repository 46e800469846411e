// Host-side check of the CUDA GEMM's index maps (csrc/cuda/gemm_tiles.cuh), which CI can run
// without a GPU: for every tile shape the kernels use, each thread's share of a K slice loaded by
// DenseOperand (row-major matrices, either orientation, vector and scalar paths, partial edge
// tiles) or GatherOperand lands in tile[k][mn] exactly, and the threads' register blocks cover
// the C tile once. The device code is compiled as plain C++ with threadIdx simulated and run
// thread by thread (the loaders hold no barriers). Built and run by tests/test_cuda_index_maps.py.
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <vector>
uint3 fake_thread;
#define threadIdx fake_thread
#define __device__
#define __global__
#define __shared__ static
#define __syncthreads()
#include "cuda/gemm_tiles.cuh"
using namespace fastnn::cuda::detail;
int fails = 0;
template <class T> struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <class U> AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64)); }
  void deallocate(T* p, size_t) { free(p); }
  bool operator==(const AlignedAlloc&) const { return true; }
  bool operator!=(const AlignedAlloc&) const { return false; }
};

template <class T, int MN, int BK, int THREADS, bool K_IN_ROWS>
void check_dense(int64_t mn_total, int64_t k_total, int64_t mn0, int64_t k0, bool vec) {
  // matrix stored with K along rows (K x MN) or columns (MN x K), ld = its row length + 3 pad
  const int64_t rows = K_IN_ROWS ? k_total : mn_total, cols = K_IN_ROWS ? mn_total : k_total, ld = vec ? (cols + 4) / 4 * 4 : cols + 3;
  std::vector<T, AlignedAlloc<T>> m(rows * ld);
  for (int64_t r = 0; r < rows; ++r) for (int64_t c = 0; c < ld; ++c) m[r * ld + c] = T(r * 1000 + c);
  constexpr int PITCH = MN + 16 / sizeof(T);
  std::vector<T, AlignedAlloc<T>> tile(BK * PITCH, T(-1));
  for (int t = 0; t < THREADS; ++t) {
    fake_thread = {unsigned(t), 0, 0};
    DenseOperand<T, MN, BK, THREADS, K_IN_ROWS> op(m.data(), ld, mn0, mn_total, k0 - BK, k_total, vec);
    op.advance();  // exercise advance() once
    op.load();
    op.store(tile.data(), PITCH);
  }
  for (int k = 0; k < BK; ++k) for (int mn = 0; mn < MN; ++mn) {
    const int64_t gk = k0 + k, gmn = mn0 + mn;
    T want = 0;
    if (gk < k_total && gmn < mn_total) want = K_IN_ROWS ? m[gk * ld + gmn] : m[gmn * ld + gk];
    if (tile[k * PITCH + mn] != want) { if (fails++ < 5) printf("dense mismatch MN%d BK%d T%d KR%d at k%d mn%d\n", MN, BK, THREADS, K_IN_ROWS, k, mn); }
  }
}

struct Encode {
  double operator()(int64_t mn, int64_t k) const { return double(mn * 1000 + k); }
};
template <int MN, int BK, int THREADS, bool ALONG_K>
void check_gather(int64_t mn_total, int64_t k_total, int64_t mn0, int64_t k0) {
  constexpr int PITCH = MN + 2;
  std::vector<double> tile(BK * PITCH, -1);
  for (int t = 0; t < THREADS; ++t) {
    fake_thread = {unsigned(t), 0, 0};
    GatherOperand<double, MN, BK, THREADS, ALONG_K, Encode> op(Encode{}, mn0, mn_total, k0 - BK, k_total);
    op.advance();
    op.load();
    op.store(tile.data(), PITCH);
  }
  for (int k = 0; k < BK; ++k) for (int mn = 0; mn < MN; ++mn) {
    const int64_t gk = k0 + k, gmn = mn0 + mn;
    const double want = (gk < k_total && gmn < mn_total) ? double(gmn * 1000 + gk) : 0.0;
    if (tile[k * PITCH + mn] != want && fails++ < 5) printf("gather mismatch MN%d ALONG_K%d k%d mn%d\n", MN, ALONG_K, k, mn);
  }
}

template <int BM, int BN, int TM, int TN>
void check_cover() {
  constexpr int THREADS = (BM / TM) * (BN / TN);
  std::set<std::pair<int, int>> seen;
  for (int t = 0; t < THREADS; ++t) {
    fake_thread = {unsigned(t), 0, 0};
    using TT = ThreadTile<BM, BN, TM, TN>;
    for (int i = 0; i < TM; ++i) for (int j = 0; j < TN; ++j) {
      // the mainloop reads a_frag[g*RM + r] from As[..][g*(BM/GM) + ty*RM + r]: the same row
      const int row_read = (i / TT::RM) * (BM / TT::GM) + TT::ty() * TT::RM + i % TT::RM;
      if (row_read != TT::row(i)) fails++;
      seen.insert({TT::row(i), TT::col(j)});
    }
  }
  if ((int)seen.size() != BM * BN) { fails++; printf("cover %dx%d: %zu of %d\n", BM, BN, seen.size(), BM * BN); }
}

int main() {
  for (bool vec : {false, true})
    for (int64_t mn0 : {0, 64, 128}) for (int64_t k0 : {0, 8, 16, 24}) {
      check_dense<float, 128, 8, 256, false>(150, 29, mn0, k0, vec);
      check_dense<float, 128, 8, 256, true>(150, 29, mn0, k0, vec);
      check_dense<float, 64, 16, 256, false>(70, 37, mn0, k0, vec);
      check_dense<float, 64, 16, 256, true>(70, 37, mn0, k0, vec);
      check_dense<float, 32, 16, 64, false>(40, 20, mn0, k0, vec);
      check_dense<float, 32, 16, 64, true>(40, 20, mn0, k0, vec);
      check_dense<double, 64, 16, 256, false>(70, 37, mn0, k0, vec);
      check_dense<double, 64, 16, 256, true>(70, 37, mn0, k0, vec);
    }
  for (int64_t mn0 : {0, 32, 64}) for (int64_t k0 : {0, 16, 32}) {
    check_gather<32, 16, 64, false>(45, 40, mn0, k0);
    check_gather<32, 16, 64, true>(45, 40, mn0, k0);
    check_gather<64, 16, 256, false>(100, 40, mn0, k0);
    check_gather<64, 16, 256, true>(100, 40, mn0, k0);
  }
  check_cover<128, 128, 8, 8>();
  check_cover<64, 64, 4, 4>();
  check_cover<32, 32, 4, 4>();
  printf(fails ? "FAILED (%d)\n" : "tile loaders and thread tiles: ok\n", fails);
  return fails != 0;
}
