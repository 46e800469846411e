// Bindings for cpu/pool2d.h. Window parameters arrive as (h, w) ints; fastnn.ops.pool2d turns
// PyTorch-style ints / pairs and stride=None into them.
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "common/shapes/pool2d.h"
#include "cpu/pool2d.h"

namespace fastnn::bind {

namespace {

template <class T>
T* data_of(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

// grad_out must be what the forward produced for an input of `input_dims`: same N and C.
void require_grad_of(const char* op, const ArrayArg& dy, const std::vector<int64_t>& input_dims,
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
  ArrayArg x = float_array(op, "x", x_obj);
  const Pool2dShape s = Pool2dShape::from(op, "x", x.dims, kh, kw, sh, sw, ph, pw);
  if (index_type == Dtype::int32 && s.in_plane() > INT32_MAX)
    throw_value_error("fastnn.", op, ": int32 indices cannot address a plane of ", s.in_plane(),
                      " elements; use index_dtype int64");
  py::array y = new_array(op, x.dtype, s.output_dims());
  py::array indices = new_array(op, index_type, s.output_dims());
  dispatch_float(x.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* px = x.data<T>();
    T* py_ = data_of<T>(y);
    if (index_type == Dtype::int32) {
      int32_t* pi = data_of<int32_t>(indices);
      py::gil_scoped_release release;
      cpu::max_pool2d_forward<T, int32_t>(px, py_, pi, s);
    } else {
      int64_t* pi = data_of<int64_t>(indices);
      py::gil_scoped_release release;
      cpu::max_pool2d_forward<T, int64_t>(px, py_, pi, s);
    }
  });
  return py::make_tuple(y, indices);
}

// `window` (optional) is the forward's; the indices alone say where gradients go, so it only
// checks grad_out's shape here (the CUDA backend gathers through it).
py::array max_pool2d_backward(py::object dy_obj, py::object indices_obj,
                              const std::vector<int64_t>& input_shape,
                              const std::optional<std::array<int64_t, 6>>& window) {
  const char* op = "max_pool2d_backward";
  const Pool2dShape in = window ? Pool2dShape::from(op, "input_shape", input_shape, *window)
                                : Pool2dShape::global(op, "input_shape", input_shape);
  ArrayArg dy = float_array(op, "grad_out", dy_obj, 4);
  require_grad_of(op, dy, input_shape,
                  window ? in.output_dims() : std::vector<int64_t>{in.batch, in.channels, dy.dims[2], dy.dims[3]});
  ArrayArg indices = index_array(op, "indices", indices_obj);
  require_dims(op, indices, dy.dims, "(the shape of grad_out)");
  const int64_t planes = in.planes(), in_plane = in.in_plane(), out_plane = dy.dims[2] * dy.dims[3];
  py::array dx = new_array(op, dy.dtype, input_shape);
  dispatch_float(dy.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* pdy = dy.data<T>();
    T* pdx = data_of<T>(dx);
    auto run = [&](auto* pi) {
      validate_pool_indices(op, pi, indices.numel, in_plane);
      py::gil_scoped_release release;
      cpu::max_pool2d_backward(pdy, pi, pdx, planes, in_plane, out_plane);
    };
    if (indices.dtype == Dtype::int32) run(indices.data<int32_t>());
    else run(indices.data<int64_t>());
  });
  return dx;
}

// A new array of `out_dims` filled by kernel(in, out, s): every pooling kernel but max's.
template <class Kernel>
py::array run_into_new(const char* op, const ArrayArg& in, const std::vector<int64_t>& out_dims,
                       const Pool2dShape& s, Kernel kernel) {
  py::array out = new_array(op, in.dtype, out_dims);
  dispatch_float(in.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* pin = in.data<T>();
    T* pout = data_of<T>(out);
    py::gil_scoped_release release;
    kernel(pin, pout, s);
  });
  return out;
}

py::array avg_pool2d_forward(py::object x_obj, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                             int64_t ph, int64_t pw) {
  const char* op = "avg_pool2d";
  ArrayArg x = float_array(op, "x", x_obj);
  const Pool2dShape s = Pool2dShape::from(op, "x", x.dims, kh, kw, sh, sw, ph, pw);
  return run_into_new(op, x, s.output_dims(), s, [](auto* in, auto* out, const Pool2dShape& s) {
    cpu::avg_pool2d_forward(in, out, s);
  });
}

py::array avg_pool2d_backward(py::object dy_obj, const std::vector<int64_t>& input_shape,
                              int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                              int64_t pw) {
  const char* op = "avg_pool2d_backward";
  const Pool2dShape s = Pool2dShape::from(op, "input_shape", input_shape, kh, kw, sh, sw, ph, pw);
  ArrayArg dy = float_array(op, "grad_out", dy_obj);
  require_grad_of(op, dy, input_shape, s.output_dims());
  return run_into_new(op, dy, input_shape, s, [](auto* in, auto* out, const Pool2dShape& s) {
    cpu::avg_pool2d_backward(in, out, s);
  });
}

py::array global_avg_pool2d_forward(py::object x_obj) {
  const char* op = "global_avg_pool2d";
  ArrayArg x = float_array(op, "x", x_obj);
  const Pool2dShape s = Pool2dShape::global(op, "x", x.dims);
  const std::vector<int64_t> out_dims{s.batch, s.channels};
  return run_into_new(op, x, out_dims, s, [](auto* in, auto* out, const Pool2dShape& s) {
    cpu::global_avg_pool2d_forward(in, out, s);
  });
}

py::array global_avg_pool2d_backward(py::object dy_obj, const std::vector<int64_t>& input_shape) {
  const char* op = "global_avg_pool2d_backward";
  const Pool2dShape s = Pool2dShape::global(op, "input_shape", input_shape);
  ArrayArg dy = float_array(op, "grad_out", dy_obj);
  require_grad_of(op, dy, input_shape, {s.batch, s.channels});
  return run_into_new(op, dy, input_shape, s, [](auto* in, auto* out, const Pool2dShape& s) {
    cpu::global_avg_pool2d_backward(in, out, s);
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
