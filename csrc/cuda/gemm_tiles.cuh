// The tiled main loop shared by every CUDA-core GEMM-shaped kernel — the dense GEMM (gemm.cu)
// and the implicit-GEMM convolutions, which differ only in how they fetch operand tiles and
// where they write C.
//
// Layout, for a BM x BN tile of C computed by (BM/TM) x (BN/TN) threads over BK-deep slices
// of K:
//   shared: As[2][BK][BM + pad], Bs[2][BK][BN + pad] — op(A) and op(B) slices, K-major, so that
//           every multiply step reads contiguous runs of both (16-byte vector reads); the pad
//           keeps transposing stores free of bank conflicts. Two buffers: the global loads of
//           slice k+1 are in flight (in registers) while slice k is multiplied.
//   registers: each thread owns a TM x TN block of C, split into runs of 4 rows/columns that
//           lie BM/2 (BN/2) apart, so that a warp's vector reads hit distinct banks
//           (tile_row / tile_col give a thread's C coordinates).
// An operand ("A side" of BM rows, "B side" of BN columns) is any type with
//   load()        fetch the current K slice into registers (zero outside the matrix)
//   advance()     move to the next slice
//   store(tile)   write the registers into tile[BK][BM or BN + pad] (K-major)
// DenseOperand is the one for row-major matrices (either orientation).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fastnn::cuda::detail {

// 16 bytes of T: one vector load or store.
template <class T>
struct Vec16;
template <>
struct Vec16<float> {
  using type = float4;
};
template <>
struct Vec16<double> {
  using type = double2;
};

template <class T>
__device__ inline void copy16(T* dst, const T* src) {
  using V = typename Vec16<T>::type;
  *reinterpret_cast<V*>(dst) = *reinterpret_cast<const V*>(src);
}

// Moves a ROWS x COLS tile of a row-major matrix (leading dimension ld) through registers into
// shared memory, as tile[r][c] or (TRANSPOSE) tile[c][r]. Each thread handles PER_THREAD runs
// of V = 16 / sizeof(T) consecutive columns, ROW_STEP rows apart; consecutive threads take
// consecutive runs. The tile walks along K by advancing one pointer (no index math per slice).
template <class T, int ROWS, int COLS, int THREADS>
struct TileLoader {
  static constexpr int V = 16 / sizeof(T);
  static_assert(COLS % V == 0, "tile columns must be whole vectors");
  static constexpr int RUNS_PER_ROW = COLS / V;
  static_assert(THREADS % RUNS_PER_ROW == 0 && (ROWS * RUNS_PER_ROW) % THREADS == 0,
                "tile must split evenly over the threads");
  static constexpr int PER_THREAD = ROWS * RUNS_PER_ROW / THREADS;
  static constexpr int ROW_STEP = THREADS / RUNS_PER_ROW;

  T reg[PER_THREAD][V];
  const T* src;  // this thread's first run of the current slice (dereferenced only in bounds)
  int64_t ld, row, col;

  __device__ inline void start(const T* matrix, int64_t ld_, int64_t row0, int64_t col0) {
    ld = ld_;
    row = row0 + threadIdx.x / RUNS_PER_ROW;
    col = col0 + (threadIdx.x % RUNS_PER_ROW) * V;
    src = matrix + row * ld + col;
  }
  __device__ inline void advance_rows(int n) { row += n, src += n * ld; }
  __device__ inline void advance_cols(int n) { col += n, src += n; }

  // Zero outside rows x cols of the matrix.
  __device__ inline void load(int64_t rows, int64_t cols, bool vec) {
#pragma unroll
    for (int i = 0; i < PER_THREAD; ++i) {
      const int64_t r = row + i * ROW_STEP;
      const T* p = src + i * ROW_STEP * ld;
      if (r < rows && vec && col + V <= cols) {
        copy16(reg[i], p);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) reg[i][j] = (r < rows && col + j < cols) ? p[j] : T(0);
      }
    }
  }

  template <bool TRANSPOSE>
  __device__ inline void store(T* tile, int tile_ld) const {
#pragma unroll
    for (int i = 0; i < PER_THREAD; ++i) {
      const int r = threadIdx.x / RUNS_PER_ROW + i * ROW_STEP, c = (threadIdx.x % RUNS_PER_ROW) * V;
      if (TRANSPOSE) {
#pragma unroll
        for (int j = 0; j < V; ++j) tile[(c + j) * tile_ld + r] = reg[i][j];
      } else {
        copy16(tile + r * tile_ld + c, reg[i]);
      }
    }
  }
};

// n values from shared memory starting at a 16-byte aligned address (n = 2 or 4).
template <int N, class T>
__device__ inline void read_run(T* out, const T* src) {
  if constexpr (N * sizeof(T) % 16 == 0) {
#pragma unroll
    for (int j = 0; j < N; j += 16 / sizeof(T)) copy16(out + j, src + j);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) out[j] = src[j];
  }
}

// A row-major matrix (leading dimension ld) as one side of the product, MN = BM or BN wide:
// stored with K along its rows (K_IN_ROWS: A stored (K, M) or B stored (K, N)) or along its
// columns (A stored (M, K) or B stored (N, K)); the latter is transposed on its way to shared
// memory.
template <class T, int MN, int BK, int THREADS, bool K_IN_ROWS>
struct DenseOperand {
  TileLoader<T, K_IN_ROWS ? BK : MN, K_IN_ROWS ? MN : BK, THREADS> tile;
  int64_t k_end, mn_end;
  bool vec;

  // Rows/columns [mn0, mn0 + MN) of the MN axis (< mn_end), K from k0 (< k_end).
  __device__ inline DenseOperand(const T* matrix, int64_t ld, int64_t mn0, int64_t mn_end_, int64_t k0,
                                 int64_t k_end_, bool vec_)
      : k_end(k_end_), mn_end(mn_end_), vec(vec_) {
    if (K_IN_ROWS) tile.start(matrix, ld, k0, mn0);
    else tile.start(matrix, ld, mn0, k0);
  }
  __device__ inline void load() {
    if (K_IN_ROWS) tile.load(k_end, mn_end, vec);
    else tile.load(mn_end, k_end, vec);
  }
  __device__ inline void advance() {
    if (K_IN_ROWS) tile.advance_rows(BK);
    else tile.advance_cols(BK);
  }
  __device__ inline void store(T* smem, int pitch) const { tile.template store<!K_IN_ROWS>(smem, pitch); }
};

// An operand whose elements come from a functor: element(mn, k) for mn < mn_end, k < k_end
// (the functor handles its own zero padding) — the implicit-GEMM convolutions' gathers. Each
// thread fetches PER_THREAD scalars; ALONG_K puts consecutive threads on consecutive k (use it
// when memory is contiguous along K), otherwise on consecutive mn.
template <class T, int MN, int BK, int THREADS, bool ALONG_K, class Element>
struct GatherOperand {
  static constexpr int PER_THREAD = MN * BK / THREADS;
  static_assert(PER_THREAD * THREADS == MN * BK && THREADS % (ALONG_K ? BK : MN) == 0,
                "tile must split evenly over the threads");
  static constexpr int STEP = THREADS / (ALONG_K ? BK : MN);  // along the other axis

  Element element;
  int64_t mn0, k0, mn_end, k_end;
  T reg[PER_THREAD];

  __device__ inline GatherOperand(const Element& e, int64_t mn0_, int64_t mn_end_, int64_t k0_,
                                  int64_t k_end_)
      : element(e), mn0(mn0_), k0(k0_), mn_end(mn_end_), k_end(k_end_) {}

  __device__ inline int mn_of(int i) const {
    return ALONG_K ? static_cast<int>(threadIdx.x) / BK + i * STEP : static_cast<int>(threadIdx.x) % MN;
  }
  __device__ inline int k_of(int i) const {
    return ALONG_K ? static_cast<int>(threadIdx.x) % BK : static_cast<int>(threadIdx.x) / MN + i * STEP;
  }
  __device__ inline void load() {
#pragma unroll
    for (int i = 0; i < PER_THREAD; ++i) {
      const int64_t mn = mn0 + mn_of(i), k = k0 + k_of(i);
      reg[i] = (mn < mn_end && k < k_end) ? element(mn, k) : T(0);
    }
  }
  __device__ inline void advance() { k0 += BK; }
  __device__ inline void store(T* smem, int pitch) const {
#pragma unroll
    for (int i = 0; i < PER_THREAD; ++i) smem[k_of(i) * pitch + mn_of(i)] = reg[i];
  }
};

// The C coordinates (within the block's tile) of a thread's i-th row and j-th column.
template <int BM, int BN, int TM, int TN>
struct ThreadTile {
  static constexpr int RM = TM < 4 ? TM : 4, GM = TM / RM;  // rows in runs of RM, BM/GM apart
  static constexpr int RN = TN < 4 ? TN : 4, GN = TN / RN;
  __device__ static inline int tx() { return threadIdx.x % (BN / TN); }
  __device__ static inline int ty() { return threadIdx.x / (BN / TN); }
  __device__ static inline int row(int i) { return (i / RM) * (BM / GM) + ty() * RM + i % RM; }
  __device__ static inline int col(int j) { return (j / RN) * (BN / GN) + tx() * RN + j % RN; }
};

// acc (TM x TN per thread) = the block's BM x BN tile of op(A) @ op(B) over `slices` slices of
// BK, operands fetched by a and b (see the top of this file). Call from every thread.
template <class T, int BM, int BN, int BK, int TM, int TN, class OperandA, class OperandB>
__device__ inline void tiled_mainloop(OperandA& a, OperandB& b, int64_t slices, T (&acc)[TM][TN]) {
  using TT = ThreadTile<BM, BN, TM, TN>;
  constexpr int PAD = 16 / sizeof(T);
  __shared__ __align__(16) T As[2][BK][BM + PAD];
  __shared__ __align__(16) T Bs[2][BK][BN + PAD];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
  if (slices <= 0) return;

  a.load();
  b.load();
  a.store(&As[0][0][0], BM + PAD);
  b.store(&Bs[0][0][0], BN + PAD);
  __syncthreads();
  const int ty = TT::ty(), tx = TT::tx();
  for (int64_t s = 0; s < slices; ++s) {
    const int buf = static_cast<int>(s & 1);
    const bool more = s + 1 < slices;
    if (more) {  // in flight during the multiply below
      a.advance();
      b.advance();
      a.load();
      b.load();
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T a_frag[TM], b_frag[TN];
#pragma unroll
      for (int g = 0; g < TT::GM; ++g)
        read_run<TT::RM>(a_frag + g * TT::RM, &As[buf][kk][g * (BM / TT::GM) + ty * TT::RM]);
#pragma unroll
      for (int g = 0; g < TT::GN; ++g)
        read_run<TT::RN>(b_frag + g * TT::RN, &Bs[buf][kk][g * (BN / TT::GN) + tx * TT::RN]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(a_frag[i], b_frag[j], acc[i][j]);
    }
    if (more) {
      a.store(&As[buf ^ 1][0][0], BM + PAD);
      b.store(&Bs[buf ^ 1][0][0], BN + PAD);
    }
    // One barrier per slice: it orders this slice's reads of `buf` before the next slice's
    // writes into it, and the writes into buf ^ 1 before the next slice reads them.
    __syncthreads();
  }
}

}  // namespace fastnn::cuda::detail
