// The batch-norm row loops (batchnorm_rows.h) compiled for AVX2 (4 doubles a vector): the double-precision
// statistics and gradient sums are most of batch norm's time, and the baseline build does them
// two lanes at a time.
#include "cpu/batchnorm_rows.h"

namespace fastnn::cpu {

const BatchNormRows<float>& batch_norm_rows_avx2() {
  static const BatchNormRows<float> rows = this_isa_rows<float>();
  return rows;
}

}  // namespace fastnn::cpu
