// TF32 tensor-core GEMM (float32 in and out, "high" matmul precision); see gemm.h.
//
// A BM x BN tile of C per block of WARPS_M x WARPS_N warps; each warp owns a (BM / WARPS_M) x
// (BN / WARPS_N) sub-tile made of 16 x 8 mma.sync.m16n8k8 results. K advances in BK = 16 deep
// slices through a 3-stage cp.async pipeline: two slices are in flight while one is multiplied.
//
// Shared-memory layouts follow the global layouts (cp.async copies 16-byte runs verbatim):
//   A stored (M, K): As[m][k], row pitch BK + 4    A stored (K, M) (trans_a): As[k][m], pitch BM + 8
//   B stored (K, N): Bs[k][n], row pitch BN + 8    B stored (N, K) (trans_b): Bs[n][k], pitch BK + 4
// The pitches make a warp's fragment reads conflict-free: with g = lane / 4 and q = lane % 4, a
// fragment element sits at g * pitch + q (pitch = 20: banks 20g + q mod 32 are distinct) or at
// q * pitch + g (pitch = 8 mod 32: banks 8q + g are distinct).
//
// mma.m16n8k8 (tf32) fragments, per lane (PTX ISA):
//   A (16 x 8, row): a0 = (g, q)  a1 = (g + 8, q)  a2 = (g, q + 4)  a3 = (g + 8, q + 4)
//   B (8 x 8, col):  b0 = (k = q, n = g)  b1 = (k = q + 4, n = g)
//   C (16 x 8):      c0 = (g, 2q)  c1 = (g, 2q + 1)  c2 = (g + 8, 2q)  c3 = (g + 8, 2q + 1)
// Operands are rounded to TF32 with cvt.rna (round to nearest, ties away), as cuBLAS does.
#include <atomic>
#include <cstdint>

#include "cuda/gemm.h"
#include "cuda/gemm_kernel.cuh"

namespace fastnn::cuda::detail {
namespace {

constexpr int kBK = 16;
constexpr int kStages = 3;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define FASTNN_TF32_DEVICE 1
#endif
// FASTNN_HOST_EMULATION: compiled as host C++ by tests/cuda_host (emulate.h), where the PTX below
// is replaced by emu:: functions with the same semantics (per-lane fragments of mma.sync
// exchanged across the emulated warp), so the tiling and fragment index math run on the CPU.
#if defined(FASTNN_TF32_DEVICE) || defined(FASTNN_HOST_EMULATION)
#define FASTNN_TF32_KERNEL 1
#endif

// 16 bytes global -> shared, asynchronously; `src_bytes` < 16 zero-fills the rest (0 reads
// nothing, so `src` need only be a valid address).
__device__ inline void cp_async_16(void* smem, const void* src, int src_bytes) {
#ifdef FASTNN_TF32_DEVICE
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
#elif defined(FASTNN_HOST_EMULATION)
  emu::cp_async_16(smem, src, src_bytes);
#endif
}

__device__ inline void cp_async_commit() {
#ifdef FASTNN_TF32_DEVICE
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N committed groups are still in flight.
template <int N>
__device__ inline void cp_async_wait() {
#ifdef FASTNN_TF32_DEVICE
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

__device__ inline uint32_t to_tf32(float x) {
  uint32_t r = 0;
#ifdef FASTNN_TF32_DEVICE
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#elif defined(FASTNN_HOST_EMULATION)
  r = emu::to_tf32(x);
#endif
  return r;
}

__device__ inline void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef FASTNN_TF32_DEVICE
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(FASTNN_HOST_EMULATION)
  emu::mma_m16n8k8_tf32(d, a, b);
#endif
}

// Queues the copy of a ROWS x COLS tile of a row-major matrix (leading dimension ld, a multiple
// of 4; 16-byte aligned base) into tile[r][c] with pitch tile_ld; zero outside rows x cols.
template <int ROWS, int COLS, int THREADS>
__device__ inline void copy_tile_async(float* tile, int tile_ld, const float* src, int64_t ld,
                                       int64_t row0, int64_t col0, int64_t rows, int64_t cols) {
  constexpr int RUNS_PER_ROW = COLS / 4;
  static_assert(COLS % 4 == 0 && (ROWS * RUNS_PER_ROW) % THREADS == 0, "tile must split evenly");
#pragma unroll
  for (int i = 0; i < ROWS * RUNS_PER_ROW / THREADS; ++i) {
    const int e = threadIdx.x + i * THREADS;
    const int r = e / RUNS_PER_ROW, c = (e % RUNS_PER_ROW) * 4;
    const int64_t gr = row0 + r, gc = col0 + c;
    int bytes = 0;
    const float* from = src;
    if (gr < rows && gc < cols) {
      bytes = cols - gc >= 4 ? 16 : static_cast<int>(cols - gc) * 4;
      from = src + gr * ld + gc;
    }
    cp_async_16(tile + r * tile_ld + c, from, bytes);
  }
}

template <int BM, int BN, bool TA, bool TB>
struct Tf32Layout {
  static constexpr int A_LD = TA ? BM + 8 : kBK + 4;
  static constexpr int A_STAGE = TA ? kBK * A_LD : BM * A_LD;
  static constexpr int B_LD = TB ? kBK + 4 : BN + 8;
  static constexpr int B_STAGE = TB ? BN * B_LD : kBK * B_LD;
  static constexpr int SMEM_BYTES = kStages * (A_STAGE + B_STAGE) * 4;
};

template <int BM, int BN, int WARPS_M, int WARPS_N, bool TA, bool TB>
__global__ void __launch_bounds__(WARPS_M * WARPS_N * 32)
gemm_tf32_kernel(GemmParams<float> p) {
#ifdef FASTNN_TF32_KERNEL
  constexpr int THREADS = WARPS_M * WARPS_N * 32;
  constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp sub-tile
  constexpr int MI = WM / 16, NI = WN / 8;             // mma tiles per warp
  using L = Tf32Layout<BM, BN, TA, TB>;
#ifdef FASTNN_HOST_EMULATION
  float* const smem = emu::dynamic_shared<float>();
#else
  extern __shared__ __align__(16) float smem[];
#endif
  float* const As = smem;
  float* const Bs = smem + kStages * L::A_STAGE;

  int tile_m, tile_n;
  tile_of_block(p.tiles_m, p.tiles_n, &tile_m, &tile_n);
  const int64_t m0 = static_cast<int64_t>(tile_m) * BM, n0 = static_cast<int64_t>(tile_n) * BN;
  int64_t k_begin, k_end;
  split_range(p, &k_begin, &k_end);

  auto load_stage = [&](int stage, int64_t k0) {
    float* a = As + stage * L::A_STAGE;
    float* b = Bs + stage * L::B_STAGE;
    if (TA) copy_tile_async<kBK, BM, THREADS>(a, L::A_LD, p.a, p.lda, k0, m0, k_end, p.M);
    else copy_tile_async<BM, kBK, THREADS>(a, L::A_LD, p.a, p.lda, m0, k0, p.M, k_end);
    if (TB) copy_tile_async<BN, kBK, THREADS>(b, L::B_LD, p.b, p.ldb, n0, k0, p.N, k_end);
    else copy_tile_async<kBK, BN, THREADS>(b, L::B_LD, p.b, p.ldb, k0, n0, k_end, p.N);
  };

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, q = lane % 4;
  const int warp_m0 = (warp % WARPS_M) * WM, warp_n0 = (warp / WARPS_M) * WN;

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

  const int64_t slices = (k_end - k_begin + kBK - 1) / kBK;
  // Prologue: the first kStages - 1 slices in flight. Every iteration commits one group (empty
  // past the end), so "all but kStages - 2 groups done" always means "slice s has landed".
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < slices) load_stage(st, k_begin + st * kBK);
    cp_async_commit();
  }
  for (int64_t s = 0; s < slices; ++s) {
    cp_async_wait<kStages - 2>();
    // Slice s is visible to all threads, and every thread is done with slice s - 1, whose
    // stage the load below refills.
    __syncthreads();
    const int64_t next = s + kStages - 1;
    if (next < slices) load_stage(static_cast<int>(next % kStages), k_begin + next * kBK);
    cp_async_commit();

    const float* a = As + (s % kStages) * L::A_STAGE;
    const float* b = Bs + (s % kStages) * L::B_STAGE;
    auto a_at = [&](int m, int k) { return TA ? a[k * L::A_LD + m] : a[m * L::A_LD + k]; };
    auto b_at = [&](int k, int n) { return TB ? b[n * L::B_LD + k] : b[k * L::B_LD + n]; };
#pragma unroll
    for (int ks = 0; ks < kBK; ks += 8) {
      uint32_t af[MI][4], bf[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int m = warp_m0 + i * 16 + g;
        af[i][0] = to_tf32(a_at(m, ks + q));
        af[i][1] = to_tf32(a_at(m + 8, ks + q));
        af[i][2] = to_tf32(a_at(m, ks + q + 4));
        af[i][3] = to_tf32(a_at(m + 8, ks + q + 4));
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int n = warp_n0 + j * 8 + g;
        bf[j][0] = to_tf32(b_at(ks + q, n));
        bf[j][1] = to_tf32(b_at(ks + q + 4, n));
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma_tf32(acc[i][j], af[i], bf[j]);
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t m = m0 + warp_m0 + i * 16 + g + (r / 2) * 8;
        const int64_t n = n0 + warp_n0 + j * 8 + 2 * q + (r % 2);
        gemm_store(p, m, n, acc[i][j][r]);
      }
#endif
}

template <int BM, int BN, int WARPS_M, int WARPS_N, bool TA, bool TB>
void launch_tf32(GemmParams<float> p, const Exec& exec) {
  using L = Tf32Layout<BM, BN, TA, TB>;
  auto kernel = gemm_tf32_kernel<BM, BN, WARPS_M, WARPS_N, TA, TB>;
  // More than 48 KiB of dynamic shared memory must be opted into, once per device.
  static std::atomic<uint64_t> configured_devices{0};
  const int device = current_device();
  const uint64_t bit = device < 64 ? uint64_t(1) << device : 0;
  if (!bit || !(configured_devices.load(std::memory_order_relaxed) & bit)) {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::SMEM_BYTES),
               "cudaFuncSetAttribute(gemm_tf32)");
    configured_devices.fetch_or(bit, std::memory_order_relaxed);
  }
  const int64_t tiles_m = (p.M + BM - 1) / BM, tiles_n = (p.N + BN - 1) / BN;
  p.tiles_m = static_cast<int>(tiles_m);
  p.tiles_n = static_cast<int>(tiles_n);
  const int splits = plan_split_k(p, tiles_m * tiles_n, kBK, exec);
  const dim3 grid(static_cast<unsigned>(tiles_m * tiles_n), 1, static_cast<unsigned>(splits));
  FASTNN_LAUNCH(grid, WARPS_M * WARPS_N * 32, L::SMEM_BYTES, exec.stream, kernel)(p);
  check_launch("gemm_tf32");
  if (splits > 1) reduce_splits(p, splits, exec);
}

template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tf32(const GemmParams<float>& p, bool ta, bool tb, const Exec& exec) {
  if (ta) {
    if (tb) launch_tf32<BM, BN, WARPS_M, WARPS_N, true, true>(p, exec);
    else launch_tf32<BM, BN, WARPS_M, WARPS_N, true, false>(p, exec);
  } else {
    if (tb) launch_tf32<BM, BN, WARPS_M, WARPS_N, false, true>(p, exec);
    else launch_tf32<BM, BN, WARPS_M, WARPS_N, false, false>(p, exec);
  }
}

}  // namespace

bool gemm_tf32(const GemmParams<float>& p, bool trans_a, bool trans_b, const Exec& exec) {
  if (!p.vec_a || !p.vec_b || compute_capability() < 80) return false;
  // 128 x 128 tiles (8 warps of 64 x 32) once they fill the GPU, else 64 x 64 (4 warps).
  const int64_t big_tiles = ((p.M + 127) / 128) * ((p.N + 127) / 128);
  if (big_tiles >= multiprocessor_count()) launch_tf32<128, 128, 2, 4>(p, trans_a, trans_b, exec);
  else launch_tf32<64, 64, 2, 2>(p, trans_a, trans_b, exec);
  return true;
}

}  // namespace fastnn::cuda::detail
