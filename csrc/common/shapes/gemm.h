// Shape of one matrix product (see cpu/gemm.h for the math); shared by both backends and the
// bindings. Leading dimensions default to dense row-major storage.
#pragma once

#include <cstdint>
#include <vector>

#include "common/errors.h"

namespace fastnn {

// What a product does to each element after the whole K sum, while the tile is still in
// registers (cpu/gemm.h and cuda/gemm.h honour all three):
//   c[i, j] = relu?( ... + bias_per_col[j] + bias_per_row[i] )
template <class T>
struct GemmEpilogue {
  const T* bias_per_col = nullptr;  // (N,) added to every row, or null
  const T* bias_per_row = nullptr;  // (M,) added to every column, or null
  bool relu = false;                // max(x, 0) last (NaN stays NaN)
};

struct GemmShape {
  int64_t M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;

  static GemmShape dense(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b) {
    GemmShape s;
    s.M = M, s.N = N, s.K = K, s.trans_a = trans_a, s.trans_b = trans_b;
    s.lda = trans_a ? M : K;
    s.ldb = trans_b ? K : N;
    s.ldc = N;
    return s;
  }

  // The product op(a) @ op(b) of two dense 2-D arrays with these dims; ValueError naming `op`
  // when the inner dimensions differ.
  static GemmShape for_matmul(const char* op, const std::vector<int64_t>& a_dims,
                              const std::vector<int64_t>& b_dims, bool trans_a, bool trans_b) {
    const int64_t M = trans_a ? a_dims[1] : a_dims[0];
    const int64_t K = trans_a ? a_dims[0] : a_dims[1];
    const int64_t Kb = trans_b ? b_dims[1] : b_dims[0];
    const int64_t N = trans_b ? b_dims[0] : b_dims[1];
    if (K != Kb)
      throw_value_error("fastnn.", op, ": inner dimensions differ: op(a) is (", M, ", ", K,
                        ") and op(b) is (", Kb, ", ", N, ") (a ", shape_str(a_dims), ", b ",
                        shape_str(b_dims), ", trans_a=", trans_a, ", trans_b=", trans_b, ")");
    GemmShape s = dense(M, N, K, trans_a, trans_b);
    s.validate(op);
    return s;
  }

  void validate(const char* op) const {
    if (M < 0 || N < 0 || K < 0)
      throw_value_error("fastnn.", op, ": sizes must be >= 0; got M=", M, ", N=", N, ", K=", K);
    if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N)
      throw_value_error("fastnn.", op, ": leading dimensions too small (lda=", lda, ", ldb=", ldb,
                        ", ldc=", ldc, ")");
  }
};

}  // namespace fastnn
