// Shape and hyper-parameters of the triplet margin loss over a batch of embeddings, shared by both
// backends and the bindings (cpu/triplet.h has the math).
//   embeddings: (N, D) rows, one per sample   labels: (N,) integers (any values; only equality counts)
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/sizes.h"

namespace fastnn {

// Which triplets the loss averages over (cpu/triplet.h).
enum class TripletMining { batch_hard, all };

struct TripletShape {
  int64_t rows = 0, dims = 0;  // N samples of D features
  TripletMining mining = TripletMining::batch_hard;

  // ValueError naming `op` for a margin that is not finite and > 0 (PyTorch refuses 0 too: with
  // it, collapsing every embedding to one point costs nothing), or a mining name other than
  // "batch_hard" / "all". Layers call it when built (bindings: triplet_check_params).
  static TripletMining check_params(const char* op, double margin, const std::string& mining) {
    if (!(std::isfinite(margin) && margin > 0.0))
      throw_value_error("fastnn.", op, ": argument 'margin' must be a finite number > 0; got ", margin);
    if (mining == "batch_hard") return TripletMining::batch_hard;
    if (mining == "all") return TripletMining::all;
    throw_value_error("fastnn.", op, ": argument 'mining' must be 'batch_hard' or 'all'; got '", mining, "'");
  }

  // From the embeddings' dims: 2-D, at least one row and one column. The kernels hold N x N
  // distances, so N * N must not overflow either.
  static TripletShape from(const char* op, const std::vector<int64_t>& dims, double margin,
                           const std::string& mining) {
    const TripletMining m = check_params(op, margin, mining);
    if (dims.size() != 2)
      throw_value_error("fastnn.", op, ": argument 'embeddings' must be 2-D (batch, features); got shape ",
                        shape_str(dims));
    if (dims[0] < 1 || dims[1] < 1)
      throw_value_error("fastnn.", op,
                        ": argument 'embeddings' must have at least one row and one column; got shape ",
                        shape_str(dims));
    checked_mul(dims[0], dims[0], op);
    return TripletShape{dims[0], dims[1], m};
  }
};

}  // namespace fastnn
