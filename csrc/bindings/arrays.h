// Argument checking and conversion shared by every binding file.
//
// A binding takes plain Python objects, turns each into an ArrayArg here (checking type, dtype,
// rank, contiguity, alignment and writability with messages that name the op and argument),
// builds the op's shape struct, allocates outputs, releases the GIL and calls the kernel.
// No math lives in bindings.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "bindings/checks.h"
#include "common/errors.h"
#include "common/sizes.h"

namespace fastnn::bind {

namespace py = pybind11;

struct ArrayArg {
  // Null until set: a default-constructed py::array would allocate an empty NumPy array for
  // every argument checked (a microsecond per call on small ops).
  py::array array = py::reinterpret_borrow<py::array>(py::handle());
  Dtype dtype = Dtype::float32;
  std::vector<int64_t> dims;
  int64_t numel = 0;
  const char* name = "";
  bool present = false;  // false for an optional argument given as None

  explicit operator bool() const { return present; }

  template <class T>
  T* data() const {
    return static_cast<T*>(const_cast<void*>(array.data()));
  }
  int64_t ndim() const { return static_cast<int64_t>(dims.size()); }
};

// A float32/float64 array, C-contiguous and aligned; `ndim` < 0 accepts any rank. Write access
// also requires a writeable array. Raises TypeError / ValueError naming `op` and `arg`.
ArrayArg float_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1,
                     Access access = Access::read);

// The same for an optional argument: None gives an ArrayArg with an empty `array`.
ArrayArg optional_float_array(const char* op, const char* arg, const py::handle& obj,
                              int ndim = -1, Access access = Access::read);

// Class labels: a 1-D int32/int64 array (C-contiguous, aligned).
ArrayArg label_array(const char* op, const char* arg, const py::handle& obj);

// Integer indices of any rank (`ndim` < 0) or a given rank: int32/int64, C-contiguous, aligned.
ArrayArg index_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1);

// A uint8 array (e.g. a dropout mask), C-contiguous.
ArrayArg byte_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1);

// TypeError unless b has a's dtype.
void require_same_dtype(const char* op, const ArrayArg& a, const ArrayArg& b);
// ValueError unless b has exactly `dims`.
void require_dims(const char* op, const ArrayArg& b, const std::vector<int64_t>& dims,
                  const char* why);
// ValueError when the memory of `out` overlaps `in` (a kernel would read what it overwrote).
void require_no_overlap(const char* op, const ArrayArg& out, const ArrayArg& in);

// A new C-contiguous array of `dtype` with `dims` (size checked for overflow first). Arrays of
// at least kMinCachedBytes take their memory from the buffer cache (bindings/buffer_cache.h),
// so a training step reuses the previous step's memory; their contents are arbitrary.
py::array new_array(const char* op, Dtype dtype, const std::vector<int64_t>& dims);

// A parameter gradient of a backward op (the .grad convention): the array given as `obj`,
// checked to have `dims` and the dtype of `like`, to be writeable and to share no memory with
// `inputs`, which the kernel accumulates into; or, for None, a new array the kernel writes.
struct ParamGrad {
  ArrayArg arg;
  bool accumulate = false;
};
ParamGrad param_grad(const char* op, const char* arg, const py::handle& obj, const ArrayArg& like,
                     const std::vector<int64_t>& dims,
                     std::initializer_list<const ArrayArg*> inputs);

inline bool is_none(const py::handle& obj) { return obj.is_none(); }

}  // namespace fastnn::bind
