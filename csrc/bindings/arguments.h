// The argument conversions every op file uses, over the backend policy of this compilation
// (bindings/backend.h): each checks type, dtype, rank, contiguity, alignment and writability,
// raising TypeError / ValueError that name the op and the argument (bindings/checks.h).
#pragma once

#include <initializer_list>
#include <vector>

#include "bindings/array.h"

namespace fastnn::bind {

// A float32/float64 array; `ndim` < 0 accepts any rank. Write access also requires a writeable
// array.
inline Array float_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1,
                         Access access = Access::read) {
  return Backend::take(op, arg, obj, Kind::floats, ndim, access, "");
}

// The same for an optional argument: None gives an absent Array.
inline Array optional_float_array(const char* op, const char* arg, const py::handle& obj,
                                  int ndim = -1, Access access = Access::read) {
  if (obj.is_none()) {
    Array none;
    none.name = arg;
    return none;
  }
  return float_array(op, arg, obj, ndim, access);
}

// Class labels: a 1-D int32/int64 array.
inline Array label_array(const char* op, const char* arg, const py::handle& obj) {
  return Backend::take(op, arg, obj, Kind::indices, 1, Access::read, " labels");
}

// Integer indices (int32/int64) of any rank (`ndim` < 0) or a given rank.
inline Array index_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1) {
  return Backend::take(op, arg, obj, Kind::indices, ndim, Access::read, "");
}

// A uint8 array (e.g. a dropout mask).
inline Array byte_array(const char* op, const char* arg, const py::handle& obj, int ndim = -1) {
  return Backend::take(op, arg, obj, Kind::bytes, ndim, Access::read, "");
}

// A new C-contiguous array (sizes checked for overflow first); its contents are arbitrary.
inline Array new_array(const char* op, const char* name, Dtype dtype,
                       const std::vector<int64_t>& dims) {
  return Backend::empty(op, name, dtype, dims);
}

// A parameter gradient of a backward op (the .grad convention): the array given as `obj`,
// checked to have `dims` and the dtype of `like`, to be writeable and to share no memory with
// `inputs`, which the kernel accumulates into (or, with `accumulate` false, writes over: a
// gradient just zeroed, Parameter.zero_grad); or, for None, a new array the kernel writes.
struct ParamGrad {
  Array array;
  bool accumulate = false;
};

inline ParamGrad param_grad(const char* op, const char* arg, const py::handle& obj,
                            const Array& like, const std::vector<int64_t>& dims,
                            std::initializer_list<const Array*> inputs,
                            bool accumulate = true) {
  ParamGrad g;
  g.array = optional_float_array(op, arg, obj, -1, Access::write);
  if (g.array) {
    g.accumulate = accumulate;
    require_same_dtype(op, like, g.array);
    require_dims(op, g.array, dims, "(the parameter's shape)");
    for (const Array* in : inputs) require_no_overlap(op, g.array, *in);
  } else {
    g.array = new_array(op, arg, like.dtype, dims);
  }
  return g;
}

// A gradient array passed for a gradient the call does not compute would silently stay as it
// was: refuse it instead.
inline void require_unused_grad_absent(const char* op, const char* arg, const py::handle& obj,
                                       bool computed, const char* why) {
  if (!computed && !obj.is_none())
    throw_value_error("fastnn.", op, ": argument '", arg, "' must be None when ", why,
                      " (that gradient is not computed); got an array");
}

}  // namespace fastnn::bind
