#include "bindings/cpu/numpy_backend.h"

#include <pybind11/numpy.h>

#include <new>
#include <string>

#include "bindings/cpu/buffer_cache.h"

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

py::array new_numpy_array(Dtype dtype, const std::vector<int64_t>& dims, int64_t bytes) {
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

[[noreturn]] void throw_named_memory_error(const char* op, const char* name,
                                           const std::vector<int64_t>& dims, int64_t bytes) {
  const std::string message = cat("fastnn.", op, ": cannot allocate output '", name, "' of shape ",
                                  shape_str(dims), " (", bytes, " bytes): out of memory");
  PyErr_SetString(PyExc_MemoryError, message.c_str());
  throw py::error_already_set();
}

}  // namespace

Array NumpyBackend::take(const char* op, const char* arg, const py::handle& obj, Kind kind,
                         int ndim, Access access, const char* what) {
  if (!py::isinstance<py::array>(obj)) {
    throw_type_error("fastnn.", op, ": argument '", arg, "' must be a numpy.ndarray; got ",
                     py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  Array out;
  out.object = py::reinterpret_borrow<py::object>(obj);
  out.name = arg;
  out.present = true;
  const py::array a = py::reinterpret_borrow<py::array>(obj);
  const bool known = classify(a, &out.dtype);
  if (!known || !kind_accepts(kind, out.dtype))
    check_kind(op, arg, kind, known, out.dtype, py::str(a.dtype()).cast<std::string>(), what);
  out.dims.assign(a.shape(), a.shape() + a.ndim());
  check_ndim(op, arg, out.dims, ndim);
  const auto* proxy = py::detail::array_proxy(a.ptr());
  const int flags = proxy->flags;
  if (!(flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
    throw_not_contiguous(op, arg, out.dims, "numpy");
  if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) throw_misaligned(op, arg, "numpy");
  if (access == Access::write && !(flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
    throw_read_only(op, arg);
  out.numel = checked_numel(out.dims, op);
  out.address = reinterpret_cast<uintptr_t>(proxy->data);
  return out;
}

Array NumpyBackend::empty(const char* op, const char* name, Dtype dtype,
                          const std::vector<int64_t>& dims) {
  Array out;
  out.numel = checked_numel(dims, op);
  const int64_t bytes = checked_mul(out.numel, dtype_size(dtype), op);
  py::array a;
  // Sizes that fit int64 can still be past any memory (a 2^40 padding shrunk back by a 2^40
  // dilation): the allocator's bare std::bad_alloc / NumPy's MemoryError become a MemoryError
  // that names the op, the output and the bytes asked for.
  try {
    a = new_numpy_array(dtype, dims, bytes);
  } catch (const std::bad_alloc&) {
    throw_named_memory_error(op, name, dims, bytes);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_MemoryError)) throw;
    throw_named_memory_error(op, name, dims, bytes);
  }
  out.address = reinterpret_cast<uintptr_t>(a.mutable_data());
  out.object = std::move(a);
  out.dtype = dtype;
  out.dims = dims;
  out.name = name;
  out.present = true;
  return out;
}

}  // namespace fastnn::bind
