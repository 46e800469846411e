// Cache-blocked, packed GEMM (the BLIS loop nest) over a register-blocked micro-kernel.
//
//   for jc in N step NC:            B block (KC x NC) packed once, shared by all threads
//     for pc in K step KC:
//       for ic in M step MC:        each thread packs its own A block (MC x KC)
//         for jr in NC step NR:     micro-kernel: MR x NR tile of C from packed panels
//           for ir in MC step MR:
//
// Packing copies op(A) and op(B) into contiguous panels in the order the micro-kernel reads
// them, so transposes cost nothing extra and every inner load is unit-stride. Only the first
// K block applies the caller's beta; later K blocks accumulate (beta = 1). Threads split the
// (ic, jr) tile grid by a fixed rule, and each C tile sums over K in a fixed order, so results
// do not depend on scheduling.
#include "cpu/gemm.h"

#include <algorithm>
#include <vector>

#include "common/threading.h"
#include "cpu/gemm_kernel.h"

namespace fastnn::cpu {
namespace {

// Packs rows [i0, i0 + mc) x cols [p0, p0 + kc) of op(A) into MR-row panels: panel r holds
// element (i, p) at [p * MR + i]; rows past M are zero.
template <class T>
void pack_a(const GemmShape& s, const T* a, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
            int mr, T* out) {
  for (int64_t ir = 0; ir < mc; ir += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ir);
    T* panel = out + ir * kc;
    for (int64_t p = 0; p < kc; ++p) {
      T* dst = panel + p * mr;
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t row = i0 + ir + i, col = p0 + p;
        dst[i] = s.trans_a ? a[col * s.lda + row] : a[row * s.lda + col];
      }
      for (int64_t i = rows; i < mr; ++i) dst[i] = T(0);
    }
  }
}

// Packs rows [p0, p0 + kc) x cols [j0 + jr_begin, j0 + jr_end) of op(B) into NR-column panels:
// panel q holds element (p, j) at [p * NR + j]; columns past N are zero.
template <class T>
void pack_b_panels(const GemmShape& s, const T* b, int64_t p0, int64_t kc, int64_t j0,
                   int64_t nc, int nr, int64_t panel_begin, int64_t panel_end, T* out) {
  for (int64_t q = panel_begin; q < panel_end; ++q) {
    const int64_t jr = q * nr;
    const int64_t cols = std::min<int64_t>(nr, nc - jr);
    T* panel = out + jr * kc;
    for (int64_t p = 0; p < kc; ++p) {
      T* dst = panel + p * nr;
      const int64_t row = p0 + p;
      if (!s.trans_b) {
        const T* src = b + row * s.ldb + j0 + jr;
        for (int64_t j = 0; j < cols; ++j) dst[j] = src[j];
      } else {
        for (int64_t j = 0; j < cols; ++j) dst[j] = b[(j0 + jr + j) * s.ldb + row];
      }
      for (int64_t j = cols; j < nr; ++j) dst[j] = T(0);
    }
  }
}

template <class T>
void scale_c(const GemmShape& s, T beta, T* c) {
  for (int64_t i = 0; i < s.M; ++i) {
    T* row = c + i * s.ldc;
    if (beta == T(0)) {
      std::fill(row, row + s.N, T(0));
    } else {
      for (int64_t j = 0; j < s.N; ++j) row[j] *= beta;
    }
  }
}

// Per-thread packing buffers, kept across calls: the OpenMP pool's threads persist, so a
// training loop packs into the same memory every step.
template <class T>
T* thread_buffer(int which, size_t elements) {
  thread_local std::vector<T> buffers[2];
  std::vector<T>& buf = buffers[which];
  if (buf.size() < elements) buf.resize(elements);
  return buf.data();
}

}  // namespace

template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c) {
  gemm(s, alpha, a, b, beta, c, get_num_threads());
}

template <class T>
void gemm(const GemmShape& s, T alpha, const T* a, const T* b, T beta, T* c, int max_threads) {
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0 || alpha == T(0)) {
    scale_c(s, beta, c);
    return;
  }
  const GemmKernelInfo<T>& info = gemm_kernel_info<T>();
  const int mr = info.mr, nr = info.nr;
  const int64_t kc_max = std::min<int64_t>(info.kc, s.K);
  const int64_t nc_max = std::min<int64_t>(info.nc, (s.N + nr - 1) / nr * nr);
  const int64_t mc_max = std::min<int64_t>(info.mc, (s.M + mr - 1) / mr * mr);

  // The packed-B block belongs to the calling thread (it leads the team) and is read by all.
  T* const b_packed = thread_buffer<T>(1, static_cast<size_t>(kc_max * nc_max));

  const double flops = 2.0 * static_cast<double>(s.M) * s.N * s.K;
  const int nt = std::min(std::max(1, max_threads),
                           threads_for(static_cast<int64_t>(flops / 1e5) + 1, 1));

#pragma omp parallel num_threads(nt)
  {
    T* a_packed = thread_buffer<T>(0, static_cast<size_t>(mc_max * kc_max));
    for (int64_t jc = 0; jc < s.N; jc += nc_max) {
      const int64_t nc = std::min<int64_t>(nc_max, s.N - jc);
      const int64_t n_panels = (nc + nr - 1) / nr;
      for (int64_t pc = 0; pc < s.K; pc += kc_max) {
        const int64_t kc = std::min<int64_t>(kc_max, s.K - pc);
        const T beta_block = pc == 0 ? beta : T(1);
#pragma omp for schedule(static)
        for (int64_t q = 0; q < n_panels; ++q)
          pack_b_panels(s, b, pc, kc, jc, nc, nr, q, q + 1, b_packed);
        // (implicit barrier: B is packed before anyone multiplies)

        // Tile grid: M blocks x groups of B panels, so skinny products (small M) still
        // give every thread work.
        const int64_t m_blocks = (s.M + mc_max - 1) / mc_max;
        const int64_t team = nt;
        const int64_t n_groups =
            std::max<int64_t>(1, std::min<int64_t>(n_panels, (team + m_blocks - 1) / m_blocks));
        const int64_t panels_per_group = (n_panels + n_groups - 1) / n_groups;
#pragma omp for schedule(static) collapse(2)
        for (int64_t mb = 0; mb < m_blocks; ++mb) {
          for (int64_t g = 0; g < n_groups; ++g) {
            const int64_t ic = mb * mc_max;
            const int64_t mc = std::min<int64_t>(mc_max, s.M - ic);
            const int64_t q_begin = g * panels_per_group;
            const int64_t q_end = std::min<int64_t>(n_panels, q_begin + panels_per_group);
            if (q_begin >= q_end) continue;
            pack_a(s, a, ic, mc, pc, kc, mr, a_packed);
            for (int64_t q = q_begin; q < q_end; ++q) {
              const int64_t jr = q * nr;
              const int n_valid = static_cast<int>(std::min<int64_t>(nr, nc - jr));
              for (int64_t ir = 0; ir < mc; ir += mr) {
                const int m_valid = static_cast<int>(std::min<int64_t>(mr, mc - ir));
                info.kernel(kc, a_packed + ir * kc, b_packed + jr * kc,
                            c + (ic + ir) * s.ldc + jc + jr, s.ldc, alpha, beta_block, m_valid,
                            n_valid);
              }
            }
          }
        }
        // (implicit barrier: nobody repacks B while it is read)
      }
    }
  }
}

template void gemm<float>(const GemmShape&, float, const float*, const float*, float, float*);
template void gemm<double>(const GemmShape&, double, const double*, const double*, double,
                           double*);
template void gemm<float>(const GemmShape&, float, const float*, const float*, float, float*, int);
template void gemm<double>(const GemmShape&, double, const double*, const double*, double,
                           double*, int);

}  // namespace fastnn::cpu
