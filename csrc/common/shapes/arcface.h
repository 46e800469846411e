// Shape and hyper-parameters of the ArcFace loss (cpu/arcface.h has the math), shared by both
// backends, the bindings and the layer (through arcface_check_params).
//   embeddings: (N, D)  weight: (C, D) class centres  labels: (N,) in [0, C)
// The margin on the target column, arcface_target() below, is the one definition both backends'
// kernels call.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/errors.h"
#include "common/host_device.h"
#include "common/sizes.h"

namespace fastnn {

struct ArcFaceShape {
  int64_t rows = 0, classes = 0, features = 0;

  static ArcFaceShape from(const char* op, const std::vector<int64_t>& embedding_dims,
                           const std::vector<int64_t>& weight_dims) {
    if (embedding_dims.size() != 2)
      throw_value_error("fastnn.", op, ": argument 'embeddings' must be 2-D (batch, features); got shape ",
                        shape_str(embedding_dims));
    if (weight_dims.size() != 2)
      throw_value_error("fastnn.", op, ": argument 'weight' must be 2-D (classes, features); got shape ",
                        shape_str(weight_dims));
    // A mean over an empty batch is meaningless (as for softmax_cross_entropy).
    if (embedding_dims[0] < 1)
      throw_value_error("fastnn.", op, ": argument 'embeddings' must have at least one row; got shape ",
                        shape_str(embedding_dims));
    if (embedding_dims[1] < 1)
      throw_value_error("fastnn.", op, ": argument 'embeddings' must have at least one feature; got shape ",
                        shape_str(embedding_dims));
    if (weight_dims[1] != embedding_dims[1])
      throw_value_error("fastnn.", op, ": argument 'weight' must have ", embedding_dims[1],
                        " columns to match the embeddings' features; got shape ", shape_str(weight_dims));
    if (weight_dims[0] < 1)
      throw_value_error("fastnn.", op, ": argument 'weight' must have at least one class; got shape ",
                        shape_str(weight_dims));
    ArcFaceShape s{embedding_dims[0], weight_dims[0], embedding_dims[1]};
    checked_mul(s.rows, s.classes, op);
    checked_mul(s.rows, s.features, op);
    checked_mul(s.classes, s.features, op);
    return s;
  }
};

// s (scale), m (margin, radians) and the normalisation's eps, with the constants of the margin:
//   cos_m = cos(m), sin_m = sin(m), threshold = cos(pi - m), linear_drop = sin(pi - m) * m.
struct ArcFaceParams {
  double scale = 64.0, margin = 0.5, eps = 1e-12;
  double cos_m = 0, sin_m = 0, threshold = 0, linear_drop = 0;

  // ValueError naming `op` unless 0 < scale < inf, 0 <= margin < pi/2 (a margin past a right
  // angle would make cos(theta + m) fall as the target class gets closer) and 0 < eps < inf.
  // The layer calls its arguments s and m: messages use the names given.
  static ArcFaceParams make(const char* op, double scale, double margin, double eps,
                            const char* scale_name = "scale", const char* margin_name = "margin") {
    const double pi = 3.14159265358979323846;
    if (!(scale > 0.0 && std::isfinite(scale)))
      throw_value_error("fastnn.", op, ": argument '", scale_name, "' must be a finite number > 0; got ", scale);
    if (!(margin >= 0.0 && margin < pi / 2))
      throw_value_error("fastnn.", op, ": argument '", margin_name, "' must lie in [0, pi/2) radians; got ", margin);
    if (!(eps > 0.0 && std::isfinite(eps)))
      throw_value_error("fastnn.", op, ": argument 'eps' must be a finite number > 0; got ", eps);
    ArcFaceParams p;
    p.scale = scale, p.margin = margin, p.eps = eps;
    p.cos_m = std::cos(margin), p.sin_m = std::sin(margin);
    p.threshold = std::cos(pi - margin), p.linear_drop = std::sin(pi - margin) * margin;
    return p;
  }
};

// The target column's cosine after the margin, and its derivative with respect to the cosine.
struct MarginedCosine {
  double value, derivative;
};

// insightface's rule (easy_margin=False): cos(theta + m) = cos * cos_m - sin * sin_m with
// sin = sqrt(max(1 - cos^2, 0)) while theta + m <= pi, i.e. cos > threshold = cos(pi - m); past
// that cos(theta + m) would rise again as theta grows, so the target logit continues as the
// line cos - linear_drop, linear_drop = sin(pi - m) * m, which keeps it decreasing in theta.
// d sin / d cos = -cos / sin, taken as 0 where sin = 0 (|cos| >= 1: the clamp is active).
FASTNN_HOST_DEVICE inline MarginedCosine arcface_target(double cos, const ArcFaceParams& p) {
  if (!(cos > p.threshold)) return {cos - p.linear_drop, 1.0};
  const double sin_sq = 1.0 - cos * cos;
  const double sin = sin_sq > 0.0 ? ::sqrt(sin_sq) : 0.0;
  return {cos * p.cos_m - sin * p.sin_m, p.cos_m + (sin > 0.0 ? p.sin_m * cos / sin : 0.0)};
}

}  // namespace fastnn
