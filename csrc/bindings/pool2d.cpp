// Bindings of the pooling kernels (cpu/pool2d.h, cuda/pool2d.h). Window parameters arrive as
// (h, w) ints; fastnn.ops.pool2d turns PyTorch-style ints / pairs and stride=None into them.
//
// max_pool2d_backward takes the forward's window when the caller has it (nn.MaxPool2d passes
// it): the GPU then gathers each input's gradient through the window; without it, the gradients
// are scattered plane by plane through the indices. Bad indices raise the same ValueError on
// both backends: checked on the host before the CPU kernel, flagged by the GPU's scatter.
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/backend.h"
#include "common/shapes/pool2d.h"

namespace fastnn::bind {

namespace {

using Window = std::array<int64_t, 6>;  // kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w

// grad_out must be what the forward produced for an input of `input_dims`: same N and C.
void require_grad_of(const char* op, const Array& dy, const std::vector<int64_t>& input_dims,
                     const std::vector<int64_t>& output_dims) {
  require_dims(op, dy, output_dims,
               cat("(the forward output for input_shape ", shape_str(input_dims), ")").c_str());
}

Dtype parse_index_dtype(const char* op, const std::string& name) {
  if (name == "int64") return Dtype::int64;
  if (name == "int32") return Dtype::int32;
  throw_type_error("fastnn.", op, ": argument 'index_dtype' must be int64 or int32; got ", name);
}

py::tuple max_pool2d_forward(py::object x_obj, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                             int64_t ph, int64_t pw, const std::string& index_dtype) {
  const char* op = "max_pool2d";
  const Dtype index_type = parse_index_dtype(op, index_dtype);
  const Array x = float_array(op, "x", x_obj);
  const Pool2dShape s = Pool2dShape::from(op, "x", x.dims, kh, kw, sh, sw, ph, pw);
  if (index_type == Dtype::int32 && s.in_plane() > INT32_MAX)
    throw_value_error("fastnn.", op, ": int32 indices cannot address a plane of ", s.in_plane(),
                      " elements; use index_dtype int64");
  const Array y = new_array(op, "y", x.dtype, s.output_dims());
  const Array indices = new_array(op, "indices", index_type, s.output_dims());
  const Backend::Context context;
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    dispatch_index(index_type, [&](auto index_zero) {
      using Index = decltype(index_zero);
      py::gil_scoped_release release;
      kernels::max_pool2d_forward<T, Index>(x.data<T>(), y.data<T>(), indices.data<Index>(), s,
                                            context.exec());
    });
  });
  return py::make_tuple(y.object, indices.object);
}

py::object max_pool2d_backward(py::object dy_obj, py::object indices_obj,
                               const std::vector<int64_t>& input_shape,
                               const std::optional<Window>& window) {
  const char* op = "max_pool2d_backward";
  const Pool2dShape s = window ? Pool2dShape::from(op, "input_shape", input_shape, *window)
                               : Pool2dShape::global(op, "input_shape", input_shape);
  const Array dy = float_array(op, "grad_out", dy_obj, 4);
  require_grad_of(op, dy, input_shape,
                  window ? s.output_dims() : std::vector<int64_t>{s.batch, s.channels, dy.dims[2], dy.dims[3]});
  const Array indices = index_array(op, "indices", indices_obj);
  require_dims(op, indices, dy.dims, "(the shape of grad_out)");
  const int64_t out_plane = dy.dims[2] * dy.dims[3];
  if constexpr (Backend::host_memory) {
    dispatch_index(indices.dtype, [&](auto index_zero) {
      validate_pool_indices(op, indices.data<decltype(index_zero)>(), indices.numel, s.in_plane());
    });
  }
  const Array dx = new_array(op, "dx", dy.dtype, input_shape);
  int64_t first_invalid = -1;
  const Backend::Context context;
  dispatch_float(dy.dtype, [&](auto zero) {
    using T = decltype(zero);
    dispatch_index(indices.dtype, [&](auto index_zero) {
      using Index = decltype(index_zero);
      py::gil_scoped_release release;
      if (window)
        kernels::max_pool2d_backward<T, Index>(dy.data<T>(), indices.data<Index>(), dx.data<T>(), s,
                                               context.exec());
      else
        first_invalid = kernels::max_pool2d_backward_scatter<T, Index>(
            dy.data<T>(), indices.data<Index>(), dx.data<T>(), s.planes(), s.in_plane(), out_plane,
            context.exec());
    });
  });
  if (first_invalid >= 0) {
    dispatch_index(indices.dtype, [&](auto index_zero) {
      throw_bad_pool_index(op, s.in_plane(), first_invalid,
                           Backend::read<decltype(index_zero)>(indices, first_invalid));
    });
  }
  return dx.object;
}

// A new array of `out_dims` filled by kernel(in, out, s, exec): every pooling kernel but max's.
template <class Kernel>
py::object run_into_new(const char* op, const Array& in, const std::vector<int64_t>& out_dims,
                        const Pool2dShape& s, Kernel kernel) {
  const Array out = new_array(op, "y", in.dtype, out_dims);
  const Backend::Context context;
  dispatch_float(in.dtype, [&](auto zero) {
    using T = decltype(zero);
    py::gil_scoped_release release;
    kernel(in.data<T>(), out.data<T>(), s, context.exec());
  });
  return out.object;
}

py::object avg_pool2d_forward(py::object x_obj, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                              int64_t ph, int64_t pw) {
  const char* op = "avg_pool2d";
  const Array x = float_array(op, "x", x_obj);
  const Pool2dShape s = Pool2dShape::from(op, "x", x.dims, kh, kw, sh, sw, ph, pw);
  return run_into_new(op, x, s.output_dims(), s, [](auto* in, auto* out, const Pool2dShape& s,
                                                     const auto& exec) {
    kernels::avg_pool2d_forward(in, out, s, exec);
  });
}

py::object avg_pool2d_backward(py::object dy_obj, const std::vector<int64_t>& input_shape,
                               int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                               int64_t pw) {
  const char* op = "avg_pool2d_backward";
  const Pool2dShape s = Pool2dShape::from(op, "input_shape", input_shape, kh, kw, sh, sw, ph, pw);
  const Array dy = float_array(op, "grad_out", dy_obj);
  require_grad_of(op, dy, input_shape, s.output_dims());
  return run_into_new(op, dy, input_shape, s, [](auto* in, auto* out, const Pool2dShape& s,
                                                 const auto& exec) {
    kernels::avg_pool2d_backward(in, out, s, exec);
  });
}

py::object global_avg_pool2d_forward(py::object x_obj) {
  const char* op = "global_avg_pool2d";
  const Array x = float_array(op, "x", x_obj);
  const Pool2dShape s = Pool2dShape::global(op, "x", x.dims);
  return run_into_new(op, x, {s.batch, s.channels}, s, [](auto* in, auto* out,
                                                          const Pool2dShape& s, const auto& exec) {
    kernels::global_avg_pool2d_forward(in, out, s, exec);
  });
}

py::object global_avg_pool2d_backward(py::object dy_obj, const std::vector<int64_t>& input_shape) {
  const char* op = "global_avg_pool2d_backward";
  const Pool2dShape s = Pool2dShape::global(op, "input_shape", input_shape);
  const Array dy = float_array(op, "grad_out", dy_obj);
  require_grad_of(op, dy, input_shape, {s.batch, s.channels});
  return run_into_new(op, dy, input_shape, s, [](auto* in, auto* out, const Pool2dShape& s,
                                                 const auto& exec) {
    kernels::global_avg_pool2d_backward(in, out, s, exec);
  });
}

// Lets a layer reject bad window parameters at construction, by the same rule as the ops.
void pool2d_check_params(const std::string& caller, int64_t kh, int64_t kw, int64_t sh,
                         int64_t sw, int64_t ph, int64_t pw) {
  Pool2dShape::validate_params(caller.c_str(), kh, kw, sh, sw, ph, pw);
}

}  // namespace

void init_pool2d(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x"), py::arg("kernel_h"),
        py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"),
        py::arg("pad_w"), py::arg("index_dtype") = "int64");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("grad_out"), py::arg("indices"),
        py::arg("input_shape"), py::arg("window") = py::none());
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("x"), py::arg("kernel_h"),
        py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"),
        py::arg("pad_w"));
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("grad_out"), py::arg("input_shape"),
        py::arg("kernel_h"), py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"),
        py::arg("pad_h"), py::arg("pad_w"));
  m.def("global_avg_pool2d_forward", &global_avg_pool2d_forward, py::arg("x"));
  m.def("global_avg_pool2d_backward", &global_avg_pool2d_backward, py::arg("grad_out"),
        py::arg("input_shape"));
  m.def("pool2d_check_params", &pool2d_check_params, py::arg("caller"), py::arg("kernel_h"),
        py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"),
        py::arg("pad_w"));
}

}  // namespace fastnn::bind
