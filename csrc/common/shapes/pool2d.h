// Shape of a 2-D pooling window over NCHW input, shared by both backends and the bindings.
//   x: (N, C, H, W)  ->  y: (N, C, out_h, out_w)
//   out_h = (H + 2 * pad_h - kernel_h) / stride_h + 1     (floor, PyTorch's ceil_mode=False)
// and the same for w. Window (oh, ow) covers rows oh * stride_h - pad_h ... + kernel_h - 1;
// rows outside [0, H) are padding. PyTorch's rule pad <= kernel / 2 together with the floor
// above means every window holds at least one real input element, so a max is always defined
// and an average's divisor is always kernel_h * kernel_w (count_include_pad=True).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/sizes.h"

namespace fastnn {

struct Pool2dShape {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 0, stride_w = 0, pad_h = 0, pad_w = 0;
  int64_t out_h = 0, out_w = 0;

  int64_t planes() const { return batch * channels; }
  int64_t in_plane() const { return in_h * in_w; }
  int64_t out_plane() const { return out_h * out_w; }
  std::vector<int64_t> input_dims() const { return {batch, channels, in_h, in_w}; }
  std::vector<int64_t> output_dims() const { return {batch, channels, out_h, out_w}; }

  // The window parameters alone (no input yet): kernel >= 1, stride >= 1, 0 <= pad <= kernel/2.
  // `op` names the caller in messages ("max_pool2d", or a layer such as "nn.MaxPool2d").
  static void validate_params(const char* op, int64_t kernel_h, int64_t kernel_w,
                              int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w) {
    const std::string kernel = pair_str(kernel_h, kernel_w);
    if (kernel_h < 1 || kernel_w < 1)
      throw_value_error("fastnn.", op, ": argument 'kernel_size' must be >= 1; got ", kernel);
    if (stride_h < 1 || stride_w < 1)
      throw_value_error("fastnn.", op, ": argument 'stride' must be >= 1; got ",
                        pair_str(stride_h, stride_w));
    if (pad_h < 0 || pad_w < 0)
      throw_value_error("fastnn.", op, ": argument 'padding' must be >= 0; got ",
                        pair_str(pad_h, pad_w));
    if (pad_h > kernel_h / 2 || pad_w > kernel_w / 2)
      throw_value_error("fastnn.", op, ": argument 'padding' must be at most half of kernel_size ",
                        kernel, " (at most ", pair_str(kernel_h / 2, kernel_w / 2), "); got ",
                        pair_str(pad_h, pad_w));
  }

  // From the input's dims; `what` names the argument that carries them ("x", "input_shape").
  static Pool2dShape from(const char* op, const char* what, const std::vector<int64_t>& x_dims,
                          int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                          int64_t pad_h, int64_t pad_w) {
    validate_params(op, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
    Pool2dShape s = input(op, what, x_dims);
    s.kernel_h = kernel_h, s.kernel_w = kernel_w;
    s.stride_h = stride_h, s.stride_w = stride_w;
    s.pad_h = pad_h, s.pad_w = pad_w;
    const int64_t padded_h = s.in_h + 2 * pad_h, padded_w = s.in_w + 2 * pad_w;
    if (padded_h < kernel_h || padded_w < kernel_w)
      throw_value_error("fastnn.", op, ": argument '", what, "' has spatial size ",
                        pair_str(s.in_h, s.in_w), ", ", pair_str(padded_h, padded_w),
                        " with padding, smaller than kernel_size ", pair_str(kernel_h, kernel_w));
    s.out_h = (padded_h - kernel_h) / stride_h + 1;
    s.out_w = (padded_w - kernel_w) / stride_w + 1;
    checked_numel(s.output_dims(), op);
    return s;
  }

  // The same with the window as the six ints fastnn.ops passes around:
  // (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w).
  static Pool2dShape from(const char* op, const char* what, const std::vector<int64_t>& x_dims,
                          const std::array<int64_t, 6>& window) {
    return from(op, what, x_dims, window[0], window[1], window[2], window[3], window[4], window[5]);
  }

  // One window covering the whole plane: (N, C, H, W) -> (N, C, 1, 1), i.e. (N, C).
  static Pool2dShape global(const char* op, const char* what, const std::vector<int64_t>& x_dims) {
    Pool2dShape s = input(op, what, x_dims);
    s.kernel_h = s.stride_h = s.in_h;
    s.kernel_w = s.stride_w = s.in_w;
    s.out_h = s.out_w = 1;
    return s;
  }

 private:
  static std::string pair_str(int64_t h, int64_t w) { return cat("(", h, ", ", w, ")"); }

  static Pool2dShape input(const char* op, const char* what, const std::vector<int64_t>& x_dims) {
    if (x_dims.size() != 4)
      throw_value_error("fastnn.", op, ": argument '", what,
                        "' must be 4-D (N, C, H, W); got shape ", shape_str(x_dims));
    for (int64_t d : x_dims)
      if (d < 0)
        throw_value_error("fastnn.", op, ": argument '", what, "' must have sizes >= 0; got shape ",
                          shape_str(x_dims));
    if (x_dims[2] < 1 || x_dims[3] < 1)
      throw_value_error("fastnn.", op, ": argument '", what, "' must have H, W >= 1; got shape ",
                        shape_str(x_dims));
    Pool2dShape s;
    s.batch = x_dims[0], s.channels = x_dims[1], s.in_h = x_dims[2], s.in_w = x_dims[3];
    checked_numel(x_dims, op);
    return s;
  }
};

[[noreturn]] inline void throw_bad_pool_index(const char* op, int64_t in_plane, int64_t index,
                                              int64_t value) {
  throw_value_error("fastnn.", op, ": argument 'indices' must lie in [0, H * W = ", in_plane,
                    "); got indices.flat[", index, "] = ", value);
}

// Max-pool argmax indices (flat h * W + w within their (n, c) plane) must address the plane:
// ValueError naming the first offender otherwise, so a forged index cannot write out of bounds.
template <class Index>
void validate_pool_indices(const char* op, const Index* indices, int64_t n, int64_t in_plane) {
  // A vectorised min/max pass first: the search for the offender (and its message) runs only
  // when there is one. (A per-element check with a branch to the message cost as much as the
  // backward kernel itself.)
  Index lowest = 0, highest = 0;
#if defined(_OPENMP)  // (this header is also compiled without OpenMP: CUDA bindings)
#pragma omp simd reduction(min : lowest) reduction(max : highest)
#endif
  for (int64_t i = 0; i < n; ++i) {
    lowest = indices[i] < lowest ? indices[i] : lowest;
    highest = indices[i] > highest ? indices[i] : highest;
  }
  if (lowest >= 0 && static_cast<int64_t>(highest) < in_plane) return;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = static_cast<int64_t>(indices[i]);
    if (v < 0 || v >= in_plane) throw_bad_pool_index(op, in_plane, i, v);
  }
}

}  // namespace fastnn
