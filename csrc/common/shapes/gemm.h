// Shape of one matrix product (see cpu/gemm.h for the math); shared by both backends and the
// bindings. Leading dimensions default to dense row-major storage.
#pragma once

#include <cstdint>

#include "common/errors.h"

namespace fastnn {

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

  void validate(const char* op) const {
    if (M < 0 || N < 0 || K < 0)
      throw_value_error("fastnn.", op, ": sizes must be >= 0; got M=", M, ", N=", N, ", K=", K);
    if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N)
      throw_value_error("fastnn.", op, ": leading dimensions too small (lda=", lda, ", ldb=", ldb,
                        ", ldc=", ldc, ")");
  }
};

}  // namespace fastnn
