// 2-D convolution as im2col + GEMM; see conv2d.h for the math.
//
// Per image n and group g (Og = C_out/G output channels, Kg = C_in/G*kh*kw, P = H_out*W_out):
//   col         = im2col(x[n])              (C_in*kh*kw, P); group g owns rows [g*Kg, (g+1)*Kg)
//   y[n, g]     = weight[g] @ col[g] (+ bias)  (Og, Kg) @ (Kg, P)
//   dcol[g]     = weight[g]^T @ dy[n, g]       (Kg, Og) @ (Og, P);  then dx[n] = col2im(dcol)
//   dweight[g] (+)= dy[n, g] @ col[g]^T        (Og, P) @ (P, Kg), summed over n
// A 1x1 kernel with stride 1 and no padding needs no columns: col is x[n] itself.
//
// Threads: whole images go to threads, each running its GEMMs on itself alone (no barrier inside
// an image, no nested thread teams); batches too small to split evenly run image by image with
// the threads inside the GEMMs and the column transfers. At most one image's column matrix per
// thread exists at a time, in per-thread workspaces kept across calls. The weight gradient sums
// images within a thread's fixed, contiguous share of the batch into that thread's partial, then
// adds the partials in thread order, so it is deterministic for a given thread count.
#include "cpu/conv2d.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/threading.h"
#include "cpu/gemm.h"

namespace fastnn::cpu {
namespace {

// Per-thread scratch, kept across calls: OpenMP's pool threads persist, so a training loop
// reuses the same memory every step instead of allocating a column matrix per call.
enum WorkspaceSlot { kColumns = 0, kWeightPartials = 1, kWeightTransposed = 2, kWorkspaceSlots = 3 };

template <class T>
T* workspace(WorkspaceSlot slot, int64_t elements) {
  thread_local std::vector<T> buffers[kWorkspaceSlots];
  std::vector<T>& buf = buffers[slot];
  if (buf.size() < static_cast<size_t>(elements)) buf.resize(static_cast<size_t>(elements));
  return buf.data();
}

// Output positions [lo, hi) along one axis whose input index o * stride - pad + offset lies in
// [0, in_size); the positions outside read zero padding.
struct OutputRange {
  int64_t lo, hi;
};

OutputRange outputs_inside_input(int64_t out_size, int64_t in_size, int64_t stride, int64_t pad,
                                 int64_t offset) {
  const int64_t shift = offset - pad;  // input index of output 0
  // ceil(-shift / stride), written so that a huge stride cannot overflow.
  const int64_t lo = shift >= 0 ? 0 : -shift / stride + (-shift % stride != 0);
  const int64_t last = in_size - 1 - shift;  // o * stride <= last
  const int64_t hi = last < 0 ? 0 : last / stride + 1;
  const int64_t lo_clipped = std::min(lo, out_size);
  return {lo_clipped, std::max(lo_clipped, std::min(hi, out_size))};
}

// A 1x1 kernel at stride 1 without padding reads each input pixel once, in order: the column
// matrix of an image is the image itself (dilation does not matter for a single tap).
bool columns_are_input(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_h == 0 && s.pad_w == 0;
}

// GEMMs inside a per-image parallel region must stay on their own thread (no nested teams).
GemmThreads gemm_threads(int threads) {
  return threads > 1 ? GemmThreads::team : GemmThreads::caller;
}

enum class Transfer { gather, scatter_add };

// Moves data between one image (C_in, H, W) and its column matrix (C_in*kh*kw, H_out*W_out),
// for input channels [c_begin, c_end):
//   gather (im2col):       col[(c*kh + p)*kw + q, i*W_out + j]
//                              = x[c, i*sh - ph + p*dh, j*sw - pw + q*dw]  (0 in the padding)
//   scatter_add (col2im):  dx[c] is zeroed, then every col entry is added to the pixel it was read
//                          from, in a fixed order.
// One walk serves both directions, so im2col and col2im cannot disagree about indexing.
template <Transfer dir, class T>
void transfer_columns(std::conditional_t<dir == Transfer::gather, const T, T>* image,
                      std::conditional_t<dir == Transfer::gather, T, const T>* col,
                      const Conv2dShape& s, int64_t c_begin, int64_t c_end) {
  constexpr bool gather = dir == Transfer::gather;
  const int64_t W = s.width, W_out = s.out_width, P = s.out_plane();
  for (int64_t c = c_begin; c < c_end; ++c) {
    auto* plane = image + c * s.in_plane();
    if constexpr (!gather) std::fill(plane, plane + s.in_plane(), T(0));
    for (int64_t p = 0; p < s.kernel_h; ++p) {
      const int64_t row_offset = p * s.dilation_h - s.pad_h;
      const OutputRange rows =
          outputs_inside_input(s.out_height, s.height, s.stride_h, s.pad_h, p * s.dilation_h);
      for (int64_t q = 0; q < s.kernel_w; ++q) {
        const int64_t col_offset = q * s.dilation_w - s.pad_w;
        const OutputRange cols =
            outputs_inside_input(W_out, W, s.stride_w, s.pad_w, q * s.dilation_w);
        const int64_t n_cols = cols.hi - cols.lo;
        auto* col_row = col + ((c * s.kernel_h + p) * s.kernel_w + q) * P;
        if constexpr (gather) {
          // Output rows whose taps all land in the padding (all of them when no column does).
          const int64_t rows_hi = n_cols > 0 ? rows.hi : rows.lo;
          std::fill(col_row, col_row + rows.lo * W_out, T(0));
          std::fill(col_row + rows_hi * W_out, col_row + P, T(0));
        }
        if (n_cols == 0) continue;
        for (int64_t i = rows.lo; i < rows.hi; ++i) {
          auto* out = col_row + i * W_out;
          auto* in = plane + (i * s.stride_h + row_offset) * W + cols.lo * s.stride_w + col_offset;
          if constexpr (gather) {
            std::fill(out, out + cols.lo, T(0));
            std::fill(out + cols.hi, out + W_out, T(0));
            if (s.stride_w == 1) {
              std::copy(in, in + n_cols, out + cols.lo);
            } else {
              for (int64_t j = 0; j < n_cols; ++j) out[cols.lo + j] = in[j * s.stride_w];
            }
          } else {
            for (int64_t j = 0; j < n_cols; ++j) in[j * s.stride_w] += out[cols.lo + j];
          }
        }
      }
    }
  }
}

// Calls f(c_begin, c_end) over the input channels, split across `threads` (channels own
// disjoint rows of the column matrix and disjoint planes of the image).
template <class F>
void for_channel_blocks(int threads, int64_t channels, F&& f) {
  if (threads <= 1) {
    f(int64_t{0}, channels);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < channels; ++c) f(c, c + 1);
}

// The column matrix of one image: x itself for 1x1 kernels, else im2col into this thread's
// workspace.
template <class T>
const T* image_columns(const T* x_image, const Conv2dShape& s, int threads) {
  if (columns_are_input(s)) return x_image;
  T* col = workspace<T>(kColumns, s.col_size());
  for_channel_blocks(threads, s.in_channels, [&](int64_t c0, int64_t c1) {
    transfer_columns<Transfer::gather, T>(x_image, col, s, c0, c1);
  });
  return col;
}

// How threads share the work: `image_threads` > 1 splits the batch (each image on one thread),
// otherwise images run in turn with `inner_threads` inside each one.
struct ThreadPlan {
  int image_threads = 1, inner_threads = 1;
};

ThreadPlan plan_threads(const Conv2dShape& s) {
  // Below this many multiply-adds per thread, waking a thread costs more than it saves.
  constexpr double kMacsPerThread = 1 << 16;
  const int nt = threads_for(static_cast<int64_t>(s.macs() / kMacsPerThread), 1);
  if (nt <= 1) return {1, 1};
  // Splitting the batch is cheapest (no synchronisation) when the shares come out even enough.
  if (s.batch >= nt && (s.batch % nt == 0 || s.batch >= 4 * nt)) return {nt, 1};
  return {1, nt};
}

// Calls per_image(n, threads_inside_image) for every image under `plan`.
template <class F>
void for_each_image(const Conv2dShape& s, const ThreadPlan& plan, F&& per_image) {
  if (plan.image_threads > 1) {
#pragma omp parallel for num_threads(plan.image_threads) schedule(static)
    for (int64_t n = 0; n < s.batch; ++n) per_image(n, 1);
  } else {
    for (int64_t n = 0; n < s.batch; ++n) per_image(n, plan.inner_threads);
  }
}

// dweight (beta)= sum over images [n_begin, n_end) of dy[n, g] @ col[n, g]^T, images in order.
// The sum is formed transposed, dweight^T[g] (Kg, Og) = sum_n col[n, g] @ dy[n, g]^T, because
// then the big operand, the column matrix (Kg, P), is the GEMM's row-major A, read in place,
// and only the small dy (Og, P) is packed; the plain form packed col transposed for every image
// (a third of LeNet's convolution time). The (Og, Kg) transpose happens once, at the end.
template <class T>
void accumulate_weight_grad(const T* dy, const T* x, T* dweight, T beta, int64_t n_begin,
                            int64_t n_end, const Conv2dShape& s, int threads) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group(), P = s.out_plane();
  T* dweight_t = workspace<T>(kWeightTransposed, s.weight_size());  // (groups, Kg, Og)
  if (n_begin == n_end) std::fill(dweight_t, dweight_t + s.weight_size(), T(0));
  for (int64_t n = n_begin; n < n_end; ++n) {
    const T* col = image_columns(x + n * s.in_channels * s.in_plane(), s, threads);
    const T* dy_image = dy + n * s.out_channels * P;
    const T image_beta = n == n_begin ? T(0) : T(1);
    for (int64_t g = 0; g < s.groups; ++g)
      gemm(GemmShape::dense(Kg, Og, P, false, true), T(1), col + g * Kg * P,
           dy_image + g * Og * P, image_beta, dweight_t + g * Kg * Og, {}, gemm_threads(threads));
  }
  for (int64_t g = 0; g < s.groups; ++g) {
    const T* src = dweight_t + g * Kg * Og;
    T* dst = dweight + g * Og * Kg;
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t k = 0; k < Kg; ++k)
        dst[o * Kg + k] = beta == T(0) ? src[k * Og + o] : beta * dst[o * Kg + k] + src[k * Og + o];
  }
}

// Sum of n contiguous values with eight independent accumulators: vectorisable without
// reassociation flags, more accurate than one running sum, and always the same order.
template <class T>
T sum_contiguous(const T* v, int64_t n) {
  T lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] += v[i + k];
  T total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
            ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) total += v[i];
  return total;
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                    bool relu) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group(), P = s.out_plane();
  for_each_image(s, plan_threads(s), [&](int64_t n, int threads) {
    const T* col = image_columns(x + n * s.in_channels * s.in_plane(), s, threads);
    T* y_image = y + n * s.out_channels * P;
    // The bias is one value per output channel = per row of the (Og, P) product: the GEMM's
    // epilogue adds it while the tile is in registers.
    for (int64_t g = 0; g < s.groups; ++g) {
      GemmEpilogue<T> epilogue;
      epilogue.bias_per_row = bias ? bias + g * Og : nullptr;
      epilogue.relu = relu;
      gemm(GemmShape::dense(Og, P, Kg, false, false), T(1), weight + g * Og * Kg,
           col + g * Kg * P, T(0), y_image + g * Og * P, epilogue, gemm_threads(threads));
    }
  });
}

template <class T>
void conv2d_backward_input(const T* dy, const T* weight, T* dx, const Conv2dShape& s) {
  const int64_t Og = s.out_channels_per_group(), Kg = s.col_rows_per_group(), P = s.out_plane();
  const bool direct = columns_are_input(s);
  for_each_image(s, plan_threads(s), [&](int64_t n, int threads) {
    T* dx_image = dx + n * s.in_channels * s.in_plane();
    const T* dy_image = dy + n * s.out_channels * P;
    // For 1x1 kernels the column gradient is the input gradient: the GEMM writes it in place.
    T* dcol = direct ? dx_image : workspace<T>(kColumns, s.col_size());
    for (int64_t g = 0; g < s.groups; ++g)
      gemm(GemmShape::dense(Kg, P, Og, true, false), T(1), weight + g * Og * Kg,
           dy_image + g * Og * P, T(0), dcol + g * Kg * P, {}, gemm_threads(threads));
    if (!direct) {
      for_channel_blocks(threads, s.in_channels, [&](int64_t c0, int64_t c1) {
        transfer_columns<Transfer::scatter_add, T>(dx_image, dcol, s, c0, c1);
      });
    }
  });
}

template <class T>
void conv2d_backward_weight(const T* dy, const T* x, T* dweight, bool accumulate,
                            const Conv2dShape& s) {
  const T beta = accumulate ? T(1) : T(0);
  const ThreadPlan plan = plan_threads(s);
  if (plan.image_threads <= 1) {
    accumulate_weight_grad(dy, x, dweight, beta, 0, s.batch, s, plan.inner_threads);
    return;
  }
  // Thread t sums images [t*N/nt, (t+1)*N/nt) into its own partial; the partials are then added
  // into dweight in thread order.
  const int nt = plan.image_threads;
  const int64_t size = s.weight_size();
  T* partials = workspace<T>(kWeightPartials, nt * size);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    accumulate_weight_grad(dy, x, partials + t * size, T(0), s.batch * t / nt,
                           s.batch * (t + 1) / nt, s, 1);
  }
  const int64_t chunk = 1024;
  const int64_t n_chunks = (size + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads_for(size * nt)) schedule(static)
  for (int64_t k = 0; k < n_chunks; ++k) {
    const int64_t i0 = k * chunk, i1 = std::min(size, i0 + chunk);
    for (int64_t i = i0; i < i1; ++i) {
      T sum = accumulate ? dweight[i] : T(0);
      for (int t = 0; t < nt; ++t) sum += partials[t * size + i];
      dweight[i] = sum;
    }
  }
}

template <class T>
void conv2d_backward_bias(const T* dy, T* dbias, bool accumulate, const Conv2dShape& s) {
  // One output channel per task, summing plane by plane over images in order: the result does
  // not depend on the thread count.
  const int64_t P = s.out_plane();
  const int nt = threads_for(s.batch * s.out_channels * P);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t o = 0; o < s.out_channels; ++o) {
    T sum = accumulate ? dbias[o] : T(0);
    for (int64_t n = 0; n < s.batch; ++n)
      sum += sum_contiguous(dy + (n * s.out_channels + o) * P, P);
    dbias[o] = sum;
  }
}

#define FASTNN_INSTANTIATE(T)                                                                  \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, bool);      \
  template void conv2d_backward_input<T>(const T*, const T*, T*, const Conv2dShape&);         \
  template void conv2d_backward_weight<T>(const T*, const T*, T*, bool, const Conv2dShape&);  \
  template void conv2d_backward_bias<T>(const T*, T*, bool, const Conv2dShape&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
