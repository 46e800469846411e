// (N, C) row-wise ops — softmax, log_softmax, cross-entropy, BCE: N rows of C classes.
#pragma once

#include <cstdint>
#include <vector>

#include "common/errors.h"

namespace fastnn {

struct RowsShape {
  int64_t rows = 0, cols = 0;

  // `what` names the argument, e.g. "logits"; needs a 2-D (N, C) array with C >= 1 and, when
  // `need_rows`, N >= 1 (a mean over an empty batch is meaningless).
  static RowsShape from(const char* op, const char* what, const std::vector<int64_t>& dims,
                        bool need_rows) {
    if (dims.size() != 2)
      throw_value_error("fastnn.", op, ": argument '", what, "' must be 2-D (batch, classes); got shape ",
                        shape_str(dims));
    if (dims[1] < 1)
      throw_value_error("fastnn.", op, ": argument '", what, "' must have at least one class; got shape ",
                        shape_str(dims));
    if (need_rows && dims[0] < 1)
      throw_value_error("fastnn.", op, ": argument '", what, "' must have at least one row; got shape ",
                        shape_str(dims));
    return RowsShape{dims[0], dims[1]};
  }
};

}  // namespace fastnn

namespace fastnn {

// The errors for a label outside [0, classes) and a target outside [0, 1]; the CUDA backend,
// which finds them on the device, raises the same ones.
[[noreturn]] inline void throw_bad_label(const char* op, int64_t classes, int64_t row, int64_t value) {
  throw_value_error("fastnn.", op, ": argument 'labels' must lie in [0, ", classes, ") for ",
                    classes, " classes; got labels[", row, "] = ", value);
}

template <class T>
[[noreturn]] void throw_bad_probability(const char* op, const char* arg, int64_t index, T value) {
  throw_value_error("fastnn.", op, ": argument '", arg, "' must lie in [0, 1]; got ", arg, ".flat[",
                    index, "] = ", value);
}

// Class labels must index a column: ValueError naming the first offending row otherwise.
template <class Label>
void validate_labels(const char* op, const Label* labels, int64_t rows, int64_t classes) {
  for (int64_t n = 0; n < rows; ++n) {
    const int64_t v = static_cast<int64_t>(labels[n]);
    if (v < 0 || v >= classes) throw_bad_label(op, classes, n, v);
  }
}

// Probabilistic targets must lie in [0, 1] (NaN fails the test too).
template <class T>
void validate_probabilities(const char* op, const char* arg, const T* values, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!(values[i] >= T(0) && values[i] <= T(1))) throw_bad_probability(op, arg, i, values[i]);
  }
}

}  // namespace fastnn
