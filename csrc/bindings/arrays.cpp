#include "bindings/arrays.h"

#include <algorithm>

#include "bindings/buffer_cache.h"

namespace fastnn::bind {
namespace {

bool dtype_is(const py::array& a, const py::dtype& d) {
  // equal() is PyArray_EquivTypes: byte-swapped dtypes do not count as equal.
  return a.dtype().equal(d);
}

bool classify(const py::array& a, Dtype* out) {
  if (dtype_is(a, py::dtype::of<float>())) return *out = Dtype::float32, true;
  if (dtype_is(a, py::dtype::of<double>())) return *out = Dtype::float64, true;
  if (dtype_is(a, py::dtype::of<int32_t>())) return *out = Dtype::int32, true;
  if (dtype_is(a, py::dtype::of<int64_t>())) return *out = Dtype::int64, true;
  if (dtype_is(a, py::dtype::of<uint8_t>())) return *out = Dtype::uint8, true;
  return false;
}

py::dtype numpy_dtype(Dtype d) {
  switch (d) {
    case Dtype::float64: return py::dtype::of<double>();
    case Dtype::int32: return py::dtype::of<int32_t>();
    case Dtype::int64: return py::dtype::of<int64_t>();
    case Dtype::uint8: return py::dtype::of<uint8_t>();
    default: return py::dtype::of<float>();
  }
}

std::string describe_dtype(const py::array& a) {
  return py::str(a.dtype()).cast<std::string>();
}

ArrayArg as_array(const char* op, const char* arg, const py::handle& obj, Kind kind, int ndim,
                  Access access, const char* what = "") {
  if (!py::isinstance<py::array>(obj)) {
    throw_type_error("fastnn.", op, ": argument '", arg, "' must be a numpy.ndarray; got ",
                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  ArrayArg out;
  out.array = py::reinterpret_borrow<py::array>(obj);
  out.name = arg;
  out.present = true;
  const py::array& a = out.array;
  const bool known = classify(a, &out.dtype);
  if (!known || !kind_accepts(kind, out.dtype)) check_kind(op, arg, kind, known, out.dtype, describe_dtype(a), what);
  out.dims.assign(a.shape(), a.shape() + a.ndim());
  check_ndim(op, arg, out.dims, ndim);
  const int flags = py::detail::array_proxy(a.ptr())->flags;
  if (!(flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
    throw_not_contiguous(op, arg, out.dims, "numpy");
  if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) throw_misaligned(op, arg, "numpy");
  if (access == Access::write && !(flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
    throw_read_only(op, arg);
  out.numel = checked_numel(out.dims, op);
  return out;
}

}  // namespace

ArrayArg float_array(const char* op, const char* arg, const py::handle& obj, int ndim,
                     Access access) {
  return as_array(op, arg, obj, Kind::floats, ndim, access);
}

ArrayArg optional_float_array(const char* op, const char* arg, const py::handle& obj, int ndim,
                              Access access) {
  if (obj.is_none()) {
    ArrayArg none;
    none.name = arg;
    return none;
  }
  return as_array(op, arg, obj, Kind::floats, ndim, access);
}

ArrayArg label_array(const char* op, const char* arg, const py::handle& obj) {
  return as_array(op, arg, obj, Kind::indices, 1, Access::read, " labels");
}

ArrayArg index_array(const char* op, const char* arg, const py::handle& obj, int ndim) {
  return as_array(op, arg, obj, Kind::indices, ndim, Access::read);
}

ArrayArg byte_array(const char* op, const char* arg, const py::handle& obj, int ndim) {
  return as_array(op, arg, obj, Kind::bytes, ndim, Access::read);
}

void require_same_dtype(const char* op, const ArrayArg& a, const ArrayArg& b) {
  check_same_dtype(op, a.name, a.dtype, b.name, b.dtype);
}

void require_dims(const char* op, const ArrayArg& b, const std::vector<int64_t>& dims,
                  const char* why) {
  check_dims(op, b.name, b.dims, dims, why);
}

void require_no_overlap(const char* op, const ArrayArg& out, const ArrayArg& in) {
  if (!out || !in) return;
  check_no_overlap(op, out.name, reinterpret_cast<uintptr_t>(out.array.data()), out.array.nbytes(),
                   in.name, reinterpret_cast<uintptr_t>(in.array.data()), in.array.nbytes());
}

py::array new_array(const char* op, Dtype dtype, const std::vector<int64_t>& dims) {
  const int64_t numel = checked_numel(dims, op);
  const int64_t bytes = checked_mul(numel, dtype_size(dtype), op);
  std::vector<py::ssize_t> shape(dims.begin(), dims.end());
  const py::dtype type = numpy_dtype(dtype);
  if (static_cast<std::size_t>(bytes) < kMinCachedBytes) return py::array(type, shape);
  // Memory from the buffer cache, owned by a capsule that gives it back when NumPy frees the
  // array (and every view of it).
  void* data = take_buffer(static_cast<std::size_t>(bytes));
  py::capsule owner;
  try {
    owner = py::capsule(data, &give_back_buffer);
  } catch (...) {
    give_back_buffer(data);
    throw;
  }
  return py::array(type, shape, data, owner);
}

ParamGrad param_grad(const char* op, const char* arg, const py::handle& obj, const ArrayArg& like,
                     const std::vector<int64_t>& dims,
                     std::initializer_list<const ArrayArg*> inputs) {
  ParamGrad g;
  g.arg = optional_float_array(op, arg, obj, -1, Access::write);
  g.accumulate = bool(g.arg);
  if (g.accumulate) {
    require_same_dtype(op, like, g.arg);
    require_dims(op, g.arg, dims, "(the parameter's shape)");
    for (const ArrayArg* in : inputs) require_no_overlap(op, g.arg, *in);
  } else {
    g.arg.array = new_array(op, like.dtype, dims);
    g.arg.dtype = like.dtype;
    g.arg.dims = dims;
    g.arg.numel = checked_numel(dims, op);
    g.arg.present = true;
  }
  return g;
}

}  // namespace fastnn::bind
