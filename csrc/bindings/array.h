// One checked array argument, as every binding sees it whatever the array library: a NumPy array
// in fastnn._cpu, a CuPy array in fastnn._cuda. The library-specific part (how an object becomes
// an Array, how a new one is made) is the backend policy (bindings/backend.h); everything here
// works on the Array alone, so both backends reject the same input with the same words.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bindings/checks.h"
#include "common/errors.h"
#include "common/sizes.h"

namespace fastnn::bind {

namespace py = pybind11;

struct Array {
  py::object object;  // keeps the memory alive for the call; null for an absent optional
  Dtype dtype = Dtype::float32;
  std::vector<int64_t> dims;
  int64_t numel = 0;
  const char* name = "";
  bool present = false;  // false for an optional argument given as None
  uintptr_t address = 0;

  explicit operator bool() const { return present; }
  template <class T>
  T* data() const {
    return reinterpret_cast<T*>(address);
  }
  int64_t ndim() const { return static_cast<int64_t>(dims.size()); }
  int64_t nbytes() const { return numel * dtype_size(dtype); }
  // What the binding returns for it: the array, or None when absent.
  py::object result() const { return present ? object : py::none(); }
};

// An optional array's data, or null.
template <class T>
T* data_or_null(const Array& a) {
  return a ? a.data<T>() : nullptr;
}

// TypeError unless b has a's dtype.
inline void require_same_dtype(const char* op, const Array& a, const Array& b) {
  check_same_dtype(op, a.name, a.dtype, b.name, b.dtype);
}

// ValueError unless b has exactly `dims`; `why` says what they are.
inline void require_dims(const char* op, const Array& b, const std::vector<int64_t>& dims,
                         const char* why) {
  check_dims(op, b.name, b.dims, dims, why);
}

// ValueError when the memory of `out` overlaps `in` (a kernel would read what it overwrote).
inline void require_no_overlap(const char* op, const Array& out, const Array& in) {
  if (!out || !in) return;
  check_no_overlap(op, out.name, out.address, out.nbytes(), in.name, in.address, in.nbytes());
}

// Calls f(Index{}) with the integer type of an index or label array.
template <class F>
decltype(auto) dispatch_index(Dtype dtype, F&& f) {
  if (dtype == Dtype::int32) return f(int32_t{});
  return f(int64_t{});
}

}  // namespace fastnn::bind
