// Shape of a 2-D convolution (PyTorch's conv2d), shared by both backends and the bindings.
//   x: (N, C_in, H, W)  weight: (C_out, C_in / groups, kh, kw)  bias: (C_out,)
//   y: (N, C_out, H_out, W_out)
//   H_out = (H + 2 * pad_h - dilation_h * (kh - 1) - 1) / stride_h + 1   (W_out likewise)
// Every size the kernels and bindings derive from these numbers (output, column buffer) is
// computed and overflow-checked here, once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/sizes.h"

namespace fastnn {

// The convolution's hyper-parameters, (h, w) pairs as at the Python level.
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

struct Conv2dShape {
  int64_t batch = 0, in_channels = 0, height = 0, width = 0;
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  int64_t out_height = 0, out_width = 0;  // derived by from()

  int64_t in_channels_per_group() const { return in_channels / groups; }
  int64_t out_channels_per_group() const { return out_channels / groups; }
  int64_t in_plane() const { return height * width; }
  int64_t out_plane() const { return out_height * out_width; }
  int64_t kernel_area() const { return kernel_h * kernel_w; }
  // One group's reduction length: the rows of its slice of the column (im2col) matrix.
  int64_t col_rows_per_group() const { return in_channels_per_group() * kernel_area(); }
  // One image's column matrix: (C_in * kh * kw, H_out * W_out).
  int64_t col_size() const { return in_channels * kernel_area() * out_plane(); }
  // Weight elements: C_out * C_in / groups * kh * kw.
  int64_t weight_size() const { return out_channels * col_rows_per_group(); }
  // Multiply-adds of one forward pass (used to decide how many threads are worth waking).
  double macs() const {
    return static_cast<double>(batch) * out_channels * out_plane() * col_rows_per_group();
  }
  std::vector<int64_t> output_dims() const { return {batch, out_channels, out_height, out_width}; }
  std::vector<int64_t> weight_dims() const {
    return {out_channels, in_channels_per_group(), kernel_h, kernel_w};
  }

  // The numbers alone, before any array: in/out channels and kernel >= 1, stride and dilation
  // >= 1, padding >= 0, groups >= 1 dividing both channel counts. A layer calls it when built
  // (`op` a layer such as "nn.Conv2d") and from() calls it first, so a layer rejects at
  // construction exactly what its op would reject at the first call. Messages name the channel
  // counts and kernel as the layer's arguments, or, given x_dims and weight_dims (from()), as
  // the dims of those arrays.
  static void validate_params(const char* op, int64_t in_channels, int64_t out_channels,
                              int64_t kernel_h, int64_t kernel_w, const Conv2dParams& p,
                              const std::vector<int64_t>* x_dims = nullptr,
                              const std::vector<int64_t>* weight_dims = nullptr) {
    // Built only when a message needs them, so from() pays nothing on the normal path.
    const auto in_desc = [&] {
      return x_dims ? cat("the input channels C_in=", in_channels, " of x ", shape_str(*x_dims))
                    : cat("argument 'in_channels' (", in_channels, ")");
    };
    const auto out_desc = [&] {
      return weight_dims ? cat("the output channels C_out=", out_channels, " of weight ",
                               shape_str(*weight_dims))
                         : cat("argument 'out_channels' (", out_channels, ")");
    };
    if (p.stride_h < 1 || p.stride_w < 1)
      throw_value_error("fastnn.", op, ": argument 'stride' must be >= 1; got (", p.stride_h,
                        ", ", p.stride_w, ")");
    if (p.dilation_h < 1 || p.dilation_w < 1)
      throw_value_error("fastnn.", op, ": argument 'dilation' must be >= 1; got (", p.dilation_h,
                        ", ", p.dilation_w, ")");
    if (p.pad_h < 0 || p.pad_w < 0)
      throw_value_error("fastnn.", op, ": argument 'padding' must be >= 0; got (", p.pad_h, ", ",
                        p.pad_w, ")");
    if (p.groups < 1)
      throw_value_error("fastnn.", op, ": argument 'groups' must be >= 1; got ", p.groups);
    if (in_channels < 1) throw_value_error("fastnn.", op, ": ", in_desc(), " must be >= 1");
    if (out_channels < 1) throw_value_error("fastnn.", op, ": ", out_desc(), " must be >= 1");
    if (kernel_h < 1 || kernel_w < 1) {
      const std::string kernel = cat("(", kernel_h, ", ", kernel_w, ")");
      if (weight_dims)
        throw_value_error("fastnn.", op, ": the kernel size ", kernel, " of weight ",
                          shape_str(*weight_dims), " must be >= 1");
      throw_value_error("fastnn.", op, ": argument 'kernel_size' must be >= 1; got ", kernel);
    }
    if (in_channels % p.groups != 0)
      throw_value_error("fastnn.", op, ": argument 'groups' (", p.groups, ") must divide ",
                        in_desc());
    if (out_channels % p.groups != 0)
      throw_value_error("fastnn.", op, ": argument 'groups' (", p.groups, ") must divide ",
                        out_desc());
  }

  // From the arrays' dims; raises ValueError naming `op`, the argument and the numbers.
  static Conv2dShape from(const char* op, const std::vector<int64_t>& x_dims,
                          const std::vector<int64_t>& weight_dims, const Conv2dParams& p) {
    if (x_dims.size() != 4)
      throw_value_error("fastnn.", op, ": argument 'x' must be 4-D (N, C_in, H, W); got shape ",
                        shape_str(x_dims));
    if (weight_dims.size() != 4)
      throw_value_error("fastnn.", op,
                        ": argument 'weight' must be 4-D (C_out, C_in/groups, kh, kw); got shape ",
                        shape_str(weight_dims));
    validate_params(op, x_dims[1], weight_dims[0], weight_dims[2], weight_dims[3], p, &x_dims,
                    &weight_dims);
    Conv2dShape s;
    s.batch = x_dims[0], s.in_channels = x_dims[1], s.height = x_dims[2], s.width = x_dims[3];
    s.out_channels = weight_dims[0], s.kernel_h = weight_dims[2], s.kernel_w = weight_dims[3];
    s.stride_h = p.stride_h, s.stride_w = p.stride_w;
    s.pad_h = p.pad_h, s.pad_w = p.pad_w;
    s.dilation_h = p.dilation_h, s.dilation_w = p.dilation_w;
    s.groups = p.groups;
    if (s.batch < 0 || s.height < 0 || s.width < 0)
      throw_value_error("fastnn.", op, ": sizes must be >= 0; got N=", s.batch, ", H=", s.height,
                        ", W=", s.width);
    // Only the batch may be empty (PyTorch's rule for convolutions and pools): an empty plane
    // padded into a non-empty one would give outputs that read padding only.
    if (s.height < 1 || s.width < 1)
      throw_value_error("fastnn.", op, ": argument 'x' must have H, W >= 1 (only the batch N may be 0); got shape ",
                        shape_str(x_dims));
    if (weight_dims[1] != s.in_channels_per_group())
      throw_value_error("fastnn.", op, ": argument 'weight' must have C_in/groups = ",
                        s.in_channels, "/", s.groups, " = ", s.in_channels_per_group(),
                        " input channels (dim 1) to match x ", shape_str(x_dims), "; got shape ",
                        shape_str(weight_dims));
    s.derive_output(op);
    return s;
  }

 private:
  static int64_t checked_add(int64_t a, int64_t b, const char* op) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
      throw_value_error("fastnn.", op, ": size ", a, " + ", b, " overflows int64");
    return r;
  }

  // Sets out_height / out_width, after checking that the dilated kernel fits the padded input,
  // and overflow-checks every buffer size derived from the shape.
  void derive_output(const char* op) {
    const int64_t padded_h = checked_add(height, checked_mul(2, pad_h, op), op);
    const int64_t padded_w = checked_add(width, checked_mul(2, pad_w, op), op);
    const int64_t span_h = checked_add(checked_mul(dilation_h, kernel_h - 1, op), 1, op);
    const int64_t span_w = checked_add(checked_mul(dilation_w, kernel_w - 1, op), 1, op);
    if (span_h > padded_h || span_w > padded_w)
      throw_value_error("fastnn.", op, ": kernel (", kernel_h, ", ", kernel_w, ") with dilation (",
                        dilation_h, ", ", dilation_w, ") spans (", span_h, ", ", span_w,
                        "), larger than the padded input (", padded_h, ", ", padded_w,
                        ") = input (", height, ", ", width, ") + 2 * padding (", pad_h, ", ",
                        pad_w, ")");
    out_height = (padded_h - span_h) / stride_h + 1;
    out_width = (padded_w - span_w) / stride_w + 1;
    checked_numel({batch, in_channels, height, width}, op);
    checked_numel({batch, out_channels, out_height, out_width}, op);
    // The column workspace (float64 at most) of one image.
    checked_numel({in_channels, kernel_h, kernel_w, out_height, out_width, 8}, op);
    checked_numel({out_channels, in_channels_per_group(), kernel_h, kernel_w}, op);
  }
};

}  // namespace fastnn
