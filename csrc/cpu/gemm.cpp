// Cache-blocked, packed GEMM over register-blocked micro-kernels (see gemm.h for the math).
//
// Threads split C into disjoint chunks (on micro-tile boundaries, taken dynamically; see
// choose_chunks); each runs the serial loop nest below on its chunk with its own packing
// buffers, so there are no barriers and no shared writes.
//
// The serial loop nest, for a chunk of C:
//   for ic in M step MC:            A block (MC x KC), packed or read in place
//     for pc in K step KC:
//       for jc in N step NC:        B block (KC x NC) packed: NR-column panels, stays in L2
//         for ir in MC step MR:     one A micro-panel (MR x KC) stays in L1 ...
//           for jr in NC step NR:   ... while the B micro-panels stream past it from L2
//             micro-kernel: MR x NR tile of C
// Packing copies op(B) (and op(A) when packed) in the order the micro-kernel reads them, a
// block at a time so the source streams through memory in order; transposes cost one pass and
// every inner load is unit-stride. Row-major op(A) is not packed: the micro-kernel reads its MR
// rows in place (gemm_kernel.h), which the prefetchers follow, so no thread repeats a packing
// pass over A; only a ragged last row panel may be packed (unless a shorter kernel covers its
// rows exactly), and op(A) stored transposed with long rows (each k step on another page) is
// packed as a whole.
//
// Only the first K block applies the caller's beta (later ones accumulate with beta = 1), and
// only the last applies the epilogue. Each C element is summed over the same K blocks in the
// same order whatever the thread grid, so results do not depend on the thread count.
#include "cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>

#include "common/threading.h"
#include "cpu/gemm_kernel.h"

namespace fastnn::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// M * N * K, saturating (it only sizes the thread team and its chunks).
int64_t multiply_adds(const GemmShape& s) {
  const double madds = static_cast<double>(s.M) * static_cast<double>(s.N) * s.K;
  return madds < 4e18 ? static_cast<int64_t>(madds) : INT64_C(4000000000000000000);
}

// A grow-only, cache-line-aligned buffer. One per thread and purpose (thread_local), kept
// across calls: the OpenMP pool's threads persist, so a training loop packs into the same
// memory every step.
class Workspace {
 public:
  ~Workspace() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > bytes_) {
      std::free(data_);
      bytes_ = round_up(static_cast<int64_t>(bytes), 4096);
      data_ = std::aligned_alloc(64, bytes_);
      if (!data_) {
        bytes_ = 0;
        throw std::bad_alloc();
      }
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

enum WorkspaceSlot { kPackedA, kPackedB, kEdgeA, kSlots };

template <class T>
T* thread_workspace(WorkspaceSlot slot, int64_t elements) {
  thread_local Workspace workspaces[kSlots];
  return static_cast<T*>(workspaces[slot].get(static_cast<size_t>(elements) * sizeof(T)));
}

// Everything a thread needs to compute its block of C.
template <class T>
struct GemmProblem {
  const GemmShape& s;
  T alpha, beta;
  const T* a;
  const T* b;
  T* c;
  const GemmEpilogue<T>& epilogue;
  const GemmKernelInfo<T>& info;
  GemmMicroTile<T> tile;
  const int64_t* a_k_offsets;  // gemm_indirect_a's A, or null
  const T* b_prepacked;         // gemm_with_packed_b's B (gemm_pack_b's layout), or null
  const GemmRowSegments* segments;  // gemm_indirect_a's row segments, or null

  // Where row `row` of an indirect A starts.
  int64_t a_row_offset(int64_t row) const {
    return segments ? row / segments->length * segments->pitch + row % segments->length : row;
  }
};

// Packs `count` rows of op(A) (or columns of op(B)) from element0 on, over K lines
// [p0, p0 + kc), into consecutive panels of `width` (gemm_kernel.h), from a matrix stored with
// leading dimension ld. When the panels' lines (fixed k) are the stored rows it is a row copy,
// otherwise a transpose.
template <class T>
void pack_panels(const GemmKernelInfo<T>& info, const T* m, int64_t ld, bool lines_are_rows,
                 int64_t element0, int64_t count, int64_t p0, int64_t kc, int width, T* out) {
  if (lines_are_rows) {
    info.pack_rows(m + p0 * ld + element0, ld, count, kc, width, out);
  } else {
    info.pack_transposed(m + element0 * ld + p0, ld, count, kc, width, out);
  }
}

// Rows [i0, i0 + rows) of op(A) over K [p0, p0 + kc): panel q (rows i0 + q * MR on) at
// out + q * MR * kc, its element (i, p) at [p * MR + i - i0 - q * MR].
template <class T>
void pack_a(const GemmProblem<T>& pr, int64_t i0, int64_t rows, int64_t p0, int64_t kc, T* out) {
  pack_panels(pr.info, pr.a, pr.s.lda, pr.s.trans_a, i0, rows, p0, kc, pr.tile.mr, out);
}

// Columns [j0, j0 + cols) of op(B) over K [p0, p0 + kc), in NR-column panels likewise.
template <class T>
void pack_b(const GemmProblem<T>& pr, int64_t p0, int64_t kc, int64_t j0, int64_t cols, T* out) {
  pack_panels(pr.info, pr.b, pr.s.ldb, !pr.s.trans_b, j0, cols, p0, kc, pr.tile.nr, out);
}

// Equal K blocks: K = 512 runs as 2 x 256, not 384 + a thin 128 that pays C's round trip.
template <class T>
int64_t k_block(int64_t K, const GemmKernelInfo<T>& info) {
  return ceil_div(K, ceil_div(K, info.kc));
}

// The kernel for a row panel of m_valid rows: the tile's, or a shorter one for a ragged edge.
template <class T>
GemmRowKernel<T> kernel_for_rows(const GemmMicroTile<T>& tile, int m_valid) {
  for (const GemmRowKernel<T>& shorter : tile.shorter)
    if (m_valid <= shorter.mr) return shorter;
  return {tile.mr, tile.kernel};
}

// Reads op(A) in place instead of packing it. Row-major op(A) streams MR rows at once, which the
// prefetchers follow and which saves the packing pass (and its repetition per thread). Stored
// transposed, each k step touches a different row of A, so it is read in place only when its
// rows are short (few pages per micro-panel) or all of it fits well within L2 (a convolution's
// column matrix, just written: the micro-panels' lines are then L2 hits, and packing would
// cost more than the product).
template <class T>
bool read_a_in_place(const GemmShape& s) {
  constexpr int64_t kL2Resident = int64_t{1} << 20;
  const int64_t row_bytes = s.lda * static_cast<int64_t>(sizeof(T));
  return !s.trans_a || row_bytes <= 2048 || s.K * row_bytes <= kL2Resident;
}

// Reads op(B) in place instead of packing it: only a few short rows (a classifier's 10 outputs)
// that the narrow tile loads with one masked vector per k step, straight from L1.
template <class T>
bool read_b_in_place(const GemmShape& s, const GemmMicroTile<T>& tile) {
  return !s.trans_b && s.N <= tile.nr && s.ldb * static_cast<int64_t>(sizeof(T)) <= 64;
}

// The serial loop nest (file comment) over C[m0:m1, n0:n1].
template <class T>
void gemm_block(const GemmProblem<T>& pr, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const GemmShape& s = pr.s;
  const int mr = pr.tile.mr, nr = pr.tile.nr;
  const int64_t kc_max = k_block(s.K, pr.info);
  // (Row segments: a multiple of the tile, which divides the segments, so tiles never straddle.)
  const int64_t mc_max = std::min<int64_t>(pr.info.mc / mr * mr, round_up(m1 - m0, mr));
  const int64_t nc_max = std::min<int64_t>(pr.info.nc, round_up(n1 - n0, nr));
  const bool indirect = pr.a_k_offsets != nullptr;
  const bool in_place = indirect || read_a_in_place<T>(s);
  const bool b_prepacked = pr.b_prepacked != nullptr;
  const bool b_in_place = !b_prepacked && read_b_in_place(s, pr.tile);
  T* const b_packed =
      b_in_place || b_prepacked ? nullptr : thread_workspace<T>(kPackedB, kc_max * nc_max);
  T* const a_packed =
      thread_workspace<T>(in_place ? kEdgeA : kPackedA, (in_place ? mr : mc_max) * kc_max);
  // In place, A(i, p) is at a_origin[i * rs + p * cs] (one of them 1).
  const int64_t rs = s.trans_a ? 1 : s.lda, cs = s.trans_a ? s.lda : 1;
  const GemmEpilogue<T>& ep = pr.epilogue;

  for (int64_t ic = m0; ic < m1; ic += mc_max) {
    const int64_t mc = std::min(mc_max, m1 - ic);
    // Read in place: all row panels whose rows exist (a ragged last one too, when a shorter
    // kernel fits its rows exactly); the rest is packed.
    const int64_t ragged = mc % mr;
    // (An indirect A is never packed: its caller keeps the rows past M readable.)
    const bool ragged_in_place =
        ragged && (indirect || kernel_for_rows(pr.tile, ragged).mr == ragged);
    const int64_t in_place_rows = !in_place ? 0 : ragged_in_place ? mc : mc - ragged;
    for (int64_t pc = 0; pc < s.K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, s.K - pc);
      const bool first = pc == 0, last = pc + kc == s.K;
      if (in_place_rows < mc) pack_a(pr, ic + in_place_rows, mc - in_place_rows, pc, kc, a_packed);
      for (int64_t jc = n0; jc < n1; jc += nc_max) {
        const int64_t nc = std::min(nc_max, n1 - jc);
        // This block's panels: packed now, or already (gemm_pack_b: K block pc holds all N
        // columns, panel by panel, so columns jc... start jc * kc into it).
        const T* b_block = b_packed;
        if (b_prepacked) {
          b_block = pr.b_prepacked + pc * round_up(s.N, nr) + jc * kc;
        } else if (!b_in_place) {
          pack_b(pr, pc, kc, jc, nc, b_packed);
        }
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int64_t row = ic + ir;
          const T* a_tile;
          int64_t a_rs = 1, a_cs = mr;
          const int64_t* a_offsets = nullptr;
          if (indirect && s.trans_a) {  // columns are runs: A(i, p) = a[i + offsets[p]]
            a_tile = pr.a + pr.a_row_offset(row), a_offsets = pr.a_k_offsets + pc;
          } else if (indirect) {  // rows in place, columns by offsets
            a_tile = pr.a + row * s.lda, a_rs = s.lda, a_offsets = pr.a_k_offsets + pc;
          } else if (ir < in_place_rows) {
            a_tile = pr.a + row * rs + pc * cs, a_rs = rs, a_cs = cs;
          } else {
            a_tile = a_packed + (ir - in_place_rows) * kc;
          }
          GemmTileOutput<T> out{};
          out.ldc = s.ldc;
          out.m_valid = static_cast<int>(std::min<int64_t>(mr, mc - ir));
          const GemmMicroKernel<T> kernel = kernel_for_rows(pr.tile, out.m_valid).kernel;
          out.alpha = pr.alpha;
          out.beta = first ? pr.beta : T(1);
          out.bias_row = last && ep.bias_per_row ? ep.bias_per_row + row : nullptr;
          out.relu = last && ep.relu;
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int64_t col = jc + jr;
            out.c = pr.c + row * s.ldc + col;
            out.n_valid = static_cast<int>(std::min<int64_t>(nr, nc - jr));
            out.bias_col = last && ep.bias_per_col ? ep.bias_per_col + col : nullptr;
            if (b_in_place) {
              kernel(kc, a_tile, a_rs, a_cs, a_offsets, pr.b + pc * s.ldb + col, s.ldb, out);
            } else {
              kernel(kc, a_tile, a_rs, a_cs, a_offsets, b_block + jr * kc, nr, out);
            }
          }
        }
      }
    }
  }
}

// C = epilogue(beta * C) when the product term vanishes (K == 0 or alpha == 0).
template <class T>
void epilogue_only(const GemmShape& s, T beta, T* c, const GemmEpilogue<T>& ep, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t i = 0; i < s.M; ++i) {
    T* row = c + i * s.ldc;
    const T row_bias = ep.bias_per_row ? ep.bias_per_row[i] : T(0);
    for (int64_t j = 0; j < s.N; ++j) {
      T v = beta == T(0) ? T(0) : beta * row[j];
      if (ep.bias_per_col) v += ep.bias_per_col[j];
      v += row_bias;
      if (ep.relu) v = std::max(v, T(0));
      row[j] = v;
    }
  }
}

// C is cut into a cm x cn grid of chunks on tile boundaries, which the team's threads take in
// turn (dynamic schedule): a thread that the OS pauses (other load on a shared machine) holds up
// only its current chunk. Chunks split N first: with op(A) read in place, chunks over disjoint
// columns repeat no packing at all, while each extra chunk over M repacks its columns of B.
// A packed A turns the preference around.
struct ChunkGrid {
  int64_t cm = 1, cn = 1;
  int64_t chunks() const { return cm * cn; }
};

ChunkGrid choose_chunks(const GemmShape& s, int mr, int nr, bool a_in_place, int threads) {
  ChunkGrid grid;
  if (threads == 1) return grid;
  // Up to two chunks per thread, each at least ~1e6 multiply-adds (several microseconds) and,
  // where the dimension allows, 4 panels wide, so that each A micro-panel in L1 meets several
  // B panels. Splitting the other dimension repeats packing, so it happens only when the
  // first one cannot give every thread a chunk.
  const int64_t madds = multiply_adds(s);
  const int64_t wanted = std::max<int64_t>(threads, std::min<int64_t>(2 * threads, madds >> 20));
  const int64_t m_tiles = ceil_div(s.M, mr), n_tiles = ceil_div(s.N, nr);
  const int64_t first_tiles = a_in_place ? n_tiles : m_tiles;
  const int64_t second_tiles = a_in_place ? m_tiles : n_tiles;
  const int64_t first =
      std::min({wanted, std::max<int64_t>(threads, first_tiles / 4), first_tiles});
  const int64_t second = first >= threads ? 1 : std::min(second_tiles, ceil_div(wanted, first));
  grid.cn = a_in_place ? first : second;
  grid.cm = a_in_place ? second : first;
  return grid;
}

// Splits `extent` into `parts` runs of whole tiles, as equal as they come; part `k`'s range.
void split_range(int64_t extent, int tile, int parts, int k, int64_t* begin, int64_t* end) {
  const int64_t tiles = ceil_div(extent, tile);
  const int64_t base = tiles / parts, extra = tiles % parts;
  const int64_t t0 = k * base + std::min<int64_t>(k, extra);
  const int64_t t1 = t0 + base + (k < extra ? 1 : 0);
  *begin = std::min(extent, t0 * tile);
  *end = std::min(extent, t1 * tile);
}

// The register tile for products with N columns.
template <class T>
const GemmMicroTile<T>& tile_for(const GemmKernelInfo<T>& info, int64_t N) {
  return N <= info.narrow.nr ? info.narrow : info.wide;
}

// The row tile's kernel for segments of `length` in a product with N columns: its full height
// or its larger shorter variant, whichever divides length (the first that does); mr 0 where
// neither does, where the table's row tile is just its wide one, or where N takes the narrow
// tile (B is then packed in the narrow tile's panels: tile_for, gemm_packed_b_size).
template <class T>
GemmRowKernel<T> row_kernel(const GemmKernelInfo<T>& info, int64_t length, int64_t N) {
  const GemmMicroTile<T>& rows = info.rows;
  if (rows.mr == info.wide.mr || length <= 0 || tile_for(info, N).nr != rows.nr)
    return {0, nullptr};
  if (length % rows.mr == 0) return {rows.mr, rows.kernel};
  if (length % rows.shorter[1].mr == 0) return rows.shorter[1];
  return {0, nullptr};
}

// gemm and gemm_indirect_a: the thread grid over C, then the serial loop nest per chunk.
template <class T>
void run_gemm(const GemmShape& s, T alpha, const T* a, const int64_t* a_k_offsets, const T* b,
              const T* b_prepacked, T beta, T* c, const GemmEpilogue<T>& epilogue,
              GemmThreads threads, const GemmRowSegments* segments = nullptr) {
  if (s.M == 0 || s.N == 0) return;
  const bool team = threads == GemmThreads::team;
  if (s.K == 0 || alpha == T(0)) {
    epilogue_only(s, beta, c, epilogue, team ? threads_for(s.M * s.N) : 1);
    return;
  }
  const GemmKernelInfo<T>& info = gemm_kernel_info<T>();
  GemmMicroTile<T> tile = tile_for(info, s.N);
  if (segments) {  // one kernel of exactly the segments' tile height, for every row panel
    const GemmRowKernel<T> k = row_kernel(info, segments->length, s.N);
    // The caller asked gemm_row_tile first; anything else is a bug in fastnn, not bad input.
    if (k.mr == 0 || s.M % segments->length != 0)
      throw std::logic_error("gemm_indirect_a: row segments that no tile fits");
    tile = {k.mr, info.rows.nr, k.kernel, {k, k}};
  }
  const GemmProblem<T> pr{s,    alpha,       beta,         a,       b, c, epilogue, info,
                          tile, a_k_offsets, b_prepacked, segments};
  const int mr = pr.tile.mr, nr = pr.tile.nr;

  // Waking the team costs a microsecond or two while its threads still spin from the last
  // call: worth it from ~6e4 multiply-adds (~1 us of work) per thread.
  const int max_threads = team ? threads_for(multiply_adds(s), 1 << 16) : 1;
  const bool a_in_place = a_k_offsets != nullptr || read_a_in_place<T>(s);
  const ChunkGrid grid = choose_chunks(s, mr, nr, a_in_place, max_threads);
  const int nt = static_cast<int>(std::min<int64_t>(max_threads, grid.chunks()));
  if (nt == 1) {
    gemm_block(pr, 0, s.M, 0, s.N);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t chunk = 0; chunk < grid.chunks(); ++chunk) {
    int64_t m0, m1, n0, n1;
    split_range(s.M, mr, grid.cm, chunk / grid.cn, &m0, &m1);
    split_range(s.N, nr, grid.cn, chunk % grid.cn, &n0, &n1);
    if (m0 < m1 && n0 < n1) gemm_block(pr, m0, m1, n0, n1);
  }
}

}  // namespace

template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c,
          const GemmEpilogue<T>& epilogue, GemmThreads threads) {
  run_gemm<T>(s, alpha, a, nullptr, b, nullptr, beta, c, epilogue, threads);
}

template <class T>
void gemm_indirect_a(int64_t M, int64_t N, int64_t K, const T* a, const int64_t* a_k_offsets,
                     const T* packed_b, T beta, T* c, int64_t ldc,
                     const GemmEpilogue<T>& epilogue, GemmThreads threads,
                     const GemmRowSegments* segments) {
  GemmShape s = GemmShape::dense(M, N, K, true, false);
  s.lda = 0, s.ldb = 0, s.ldc = ldc;  // A's columns are where the offsets say; B is packed
  run_gemm<T>(s, T(1), a, a_k_offsets, nullptr, packed_b, beta, c, epilogue, threads, segments);
}

template <class T>
int gemm_row_tile(int64_t length, int64_t N) {
  return row_kernel(gemm_kernel_info<T>(), length, N).mr;
}

template <class T>
int64_t gemm_packed_b_size(int64_t K, int64_t N) {
  return K * round_up(N, tile_for(gemm_kernel_info<T>(), N).nr);
}

template <class T>
void gemm_pack_b(int64_t K, int64_t N, const T* b, bool trans_b, int64_t ldb, T* packed) {
  const GemmKernelInfo<T>& info = gemm_kernel_info<T>();
  const int nr = tile_for(info, N).nr;
  const int64_t kc_max = k_block(K, info);
  for (int64_t pc = 0; pc < K; pc += kc_max)
    pack_panels(info, b, ldb, !trans_b, 0, N, pc, std::min(kc_max, K - pc), nr,
                packed + pc * round_up(N, nr));
}

template <class T>
void gemm_with_packed_b(const GemmShape& s, const T* a, const T* packed_b, T beta, T* c,
                        const GemmEpilogue<T>& epilogue, GemmThreads threads,
                        const int64_t* a_k_offsets) {
  if (a_k_offsets && (s.trans_a || s.lda <= 1))
    throw std::logic_error("gemm_with_packed_b: offsets need row-major A with lda > 1");
  run_gemm<T>(s, T(1), a, a_k_offsets, nullptr, packed_b, beta, c, epilogue, threads);
}

template <class T>
void transpose(const T* src, int64_t ld, int64_t rows, int64_t cols, T* out, int64_t ld_out) {
  gemm_kernel_info<T>().transpose(src, ld, rows, cols, out, ld_out);
}

template int64_t gemm_packed_b_size<float>(int64_t, int64_t);
template int64_t gemm_packed_b_size<double>(int64_t, int64_t);
template void gemm_pack_b<float>(int64_t, int64_t, const float*, bool, int64_t, float*);
template void gemm_pack_b<double>(int64_t, int64_t, const double*, bool, int64_t, double*);
template void gemm_with_packed_b<float>(const GemmShape&, const float*, const float*, float,
                                        float*, const GemmEpilogue<float>&, GemmThreads,
                                        const int64_t*);
template void gemm_with_packed_b<double>(const GemmShape&, const double*, const double*, double,
                                         double*, const GemmEpilogue<double>&, GemmThreads,
                                         const int64_t*);
template void transpose<float>(const float*, int64_t, int64_t, int64_t, float*, int64_t);
template void transpose<double>(const double*, int64_t, int64_t, int64_t, double*, int64_t);
template void gemm<float>(const GemmShape&, float, const float*, const float*, float, float*,
                          const GemmEpilogue<float>&, GemmThreads);
template void gemm<double>(const GemmShape&, double, const double*, const double*, double,
                           double*, const GemmEpilogue<double>&, GemmThreads);
template void gemm_indirect_a<float>(int64_t, int64_t, int64_t, const float*, const int64_t*,
                                     const float*, float, float*, int64_t,
                                     const GemmEpilogue<float>&, GemmThreads,
                                     const GemmRowSegments*);
template int gemm_row_tile<float>(int64_t, int64_t);
template int gemm_row_tile<double>(int64_t, int64_t);
template void gemm_indirect_a<double>(int64_t, int64_t, int64_t, const double*, const int64_t*,
                                      const double*, double, double*, int64_t,
                                      const GemmEpilogue<double>&, GemmThreads,
                                      const GemmRowSegments*);

}  // namespace fastnn::cpu
