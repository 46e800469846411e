// The index maps of the implicit-GEMM convolutions (conv2d.cu): each turns a (row, column) of
// one of the products in conv2d.h into the tensor element it stands for, zero where that is
// padding. Host and device code alike, so tests/cuda_host/conv2d_maps.cpp checks them on the CPU
// against direct loops over the definition in cpu/conv2d.h.
//
// Every gather functor is called as element(mn, k), the order GatherOperand::load uses (mn: the
// operand's row of A or column of B; k: the reduction index), so each operator() takes its
// arguments in that order whatever the operand's side.
#pragma once

#include <cstdint>

#include "common/shapes/conv2d.h"

#ifndef __CUDACC__
#ifndef __host__
#define __host__
#define __device__
#endif
#endif

namespace fastnn::cuda::conv_maps {

// The shape in the form the kernels index with (all int64).
struct ConvDims {
  int64_t N, C, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo;
  int64_t Cg, Og, KK, Kg, P, HW;  // per-group channels, kernel area, Cg*KK, planes

  static ConvDims of(const Conv2dShape& s) {
    ConvDims d;
    d.N = s.batch, d.C = s.in_channels, d.H = s.height, d.W = s.width, d.Cout = s.out_channels;
    d.kh = s.kernel_h, d.kw = s.kernel_w, d.sh = s.stride_h, d.sw = s.stride_w;
    d.ph = s.pad_h, d.pw = s.pad_w, d.dh = s.dilation_h, d.dw = s.dilation_w;
    d.Ho = s.out_height, d.Wo = s.out_width;
    d.Cg = s.in_channels_per_group(), d.Og = s.out_channels_per_group(), d.KK = s.kernel_area();
    d.Kg = d.Cg * d.KK, d.P = s.out_plane(), d.HW = s.in_plane();
    return d;
  }
};

// Column (im2col) matrix of group g, never stored: entry (kk = c*KK + p*kw + q, pix = n*P + i*Wo + j)
// is x[n, g*Cg + c, i*sh - ph + p*dh, j*sw - pw + q*dw], zero in the padding. PIXEL_MAJOR: the
// operand's MN index is the pixel (forward, B side) rather than kk (backward weight, B side).
template <class T, bool PIXEL_MAJOR>
struct Columns {
  const T* x;
  ConvDims d;
  int64_t g;
  __host__ __device__ inline T at(int64_t kk, int64_t pix) const {
    const int64_t n = pix / d.P, ij = pix - n * d.P;
    const int64_t i = ij / d.Wo, j = ij - i * d.Wo;
    const int64_t c = kk / d.KK, r = kk - c * d.KK;
    const int64_t p = r / d.kw, q = r - p * d.kw;
    const int64_t h = i * d.sh - d.ph + p * d.dh, w = j * d.sw - d.pw + q * d.dw;
    if (h < 0 || h >= d.H || w < 0 || w >= d.W) return T(0);
    return x[((n * d.C + g * d.Cg + c) * d.H + h) * d.W + w];
  }
  __host__ __device__ inline T operator()(int64_t mn, int64_t k) const { return PIXEL_MAJOR ? at(k, mn) : at(mn, k); }
};

// dy[n, g*Og + o, i, j] as (o, pix = n*P + i*Wo + j): backward weight, A side.
template <class T>
struct GradOutRows {
  const T* dy;
  ConvDims d;
  int64_t g;
  __host__ __device__ inline T operator()(int64_t o, int64_t pix) const {
    const int64_t n = pix / d.P;
    return dy[(n * d.Cout + g * d.Og + o) * d.P + (pix - n * d.P)];
  }
};

// weight[g*Og + o, c, p, q] as (c, kk = o*KK + p*kw + q): backward input, A side.
template <class T>
struct WeightTransposed {
  const T* weight;
  ConvDims d;
  int64_t g;
  __host__ __device__ inline T operator()(int64_t c, int64_t kk) const {
    const int64_t o = kk / d.KK;
    return weight[((g * d.Og + o) * d.Cg + c) * d.KK + (kk - o * d.KK)];
  }
};

// The output gradient reaching input pixel (n, h, w) through tap (p, q) of output channel o:
// dy[n, g*Og + o, i, j] where (h, w) = (i*sh - ph + p*dh, j*sw - pw + q*dw), zero when no output
// position (i, j) reads (h, w) through that tap. Backward input, B side, so called as
// (mn = pix = n*H*W + h*W + w, k = kk = o*KK + p*kw + q): the pixel first.
template <class T>
struct GradOutTaps {
  const T* dy;
  ConvDims d;
  int64_t g;
  __host__ __device__ inline T operator()(int64_t pix, int64_t kk) const {
    const int64_t o = kk / d.KK, r = kk - o * d.KK;
    const int64_t p = r / d.kw, q = r - p * d.kw;
    const int64_t n = pix / d.HW, hw = pix - n * d.HW;
    const int64_t h = hw / d.W, w = hw - h * d.W;
    const int64_t th = h + d.ph - p * d.dh, tw = w + d.pw - q * d.dw;  // = i*sh, j*sw
    if (th < 0 || tw < 0 || th % d.sh != 0 || tw % d.sw != 0) return T(0);
    const int64_t i = th / d.sh, j = tw / d.sw;
    if (i >= d.Ho || j >= d.Wo) return T(0);
    return dy[((n * d.Cout + g * d.Og + o) * d.Ho + i) * d.Wo + j];
  }
};

// Where the kernels write: y[n, g*Og + o, i, j] for (o, pix = n*P + i*Wo + j), and
// dx[n, g*Cg + c, h, w] for (c, pix = n*H*W + h*W + w).
__host__ __device__ inline int64_t output_index(const ConvDims& d, int64_t g, int64_t o, int64_t pix) {
  const int64_t n = pix / d.P;
  return (n * d.Cout + g * d.Og + o) * d.P + (pix - n * d.P);
}
__host__ __device__ inline int64_t input_index(const ConvDims& d, int64_t g, int64_t c, int64_t pix) {
  const int64_t n = pix / d.HW;
  return (n * d.C + g * d.Cg + c) * d.HW + (pix - n * d.HW);
}

}  // namespace fastnn::cuda::conv_maps
